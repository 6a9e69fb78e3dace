"""WeChat's event pushes to the official account's server URL (`/wechat/events`).

`GET` is WeChat's check of the server (echo `echostr` when the signature holds); `POST` a
push in plaintext mode (sms/wechat_push.py). Every request must carry the signature of
`wechat.token`, with a fresh timestamp and a nonce not used before: anything else is
refused (403) and logged. A body that is not the
documented XML is refused (400), one over 16 KiB too (413). An `unsubscribe` drops the
binding of that openid (audited): notices for that resident go by their other channels.
Other pushes are acknowledged and left alone. The answer is `success`, which sends the
resident nothing and stops WeChat's retries.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from console.request import deps
from console.wechat_bind import binder
from core.masking import mask_openid
from sms.errors import BadPush
from sms.wechat_push import ACK, MAX_PUSH_BYTES, Replays, parse_push, signed

log = logging.getLogger(__name__)
PATH = "/wechat/events"
REPLAYS = web.AppKey("wechat_replays", Replays)


def _check(request: web.Request) -> None:
    settings = deps(request).settings.wechat
    if not settings.enabled:
        raise web.HTTPNotFound(text="WeChat is not configured (wechat.enabled)")
    q = request.query
    if not signed(settings.token, q.get("timestamp", ""), q.get("nonce", ""), q.get("signature", "")):
        log.warning("wechat: a push to %s from %s with a wrong or missing signature, refused", PATH, request.remote)
        raise web.HTTPForbidden(text="signature does not match")
    why = request.app[REPLAYS].refuse(q["timestamp"], q["nonce"])
    if why:
        log.warning("wechat: a signed request to %s from %s refused: %s", PATH, request.remote, why)
        raise web.HTTPForbidden(text=f"refused: {why}")


async def verify_server(request: web.Request) -> web.StreamResponse:
    _check(request)
    return web.Response(text=request.query.get("echostr", "")[:128], content_type="text/plain")


async def push(request: web.Request) -> web.StreamResponse:
    _check(request)
    if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_PUSH_BYTES, request.content_length, text="push too large")
    body = await request.content.read(MAX_PUSH_BYTES + 1)
    if len(body) > MAX_PUSH_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_PUSH_BYTES, len(body), text="push too large")
    try:
        event = parse_push(body)
    except BadPush as exc:
        log.warning("wechat: a push from %s refused: %s", request.remote, exc)
        raise web.HTTPBadRequest(text=f"not a WeChat push: {exc}") from None
    if event.msg_type == "event" and event.event == "unsubscribe":
        dropped = await asyncio.to_thread(binder(request).unbind, event.openid, "unfollowed the account")
        log.info("wechat: %s unfollowed the account%s", mask_openid(event.openid), ", binding dropped" * dropped)
    return web.Response(text=ACK, content_type="text/plain")


def add_routes(app: web.Application) -> None:
    app[REPLAYS] = Replays()
    app.router.add_get(PATH, verify_server)
    app.router.add_post(PATH, push)
