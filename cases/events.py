"""A work order's history: every change is a `work_order_events` row, only ever inserted
(no code path updates or deletes one), with who did it, when, and what."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, Table, select

from cases.errors import UnknownDepartment
from core.models import WorkOrderEvent, utcnow

if TYPE_CHECKING:
    from cases.orders import OrderEvent

EVENTS: Final[Table] = WorkOrderEvent.__table__  # type: ignore[assignment]
ACTIONS: Final = (
    "created",
    "assigned",
    "answered",
    "returned",
    "escalated",
    "closed",
    "followup_sent",
    "followup_reply",
    # The hotline's own moves toward 12345 (cases/exchange12345.py); each sends a message.
    "returned_to_12345",
    "extension_asked",
    "extension_granted",  # 12345 agreed: the order's due time moves (no message: 12345 knows)
    "forwarded",
    "resent_to_12345",  # a dead letter sent again by hand
)


def moment(now: dt.datetime | None) -> dt.datetime:
    """`now` (the present if None) in UTC: SQLite keeps times as text, compared as text, so
    every time written or compared is UTC (an aware time in +08:00 would sort wrong)."""
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise ValueError("naive datetime: give an aware one")
    return now.astimezone(dt.UTC)


def add_event(c: Connection, order_id: int, actor: str, action: str, detail: dict[str, Any], at: dt.datetime) -> int:
    """The event's id (an order from 12345 keys its outbound message by it: cases.outbox12345)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown work-order action {action!r}")
    values = {"order_id": order_id, "at": at, "actor": actor[:64], "action": action, "detail": detail}
    return int(c.execute(EVENTS.insert().values(**values).returning(EVENTS.c.id)).scalar_one())


def events_of(c: Connection, order_id: int) -> list[OrderEvent]:
    from cases.orders import OrderEvent

    rows = c.execute(select(EVENTS).where(EVENTS.c.order_id == order_id).order_by(EVENTS.c.at, EVENTS.c.id))
    return [OrderEvent(r.id, r.at, r.actor, r.action, dict(r.detail or {})) for r in rows]


def check_department(known: tuple[str, ...], name: str) -> None:
    if name not in known:
        raise UnknownDepartment(name, known)
