"""Twilio's status callbacks: the delivery receipts of messages sent over Twilio.

Twilio POSTs the message's SID and status to `twilio.status_callback_url`, signed in
X-Twilio-Signature (HMAC-SHA1 of that URL and the sorted form fields, keyed with the auth
token). Unsigned or wrongly signed requests are refused (403) and logged; a final status
(delivered, undelivered, failed) settles the message like an SMPP receipt, including one
that arrives before its submission is recorded. Intermediate ones (queued, sent...) are
acknowledged and ignored.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from twilio.request_validator import RequestValidator

from console.request import deps
from core.models import utcnow
from sms import outbox
from sms.receipts import canonical
from sms.twilio import FINAL_STATUSES

log = logging.getLogger(__name__)
PATH = "/twilio/status"


async def twilio_status(request: web.Request) -> web.StreamResponse:
    d = deps(request)
    settings = d.settings.twilio
    if not (settings.auth_token and settings.status_callback_url):
        raise web.HTTPNotFound(text="Twilio status callbacks are not configured")
    form = await request.post()
    params = {key: str(value) for key, value in form.items()}
    signature = request.headers.get("X-Twilio-Signature", "")
    if not RequestValidator(settings.auth_token).validate(settings.status_callback_url, params, signature):
        log.warning("twilio: a status callback from %s with a wrong or missing signature, refused", request.remote)
        raise web.HTTPForbidden(text="X-Twilio-Signature does not match")
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    state = FINAL_STATUSES.get(status)
    if not sid:
        raise web.HTTPBadRequest(text="MessageSid is missing")
    if state is not None:
        await asyncio.to_thread(outbox.apply_receipts, d.store, [(canonical(sid, 0), state)], utcnow())
        log.info("twilio: %s is %s", sid, status)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, twilio_status)
