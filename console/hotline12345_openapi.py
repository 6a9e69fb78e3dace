"""The contract of `POST /api/12345/orders`, and of what we send 12345 (`x-webhooks`), as an
OpenAPI 3.0 document, served at `GET /api/12345/openapi.json` for 12345's integrators.
Written from the one place each part is decided: the headers, patterns, limits and
categories from cases/contract12345.py, the statuses from console.middleware.STATUSES (the
errors' statuses are chosen there and nowhere else), the size limit from the settings.
tests/store/test_orders_12345.py checks the endpoint against it; tests/fake12345.py is
written from it."""

from __future__ import annotations

from typing import Any

from cases import contract12345 as contract
from cases.errors import (
    BadOrder12345,
    BodyTooLarge,
    Hotline12345Off,
    NotSigned,
    OrderNoConflict,
    ReplayedNonce,
    StaleRequest,
)
from console.middleware import STATUSES
from core.settings import Hotline12345Settings

ORDERS_PATH = "/api/12345/orders"
OPENAPI_PATH = "/api/12345/openapi.json"
# Each refusal, by its error, with what it means to the sender.
REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (
        BadOrder12345,
        "The body is not a JSON object of the documented fields; `field` names the first that does not fit.",
    ),
    (NotSigned, "Unknown counterpart, a header missing or malformed, or a signature that does not match."),
    (StaleRequest, "Signed, but the timestamp is outside the allowed skew; or the nonce was used before (a replay)."),
    (Hotline12345Off, "This sub-centre does not take 12345's orders (not enabled)."),
    (OrderNoConflict, "This order_no was taken before with other fields: an order is not changed by sending it again."),
    (BodyTooLarge, "The body is over the size limit; nothing of it was read further."),
)


def status_of(error: type[Exception]) -> int:
    return next(code for kind, code in STATUSES if issubclass(error, kind))


assert status_of(ReplayedNonce) == status_of(StaleRequest)  # one response documents both


def _string(description: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **more}


def _order_schema(settings: Hotline12345Settings) -> dict[str, Any]:
    properties = {
        "order_no": _string(
            "12345's number of the order: the key of a resend.", minLength=1, maxLength=contract.ORDER_NO_MAX
        ),
        "title": _string("The order's title.", minLength=1, maxLength=contract.TITLE_MAX),
        "content": _string(
            "What the resident asked; no full ID numbers (send them masked).",
            minLength=1,
            maxLength=contract.CONTENT_MAX,
        ),
        "category": _string(
            "12345's kind of request (诉求类型): " + ", ".join(f"{k} -> {v}" for k, v in contract.CATEGORIES.items()),
            enum=list(contract.CATEGORIES),
        ),
        "deadline": _string(
            "When 12345 wants the answer, ISO 8601 with its zone (2026-12-11T17:30:00+08:00): the order's due time.",
            format="date-time",
            maxLength=contract.DEADLINE_MAX,
        ),
        "caller_number": _string("The resident's number, if any (any usual spelling: +86..., 0571...).", nullable=True),
        "department": _string(
            "One of this sub-centre's departments, or empty: at the hotline, to assign.", nullable=True
        ),
    }
    return {
        "type": "object",
        "required": list(contract.REQUIRED),
        "properties": properties,
        "additionalProperties": True,
        "description": f"At most {settings.max_body_bytes} bytes of UTF-8 JSON. Other fields are ignored.",
    }


def _headers() -> list[dict[str, Any]]:
    described = (
        (contract.COUNTERPART, "Who sends: the counterpart's name as configured here.", r"^[A-Za-z0-9_-]{1,40}$"),
        (contract.TIMESTAMP, "Unix time in seconds when signed.", contract.TIMESTAMP_PATTERN),
        (contract.NONCE, "Fresh for every request; used once.", contract.NONCE_PATTERN),
        (
            contract.SIGNATURE,
            'Hex HMAC-SHA256 under the counterpart\'s key of timestamp + "\\n" + nonce + "\\n" + the raw body.',
            contract.SIGNATURE_PATTERN,
        ),
    )
    return [
        {
            "name": name,
            "in": "header",
            "required": True,
            "description": text,
            "schema": {"type": "string", "pattern": p},
        }
        for name, text, p in described
    ]


