"""Work orders the 12345 hotline sends (派单): `POST /api/12345/orders`, and the contract
as OpenAPI at `GET /api/12345/openapi.json` (console/hotline12345_openapi.py).

Public paths (console.middleware.PUBLIC): a counterpart's signature is its sign-in. The
checks run in the contract's order (cases/contract12345.py): the size first, before the body
is read past the limit (413); the counterpart and its signature (401); the timestamp (403);
then in the store the nonce (403) and the fields (400) and whether the order is new, a
resend (200, `duplicate`) or a changed resend (409): cases/intake12345.py. A refusal is a
named error (cases.errors.Refused12345), turned into its status and logged by
console.middleware; nothing of a refused request is stored. The caller's number is logged
masked, the order's text not at all.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web

from cases.contract12345 import authenticate
from cases.errors import BodyTooLarge, Hotline12345Off
from cases.intake12345 import receive
from console.hotline12345_openapi import OPENAPI_PATH, ORDERS_PATH, document
from console.request import deps
from core.calendar import deadline_text
from core.masking import mask_phone
from core.settings import Hotline12345Settings

log = logging.getLogger(__name__)


def _settings(request: web.Request) -> Hotline12345Settings:
    settings = deps(request).settings.hotline12345
    if not settings.enabled:
        raise Hotline12345Off("12345's work orders are not taken here (hotline12345.enabled)")
    return settings


async def _body(request: web.Request, limit: int) -> bytes:
    """The raw body, read no further than one byte past `limit` (the signature covers these
    bytes exactly: nothing is decoded before it is checked)."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(request.content_length, limit)
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise BodyTooLarge(size, limit)
    return b"".join(chunks)


async def receive_order(request: web.Request) -> web.StreamResponse:
    settings = _settings(request)
    body = await _body(request, settings.max_body_bytes)
    signed = authenticate(settings, request.headers, body, time.time())
    d = deps(request)
    got = await asyncio.to_thread(receive, d.store, d.settings, signed, body)
    order = got.order
    log.info(
        "12345: order %s from %s %s as work order %d (%s, caller %s, due %s)",
        order.order_no, signed.counterpart, got.status, got.order_id, order.case_category,
        mask_phone(order.caller_number), deadline_text(d.settings.queue, order.deadline),
    )  # fmt: skip
    return web.json_response({"order_id": got.order_id, "order_no": order.order_no, "status": got.status})


async def openapi(request: web.Request) -> web.StreamResponse:
    return web.json_response(document(deps(request).settings.hotline12345))


def add_routes(app: web.Application) -> None:
    app.router.add_post(ORDERS_PATH, receive_order)
    app.router.add_get(OPENAPI_PATH, openapi)
