"""WeChat's event pushes to the official account's server URL (`/wechat/events`).

`GET` is WeChat's check of the server (echo `echostr` when the signature holds); `POST` a
push, in plaintext mode (sms/wechat_push.py) or in security mode (sms/wechat_crypt.py:
`encrypt_type=aes`, the body signed by `msg_signature` and encrypted with the account's
EncodingAESKey). Every request must carry the signature of `wechat.token`, with a fresh
timestamp and a nonce no console process took before (sms/wechat_nonces.py, in the store);
an encrypted push also its body's signature and our account's appid inside. Anything else
is refused (403) and logged; with `wechat.security_mode` a plaintext push is refused too.
A body that is not the documented XML in UTF-8 is refused (400), one over 16 KiB too (413).
An `unsubscribe` drops the binding of that openid (audited): notices for that resident go
by their other channels. Other pushes are acknowledged and left alone. The answer is
`success`, which sends the resident nothing and stops WeChat's retries; encrypted, as
WeChat asks, when the push was.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from aiohttp import web

from console.request import deps
from console.wechat_bind import binder
from core.masking import mask_openid
from core.settings import WeChatSettings
from sms.errors import BadPush
from sms.wechat_crypt import aes_key, body_signed, decrypt, sealed_reply
from sms.wechat_nonces import PushNonces
from sms.wechat_push import ACK, MAX_PUSH_BYTES, ciphertext, parse_push, signed

log = logging.getLogger(__name__)
PATH = "/wechat/events"


def _settings(request: web.Request) -> WeChatSettings:
    settings = deps(request).settings.wechat
    if not settings.enabled:
        raise web.HTTPNotFound(text="WeChat is not configured (wechat.enabled)")
    return settings


def _refuse(request: web.Request, why: str) -> web.HTTPForbidden:
    log.warning("wechat: a request to %s from %s refused: %s", PATH, request.remote, why)
    return web.HTTPForbidden(text=f"refused: {why}")


def _check_signature(request: web.Request, settings: WeChatSettings) -> None:
    q = request.query
    if not signed(settings.token, q.get("timestamp", ""), q.get("nonce", ""), q.get("signature", "")):
        raise _refuse(request, "a wrong or missing signature")


async def _take_nonce(request: web.Request) -> None:
    """The signed pair is taken once, by whichever console process sees it first."""
    q = request.query
    why = await asyncio.to_thread(PushNonces(deps(request).store).refuse, q["timestamp"], q.get("nonce", ""))
    if why:
        raise _refuse(request, why)


async def verify_server(request: web.Request) -> web.StreamResponse:
    _check_signature(request, _settings(request))
    await _take_nonce(request)
    return web.Response(text=request.query.get("echostr", "")[:128], content_type="text/plain")


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_PUSH_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_PUSH_BYTES, request.content_length, text="push too large")
    body = await request.content.read(MAX_PUSH_BYTES + 1)
    if len(body) > MAX_PUSH_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_PUSH_BYTES, len(body), text="push too large")
    charset = request.charset
    if charset is not None and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise web.HTTPBadRequest(text=f"not a WeChat push: sent as {charset[:20]}, only UTF-8 is taken")
    return body


def _opened(request: web.Request, settings: WeChatSettings, body: bytes) -> bytes:
    """The XML inside an encrypted push, its body's signature checked before decrypting."""
    if not settings.encoding_aes_key:
        log.error("wechat: an encrypted push, and wechat.encoding_aes_key is not set: refused")
        raise web.HTTPForbidden(text="refused: encrypted, and no EncodingAESKey is configured")
    q = request.query
    sealed = ciphertext(body)
    if not body_signed(settings.token, q["timestamp"], q.get("nonce", ""), sealed, q.get("msg_signature", "")):
        raise _refuse(request, "a wrong or missing msg_signature")
    return decrypt(aes_key(settings.encoding_aes_key), sealed, settings.app_id)


async def push(request: web.Request) -> web.StreamResponse:
    settings = _settings(request)
    _check_signature(request, settings)
    body = await _body(request)
    encrypted = request.query.get("encrypt_type", "raw") == "aes"
    if settings.security_mode and not encrypted:
        raise _refuse(request, "a plaintext push, and wechat.security_mode takes only encrypted ones")
    try:
        xml = _opened(request, settings, body) if encrypted else body
        await _take_nonce(request)
        event = parse_push(xml)
    except BadPush as exc:
        log.warning("wechat: a push from %s refused: %s", request.remote, exc)
        raise web.HTTPBadRequest(text=f"not a WeChat push: {exc}") from None
    if event.msg_type == "event" and event.event == "unsubscribe":
        dropped = await asyncio.to_thread(binder(request).unbind, event.openid, "unfollowed the account")
        log.info("wechat: %s unfollowed the account%s", mask_openid(event.openid), ", binding dropped" * dropped)
    if not encrypted:
        return web.Response(text=ACK, content_type="text/plain")
    key = aes_key(settings.encoding_aes_key)
    reply = sealed_reply(settings.token, key, settings.app_id, ACK, int(time.time()), secrets.randbelow(10**10))
    return web.Response(text=reply, content_type="application/xml")


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, verify_server)
    app.router.add_post(PATH, push)
