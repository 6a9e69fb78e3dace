"""The contract of `POST /api/12345/orders` as an OpenAPI 3.0 document, served at
`GET /api/12345/openapi.json` for 12345's integrators. Written from the one place each part
is decided: the headers, patterns, limits and categories from cases/contract12345.py, the
statuses from console.middleware.STATUSES (the errors' statuses are chosen there and
nowhere else), the size limit from the settings. tests/store/test_orders_12345.py checks
the endpoint against it."""

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
        "info": {"title": "12333 sub-centre: work orders from 12345", "version": "1"},
        "paths": {
            ORDERS_PATH: {"post": post},
            OPENAPI_PATH: {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.0"}}}},
        },
        "components": {"schemas": {"Order": _order_schema(settings), "Answer": answer, "Error": error_schema}},
    }
