"""The store side of telling 12345 about its orders: the outbox (`hotline12345_outbox`).

    enqueue(c, order, event_id, action, at, **fields) -> int | None   in the change's transaction
    enqueue_forward(c, order, event_id, counterpart, order_no, at, **fields) -> int | None   (转办)
    resend(c, outbound_id, now) -> Outbound | None   a dead letter pending again
    claim(store, counterpart, worker, limit, now) -> list[Claimed]
    sent(store, m, now) / retry(store, m, reason, delay_s, now) / dead(store, m, reason, now)
    reclaim_stale(store, now) -> int
    messages_of(c, order_id) -> list[Outbound]   (for `hotline orders show`)

A message is written by the same transaction as the order event it tells of, so a change
that rolls back sends nothing and one that commits is never lost; its key (counterpart,
12345's number, kind, the event's id) makes each change one message, however often the
writer is asked. Which events 12345 hears of (KINDS):

- `created` → `accepted` (签收): the one event every order from 12345 has, once, at the
  moment the hotline takes it (cases/intake12345.py). `assigned` is not it: an order that
  came with its department is never assigned, and one may be reassigned many times.
- `answered` → `answered` (办结), with the answer text.
- `returned_to_12345` → `returned` (退单: the hotline gives the order back), with the reason.
- `extension_asked` → `extension` (延期: more time asked), with `until` and the reason.
- `forwarded` → `forwarded` (转办): one of our own orders that is not social-security
  business, sent to 12345 with its text, caller number and our deadline (enqueue_forward;
  its `order_no` is ours, `<our_name>-<order id>`, as 12345 has no number for it).

States: pending → sending (claimed) → sent; or back to pending with `next_attempt_at` later
(cases/sender12345.py decides how much later); or failed, a dead letter with `last_error`,
never tried again. Claims are `FOR UPDATE SKIP LOCKED` on PostgreSQL and an UPDATE
conditioned on `pending` on SQLite (as sms/outbox.py claims), so two senders never send one
message; a claim left `sending` by a sender that died is pending again after RECLAIM_AFTER.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import ColumnElement, Connection, Table, bindparam, literal_column, select, update

from core.db import Store, upsert
from core.models import Hotline12345Order, Hotline12345Outbound

if TYPE_CHECKING:
    from cases.orders import Order

OUTBOX: Final[Table] = Hotline12345Outbound.__table__  # type: ignore[assignment]
FROM_12345: Final[Table] = Hotline12345Order.__table__  # type: ignore[assignment]
KINDS: Final = {
    "created": "accepted",
    "answered": "answered",
    "returned_to_12345": "returned",
    "extension_asked": "extension",
}
FORWARDED: Final = "forwarded"
PENDING: Final = "pending"
SENDING: Final = "sending"
SENT: Final = "sent"
FAILED: Final = "failed"
RECLAIM_AFTER: Final = dt.timedelta(minutes=10)
ERROR_MAX: Final = 500
_RETURNED = (OUTBOX.c.id, OUTBOX.c.counterpart, OUTBOX.c.order_no, OUTBOX.c.kind, OUTBOX.c.body, OUTBOX.c.attempts)
_WAITING = OUTBOX.c.status == literal_column(f"'{PENDING}'")
_DUE = (
    select(OUTBOX.c.id)
    .where(_WAITING, OUTBOX.c.counterpart == bindparam("b_counterpart"), OUTBOX.c.next_attempt_at <= bindparam("now"))
    .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
    .limit(bindparam("limit"))
)
_TAKE = {
    "status": SENDING,
    "claimed_by": bindparam("p_worker"),
    "claimed_at": bindparam("p_now"),
    "attempts": OUTBOX.c.attempts + 1,
}


@dataclass(frozen=True)
class Claimed:
    """A message claimed for one try; `attempts` counts this one."""

    id: int
    counterpart: str
    order_no: str
    kind: str
    body: str
    attempts: int


@dataclass(frozen=True)
class Outbound:
    """One message to 12345 as `hotline orders show` lists it."""

    id: int
    kind: str
    event_id: int
    status: str
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    final_at: dt.datetime | None
    last_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in self.__dict__.items()}


def message_id(counterpart: str, order_no: str, kind: str, event_id: int) -> str:
    """The message's key, sent in its body: 12345 can tell a resend (our answer lost) by it."""
    return f"{counterpart}:{order_no}:{kind}:{event_id}"


def enqueue(c: Connection, order: Order, event_id: int, action: str, at: dt.datetime, **fields: str) -> int | None:
    """In the caller's transaction: the message for this event of this order, if 12345 sent
    the order and hears of `action` (KINDS); its id, or None if there is none (or it was
    written before: the key holds)."""
    kind = KINDS.get(action)
    if kind is None or order.kind != "12345":
        return None
    link = c.execute(select(FROM_12345).where(FROM_12345.c.order_id == order.id)).first()
    if link is None:
        return None
    return _write(c, link.counterpart, link.order_no, kind, event_id, order.id, at, fields)


