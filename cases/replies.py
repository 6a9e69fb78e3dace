"""Sending an order's answer to the resident: a business event for the SMS gateway, as the
business system would write one (sms/templates.py `order_answered`), or a callback booked
for the caller's number. The SMS gateway knows nothing of work orders: it renders the event
by its type, to the number it names (subject kind `phone`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Table

from cases.errors import NoReplyNumber
from core.db import upsert
from core.destinations import DestinationPolicy, DestinationRefused
from core.models import BusinessEvent, Callback
from core.phones import BadPhoneNumber
from core.settings import Settings

if TYPE_CHECKING:
    from cases.orders import Order

BUSINESS_EVENTS: Final[Table] = BusinessEvent.__table__  # type: ignore[assignment]
CALLBACKS: Final[Table] = Callback.__table__  # type: ignore[assignment]
ANSWERED_EVENT: Final = "order_answered"
FOLLOWUP_EVENT: Final = "order_followup"


def answer_key(order_id: int) -> str:
    return f"order:{order_id}:answer"


def followup_key(order_id: int) -> str:
    """The follow-up's business event and its `sms_surveys` row share this key."""
    return f"order:{order_id}:followup"


def callback_call_id(order_id: int) -> str:
    """`callbacks.call_id` of the callback an answer booked: one per order, as one per call."""
    return f"order:{order_id}"


def reply_number(settings: Settings, order: Order, reply_via: str) -> str:
    """The caller's number in the store's form; NoReplyNumber if there is none to reach, or
    none the destination policy lets the hotline call or text (its `refused` says why)."""
    if order.caller_number:
        policy = DestinationPolicy(settings.destinations, settings.sms.country_code)
        try:
            return policy.check(order.caller_number)
        except DestinationRefused as exc:
            raise NoReplyNumber(order.id, reply_via, exc) from None
        except BadPhoneNumber:
            pass
    raise NoReplyNumber(order.id, reply_via)


def emit_event(c: Connection, event_type: str, phone: str, payload: dict[str, Any], key: str, now: dt.datetime) -> bool:
    """INSERT the business event once per key (a retried step adds nothing); True if new."""
    statement = (
        upsert(c, BUSINESS_EVENTS)
        .values(
            event_type=event_type,
            subject_kind="phone",
            subject_id=phone,
            payload=payload,
            idempotency_key=key,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(BUSINESS_EVENTS.c.id)
    )
    return c.execute(statement).first() is not None


def send_reply(c: Connection, settings: Settings, order: Order, now: dt.datetime) -> dict[str, Any]:
    """Queue the answer as the order's reply_via says, in the caller's transaction; what was
    done, for the order's history."""
    if order.reply_via == "sms":
        phone = reply_number(settings, order, "sms")
        payload = {"order_no": str(order.id), "answer": order.answer}
        emit_event(c, ANSWERED_EVENT, phone, payload, answer_key(order.id), now)
        return {"sms_event": answer_key(order.id)}
    if order.reply_via == "callback":
        phone = reply_number(settings, order, "callback")
        values = {
            "call_id": callback_call_id(order.id),
            "number": phone,
            "queue": settings.cases.callback_queue,
            "reason": "work_order",
            "requested_at": now,
            "status": "open",
            "note": f"工单{order.id}：{order.answer}"[:500],
        }
        c.execute(upsert(c, CALLBACKS).values(**values).on_conflict_do_nothing(index_elements=["call_id"]))
        return {"callback": callback_call_id(order.id)}
    return {}
