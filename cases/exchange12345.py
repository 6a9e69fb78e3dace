"""The hotline's own moves toward 12345, each an order event and a message in the outbox
(cases/outbox12345.py), written in one transaction: the event is the audit of the change
(who, when, why), the message what 12345 hears of it.

    return_to_12345(store, order_id, *, actor, reason, now=None) -> Order      退单
    ask_extension(store, order_id, *, actor, until, reason, now=None) -> Order  延期 asked
    grant_extension(store, order_id, *, actor, until, note, now=None) -> Order  延期 agreed
    forward_to_12345(store, settings, order_id, *, actor, counterpart, reason, now=None) -> Order  转办
    resend(store, outbound_id, *, actor, now=None) -> Outbound                 a dead letter again

- 退单: an order 12345 sent, still waiting (open, or returned to the hotline by a
  department), is given back to 12345 with the reason; here it is closed (`closed`, its
  last event `returned_to_12345`): it is 12345's again, to send elsewhere.
- 延期: more time is asked (`until`, a new deadline, and the reason). The order keeps
  12345's deadline: 12345 decides, by its own channel, and its deadline is the one that
  counts until then (the report's on-time rate measures against it). The request is the
  event `extension_asked`; when 12345 agrees, a supervisor records it (`extension_granted`,
  `hotline orders extended ID --until ...`), and only then `due_at` moves.
- 转办: one of our orders that is not social-security business goes to 12345 (a counterpart
  named in `hotline12345.counterparts`), with its title, content, caller number and our
  deadline; here it is closed (`forwarded`). Its number at 12345's side is ours,
  `<our_name>-<order id>`: 12345 never numbered it.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from sqlalchemy import Connection, select

from cases import outbox12345
from cases.contract12345 import CONTENT_MAX, KIND, TITLE_MAX
from cases.errors import BadOrderInput, Not12345Order, NotResendable
from cases.events import add_event, moment
from cases.orders import REASON_MAX, WAITING, Order, checked_text, read_order, transition
from cases.outbox12345 import OUTBOX, Outbound
from core.db import Store
from core.settings import Settings

CLOSED: Final = {"status": "closed"}


def _from_12345(c: Connection, order_id: int, step: str) -> Order:
    order = read_order(c, order_id, None)
    if order.kind != KIND:
        raise Not12345Order(f"work order {order_id} did not come from 12345: it cannot be {step}")
    return order


def return_to_12345(store: Store, order_id: int, *, actor: str, reason: str, now: dt.datetime | None = None) -> Order:
    """退单: the order back to 12345 with the reason, closed here."""
    now = moment(now)
    reason = checked_text(reason, "reason", REASON_MAX)
    with store.transaction() as c:
        _from_12345(c, order_id, "returned to 12345")
        order = transition(c, order_id, WAITING, "returned to 12345", CLOSED | {"closed_at": now})
        event_id = add_event(c, order_id, actor, "returned_to_12345", {"reason": reason}, now)
        outbox12345.enqueue(c, order, event_id, "returned_to_12345", now, reason=reason)
    return order


def _later(order: Order, until: dt.datetime, now: dt.datetime) -> dt.datetime:
    if until.tzinfo is None:
        raise BadOrderInput("the new deadline has no zone: give one (2026-12-18T17:30:00+08:00)")
    until = until.astimezone(dt.UTC)
    if until <= max(order.due_at, now):
        raise BadOrderInput(f"the new deadline {until.isoformat()} is not after the order's {order.due_at.isoformat()}")
    return until


def ask_extension(
    store: Store, order_id: int, *, actor: str, until: dt.datetime, reason: str, now: dt.datetime | None = None
) -> Order:
    """延期 asked of 12345: the event and the message; the order's deadline stays 12345's."""
    now = moment(now)
    reason = checked_text(reason, "reason", REASON_MAX)
    with store.transaction() as c:
        current = _from_12345(c, order_id, "given more time")
        until = _later(current, until, now)
        # Locks the order and checks it still waits; nothing of it changes.
        order = transition(c, order_id, WAITING, "given more time", {"status": current.status})
        detail = {"until": until.isoformat(), "reason": reason, "due_at": order.due_at.isoformat()}
        event_id = add_event(c, order_id, actor, "extension_asked", detail, now)
        outbox12345.enqueue(c, order, event_id, "extension_asked", now, until=until.isoformat(), reason=reason)
    return order


def grant_extension(
    store: Store, order_id: int, *, actor: str, until: dt.datetime, note: str = "", now: dt.datetime | None = None
) -> Order:
    """12345 agreed to more time: the order is due `until` from now on (no message: 12345 knows)."""
    now = moment(now)
    note = checked_text(note, "note", REASON_MAX) if note.strip() else ""
    with store.transaction() as c:
        current = _from_12345(c, order_id, "given more time")
        asked = c.execute(
            select(OUTBOX.c.id).where(OUTBOX.c.order_id == order_id, OUTBOX.c.kind == "extension").limit(1)
        ).first()
        if asked is None:
            raise BadOrderInput(f"work order {order_id}: no extension was asked of 12345 (ask first)")
        until = _later(current, until, now)
        order = transition(c, order_id, WAITING, "given more time", {"due_at": until})
        detail = {"from": current.due_at.isoformat(), "to": until.isoformat(), "note": note}
        add_event(c, order_id, actor, "extension_granted", detail, now)
    return order


def _title(summary: str) -> str:
    first = summary.strip().splitlines()[0].strip()
    return first if len(first) <= TITLE_MAX else first[: TITLE_MAX - 1] + "…"


def forward_to_12345(
    store: Store,
    settings: Settings,
    order_id: int,
    *,
    actor: str,
    counterpart: str,
    reason: str,
    now: dt.datetime | None = None,
) -> Order:
    """转办: one of our waiting orders sent to 12345 (not our business), closed here."""
    now = moment(now)
    reason = checked_text(reason, "reason", REASON_MAX)
    known = settings.hotline12345.counterparts
    if counterpart not in known:
        raise BadOrderInput(f"unknown 12345 counterpart {counterpart[:40]!r} (known: {', '.join(known) or 'none'})")
    our_name = settings.hotline12345.our_name
    if not our_name:
        raise BadOrderInput("hotline12345.our_name is not set: 12345 must know who forwards the order")
    with store.transaction() as c:
        current = read_order(c, order_id, None)
        if current.kind == KIND:
            raise Not12345Order(f"work order {order_id} came from 12345: give it back with return-to-12345")
        order = transition(c, order_id, WAITING, "forwarded to 12345", CLOSED | {"closed_at": now})
        order_no = f"{our_name}-{order.id}"
        detail = {"counterpart": counterpart, "order_no": order_no, "reason": reason}
        event_id = add_event(c, order_id, actor, "forwarded", detail, now)
        # The summary was checked for full ID numbers when the order was made (checked_text).
        content = order.summary if len(order.summary) <= CONTENT_MAX else order.summary[: CONTENT_MAX - 1] + "…"
        fields = {"title": _title(order.summary), "content": content, "deadline": order.due_at.isoformat()}
        fields |= {"reason": reason, "caller_number": order.caller_number or ""}
        outbox12345.enqueue_forward(c, order, event_id, counterpart, order_no, now, **fields)
    return order


def resend(store: Store, outbound_id: int, *, actor: str, now: dt.datetime | None = None) -> Outbound:
    """A dead letter pending again, due now (after its cause was fixed), on the order's record."""
    now = moment(now)
    with store.transaction() as c:
        m = outbox12345.resend(c, outbound_id, now)
        if m is None:
            status = c.execute(select(OUTBOX.c.status).where(OUTBOX.c.id == outbound_id)).scalar()
            raise NotResendable(outbound_id, status)
        order_id = c.execute(select(OUTBOX.c.order_id).where(OUTBOX.c.id == outbound_id)).scalar_one()
        detail = {"message": outbound_id, "kind": m.kind, "last_error": m.last_error}
        add_event(c, order_id, actor, "resent_to_12345", detail, now)
    return m