def enqueue_forward(
    c: Connection, order: Order, event_id: int, counterpart: str, order_no: str, at: dt.datetime, **fields: str
) -> int | None:
    """In the caller's transaction: the 转办 message of one of our orders to `counterpart`."""
    return _write(c, counterpart, order_no, FORWARDED, event_id, order.id, at, fields)


def _write(
    c: Connection,
    counterpart: str,
    order_no: str,
    kind: str,
    event_id: int,
    order_id: int,
    at: dt.datetime,
    fields: dict[str, str],
) -> int | None:
    body = {
        "message_id": message_id(counterpart, order_no, kind, event_id),
        "order_no": order_no,
        "kind": kind,
        "at": at.isoformat(),
        "order_id": order_id,
        **fields,
    }
    values = {
        "counterpart": counterpart,
        "order_no": order_no,
        "kind": kind,
        "event_id": event_id,
        "order_id": order_id,
        "body": json.dumps(body, ensure_ascii=False, sort_keys=True),
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }
    # RETURNING, not rowcount: psycopg gives no count for an INSERT that did nothing.
    statement = upsert(c, OUTBOX).values(**values).on_conflict_do_nothing().returning(OUTBOX.c.id)
    made = c.execute(statement).first()
    return int(made.id) if made is not None else None


def claim(store: Store, counterpart: str, worker: str, limit: int, now: dt.datetime) -> list[Claimed]:
    """Up to `limit` of this counterpart's messages due by `now`, oldest due first, now `sending`."""
    params = {"b_counterpart": counterpart, "now": now, "limit": limit, "p_worker": worker[:64], "p_now": now}
    with store.transaction() as c:
        if c.dialect.name == "postgresql":
            # Rows another sender holds are skipped, not waited for; ours are updated by id.
            ids = list(c.scalars(_DUE.with_for_update(skip_locked=True), params))
            chosen: ColumnElement[bool] = OUTBOX.c.id.in_(ids)
        else:
            # SQLite: one statement, the claim conditioned on `pending` (writers take turns).
            chosen = OUTBOX.c.id.in_(_DUE.scalar_subquery()) & _WAITING
        rows = c.execute(update(OUTBOX).where(chosen).values(**_TAKE).returning(*_RETURNED), params).all()
    return sorted((Claimed(*r) for r in map(tuple, rows)), key=lambda m: m.id)


def _finish(store: Store, m: Claimed, values: dict[str, Any]) -> None:
    with store.transaction() as c:
        c.execute(update(OUTBOX).where(OUTBOX.c.id == m.id, OUTBOX.c.status == SENDING).values(**values))


def sent(store: Store, m: Claimed, now: dt.datetime) -> None:
    _finish(store, m, {"status": SENT, "final_at": now, "last_error": None, "claimed_by": None})


def retry(store: Store, m: Claimed, reason: str, delay_s: float, now: dt.datetime) -> None:
    """Pending again, due `delay_s` from `now`; the reason is kept until a try succeeds."""
    values = {"status": PENDING, "next_attempt_at": now + dt.timedelta(seconds=delay_s)}
    _finish(store, m, values | {"last_error": reason[:ERROR_MAX], "claimed_by": None})


def dead(store: Store, m: Claimed, reason: str, now: dt.datetime) -> None:
    """Failed for good (a dead letter): kept with its reason, never claimed again."""
    _finish(store, m, {"status": FAILED, "final_at": now, "last_error": reason[:ERROR_MAX], "claimed_by": None})


def reclaim_stale(store: Store, now: dt.datetime) -> int:
    """Claims of a sender that died (left `sending`) pending again."""
    stale = (OUTBOX.c.status == SENDING) & (OUTBOX.c.claimed_at < now - RECLAIM_AFTER)
    with store.transaction() as c:
        values = {"status": PENDING, "claimed_by": None, "last_error": "reclaimed: its sender stopped"}
        return int(c.execute(update(OUTBOX).where(stale).values(**values)).rowcount)


def resend(c: Connection, outbound_id: int, now: dt.datetime) -> Outbound | None:
    """In the caller's transaction: a dead letter (`failed`) pending again, due now, its
    tries counted from zero and its last reason kept until a try succeeds; None if there is
    no such message or it is not failed (one pending or sent is not sent twice)."""
    again = {"status": PENDING, "next_attempt_at": now, "attempts": 0, "final_at": None}
    chosen = (OUTBOX.c.id == outbound_id) & (OUTBOX.c.status == FAILED)
    row = c.execute(update(OUTBOX).where(chosen).values(**again).returning(*OUTBOX.c)).first()
    if row is None:
        return None
    return _outbound(row)


def _outbound(r: Any) -> Outbound:
    return Outbound(**{name: getattr(r, name) for name in Outbound.__dataclass_fields__})


def messages_of(c: Connection, order_id: int) -> list[Outbound]:
    query = select(OUTBOX).where(OUTBOX.c.order_id == order_id).order_by(OUTBOX.c.id)
    return [_outbound(r) for r in c.execute(query)]