def _message_schema() -> dict[str, Any]:
    """What we POST to a counterpart's endpoint (cases/outbox12345.py writes it)."""
    kinds = {
        "accepted": "签收: the order was taken here.",
        "answered": "办结: answered; `answer` holds the text.",
        "returned": "退单: given back to 12345 (closed here); `reason` says why.",
        "extension": "延期: more time asked, to `until`, for `reason`; "
        "the order keeps 12345's deadline until it agrees.",
        "forwarded": "转办: one of our orders that is not our business; `order_no` is ours, with `title`, "
        "`content`, `caller_number`, `deadline` (ours) and `reason`.",
    }
    properties = {
        "message_id": _string("The message's key, the same on every try: drop a message_id seen before."),
        "order_no": _string(
            "12345's number of the order; for `forwarded`, ours (`<our name>-<our order id>`).",
            maxLength=contract.ORDER_NO_MAX + 41,
        ),
        "kind": _string(" ".join(f"`{k}`: {v}" for k, v in kinds.items()), enum=list(kinds)),
        "at": _string("When the change was made here.", format="date-time"),
        "order_id": {"type": "integer", "description": "The work order's number here."},
        "answer": _string("With `answered`: the answer."),
        "reason": _string("With `returned`, `extension` and `forwarded`: why."),
        "until": _string("With `extension`: the deadline asked for.", format="date-time"),
        "title": _string("With `forwarded`.", maxLength=contract.TITLE_MAX),
        "content": _string("With `forwarded`; no full ID numbers.", maxLength=contract.CONTENT_MAX),
        "caller_number": _string("With `forwarded`: the resident's number, or empty."),
        "deadline": _string("With `forwarded`: our deadline for the order.", format="date-time"),
    }
    return {
        "type": "object",
        "required": ["message_id", "order_no", "kind", "at", "order_id"],
        "properties": properties,
        "additionalProperties": True,
        "description": "UTF-8 JSON, signed as 12345 signs its orders, with our name in X-12345-Counterpart.",
    }


def _outbound() -> dict[str, Any]:
    """The counterpart's endpoint (hotline12345.endpoints): not on this server, so it is
    described under `x-webhooks` (OpenAPI 3.0 has no `webhooks`; 3.1 made this convention one)."""
    post = {
        "summary": "What this sub-centre tells 12345 (POSTed to the counterpart's URL in hotline12345.endpoints)",
        "operationId": "notifyCounterpart",
        "parameters": _headers(),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
        },
        "responses": {
            "200": {"description": "Any 2xx: taken (also for a message_id seen before)."},
            "400": {"description": "Any 4xx but 429: refused for good; kept here as a dead letter."},
            "429": {"description": "Too many: tried again later, the wait doubling."},
            "503": {"description": "Any 5xx, or no answer: tried again later, the wait doubling, never given up."},
        },
    }
    return {"orderMessage": {"post": post}}


def document(settings: Hotline12345Settings) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the contract (a JSON-ready dict)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {
        "200": {
            "description": "Taken: `accepted` (a new work order) or `duplicate` (sent before: the same order).",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}},
        }
    }
    for kind, description in REFUSALS:
        responses[str(status_of(kind))] = {"description": description, **error}
    post = {
        "summary": "A work order sent (派单) by 12345 to this sub-centre",
        "operationId": "receiveOrder",
        "parameters": _headers(),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}},
        },
        "responses": responses,
    }
    answer = {
        "type": "object",
        "required": ["order_id", "order_no", "status"],
        "properties": {
            "order_id": {"type": "integer", "description": "The work order's number here."},
            "order_no": {"type": "string"},
            "status": {"type": "string", "enum": ["accepted", "duplicate"]},
        },
    }
    error_schema = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "field": {"type": "string", "description": "On 400."}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "12333 sub-centre: work orders exchanged with 12345", "version": "2"},
        "paths": {
            ORDERS_PATH: {"post": post},
            OPENAPI_PATH: {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0"}}}},
        },
        "x-webhooks": _outbound(),
        "components": {
            "schemas": {
                "Order": _order_schema(settings),
                "Answer": answer,
                "Error": error_schema,
                "Message": _message_schema(),
            }
        },
    }
