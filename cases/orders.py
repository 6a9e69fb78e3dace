"""Work orders (工单): created, listed, read (audited), answered, returned, reassigned, closed.

Public API (stable: the console and the CLI call it; `settings` is core.settings.Settings,
`now` an aware datetime defaulting to the present, `department` given for a `department`
user restricts the call to that department's orders, and another's look like none at all):

    create_order(store, settings, *, kind, category, summary, created_by, department=None,
                 caller_number=None, resident_id=None, id_number_masked=None, call_id=None,
                 voice_message_id=None, now=None) -> Order
    order_from_call(store, settings, *, call_id, category, summary, created_by, department=None,
                    kind='call', now=None) -> Order   (the caller's number and resident from `calls`)
    call_order(conn, settings, <the same>) -> (Order, new)   in the caller's transaction; one order
        of kind 'call' per call: asked again, the one made before (uq_work_orders_call, 0028)
    orders_for(store, *, status=None, department=None, category=None, now=None, limit=500, offset=0)
        -> list[Order]   status: None (all) | 'open' (open or returned: waiting for an answer) |
        'overdue' (waiting, past due) | 'answered' | 'returned' | 'closed'; escalated ones first,
        then all and closed newest first, the others soonest due first
    count_orders(store, *, status=None, department=None, category=None, now=None) -> int  (one COUNT)
    page_of_orders(store, *, status, department, category, page=1, per_page=100, now=None) -> OrderPage
    overdue_count(store, *, department=None, now=None) -> int   (one COUNT: the overdue list's length)
    get_order(store, order_id, *, actor, department=None) -> OrderDetail   (audited read:order)
    answer_order(store, settings, order_id, *, actor, answer, reply_via, department=None, now=None) -> Order
        reply_via: 'sms' (a business event order_answered to the caller's number) |
        'callback' (a callbacks row for the caller's number) | 'none'
    return_order(store, order_id, *, actor, reason, department=None, now=None) -> Order
    reassign_order(store, settings, order_id, *, actor, department, now=None) -> Order
    close_order(store, order_id, *, actor, note='', now=None) -> Order
    cases.tasks: escalate_overdue(store, settings, now=None) -> list[Order]
                 voice_messages_to_orders(store, settings, now=None) -> list[Order]
                 run_once(store, settings, now=None) -> CaseworkReport
    cases.followup: send_due_followups(store, settings, now=None) -> list[Order]
                    collect_followup_replies(store, now=None) -> list[Order]
    cases.intake12345: receive(store, settings, signed, body, now=None) -> Received   (an order 12345
                    sent, kind '12345', once per counterpart and number; OrderDetail.from_12345)

Errors (cases.errors): OrderNotFound, OrderStateError (with .state), UnknownDepartment,
UnknownCategory, BadOrderInput, NoReplyNumber.

States (a small machine; each step is one conditional UPDATE, so two clerks acting at once
cannot both win, plus one `work_order_events` row):

    open ──answer──▶ answered ──close──▶ closed
    open ──return──▶ returned ──reassign──▶ open        returned ──answer──▶ answered
    open | returned ──close──▶ closed  (withdrawn or a duplicate: no reply goes out)

An order is overdue while it waits for an answer (open or returned) past `due_at`, the close
of business of its category's N-th working day after it was created (core.calendar).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from sqlalchemy import Connection, Row, Select, Table, case, func, select, text, update

from cases import outbox12345
from cases.errors import BadOrderInput, NoReplyNumber, OrderNotFound, OrderStateError, UnknownCategory
from cases.events import add_event, check_department, events_of, moment
from cases.replies import send_reply
from core import audit
from core.calendar import add_working_days
from core.calls_out import refuse
from core.db import Store, upsert
from core.destinations import DestinationPolicy, DestinationRefused
from core.models import CALL_ORDER_WHERE, Call, Hotline12345Order, VoiceMessage, WorkOrder
from core.phones import BadPhoneNumber
from core.settings import CASE_CATEGORIES, Settings

ORDERS: Final[Table] = WorkOrder.__table__  # type: ignore[assignment]
MESSAGES: Final[Table] = VoiceMessage.__table__  # type: ignore[assignment]
FROM_12345: Final[Table] = Hotline12345Order.__table__  # type: ignore[assignment]
KINDS: Final = ("call", "voice_message", "callback")  # and "12345", made only by cases.intake12345
STATES: Final = ("open", "answered", "returned", "closed")
WAITING: Final = ("open", "returned")  # for an answer
REPLY_VIA: Final = ("sms", "callback", "none")
SUMMARY_MAX: Final = 2000
ANSWER_MAX: Final = 300  # it goes out by SMS as it is (sms/templates.py order_answered)
REASON_MAX: Final = 500
# What the SMS gateway refuses to send (sms/templates.py): refused here already, where the
# clerk can still reword the answer, rather than as a failed event nobody sees.
_FULL_ID: Final = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)|(?<!\d)\d{15}(?!\d)")
_UNPRINTABLE: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class Order:
    id: int
    kind: str
    category: str
    summary: str
    department: str | None
    status: str
    resident_id: int | None
    id_number_masked: str | None
    caller_number: str | None
    call_id: str | None
    voice_message_id: int | None
    created_by: str
    created_at: dt.datetime
    due_at: dt.datetime
    answered_at: dt.datetime | None
    answer: str | None
    answered_by: str | None
    reply_via: str | None
    closed_at: dt.datetime | None
    escalated_at: dt.datetime | None
    followup_state: str | None
    followup_at: dt.datetime | None
    satisfaction: int | None

    def overdue(self, now: dt.datetime) -> bool:
        return self.status in WAITING and self.due_at < now

    def near_deadline(self, now: dt.datetime, hours: float) -> bool:
        """Waiting, not yet overdue, and due within `hours` (cases.near_deadline_hours)."""
        return self.status in WAITING and now <= self.due_at <= now + dt.timedelta(hours=hours)

    def as_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class OrderEvent:
    id: int
    at: dt.datetime
    actor: str
    action: str
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class From12345:
    """Where an order the 12345 hotline sent came from: the counterpart and its number there."""

    counterpart: str
    order_no: str


@dataclass(frozen=True)
class OrderDetail:
    order: Order
    events: tuple[OrderEvent, ...]
    # A voice message's recording, relative to recordings.dir, and its length; when the
    # retention sweep deleted its file (the order closed long ago), when and why.
    recording: str | None = None
    recording_s: int | None = None
    recording_deleted_at: dt.datetime | None = None
    recording_delete_reason: str | None = None
    from_12345: From12345 | None = None
    to_12345: tuple[outbox12345.Outbound, ...] = ()  # what 12345 was (or is to be) told of it

    def as_json(self) -> dict[str, Any]:
        deleted = self.recording_deleted_at
        return {
            **self.order.as_json(),
            "from_12345": asdict(self.from_12345) if self.from_12345 else None,
            "to_12345": [m.as_json() for m in self.to_12345],
            "recording": self.recording,
            "recording_s": self.recording_s,
            "recording_deleted_at": deleted.isoformat() if deleted else None,
            "recording_delete_reason": self.recording_delete_reason,
            "history": [e.as_json() for e in self.events],
        }


def order_of(row: Row[Any]) -> Order:
    return Order(**{name: row._mapping[name] for name in Order.__dataclass_fields__})


def checked_text(value: str, what: str, limit: int) -> str:
    """`value` stripped, if it is text an order may hold (not empty, at most `limit`
    characters, no control characters, no full ID number); BadOrderInput naming `what` if not."""
    value = value.strip()
    if not value:
        raise BadOrderInput(f"the {what} is empty")
    if len(value) > limit:
        raise BadOrderInput(f"the {what} has {len(value)} characters; at most {limit}")
    if _UNPRINTABLE.search(value):
        raise BadOrderInput(f"the {what} holds control characters")
    if _FULL_ID.search(value):
        raise BadOrderInput(f"the {what} holds what looks like a full ID number: write it masked")
    return value


def create_order(
    store: Store,
    settings: Settings,
    *,
    kind: str,
    category: str,
    summary: str,
    created_by: str,
    department: str | None = None,
    caller_number: str | None = None,
    resident_id: int | None = None,
    id_number_masked: str | None = None,
    call_id: str | None = None,
    voice_message_id: int | None = None,
    now: dt.datetime | None = None,
) -> Order:
    """A new open order, due on the calendar by its category's deadline."""
    now = moment(now)
    if kind not in KINDS:
        raise BadOrderInput(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    values = order_values(settings, kind, category, summary, created_by, department, now)
    values |= {
        "caller_number": _reachable(store, settings, caller_number, created_by) if caller_number else None,
        "resident_id": resident_id,
        "id_number_masked": id_number_masked,
        "call_id": call_id,
        "voice_message_id": voice_message_id,
    }
    with store.transaction() as c:
        made = existing_call_order(c, call_id) if kind == "call" and call_id else None
        if made is not None and call_id:
            raise BadOrderInput(f"call {call_id[:40]!r} has work order {made.id} already (one order per call)")
        return insert_order(c, values, now)


def _reachable(store: Store, settings: Settings, number: str, actor: str) -> str:
    """A number typed for a new order, in the store's form, if the hotline may call or text it
    (an answer goes to it by SMS or callback); BadOrderInput naming the rule if not."""
    try:
        return DestinationPolicy(settings.destinations, settings.sms.country_code).check(number)
    except DestinationRefused as exc:
        refuse(store, exc, where="new work order's caller number", actor=actor)
        raise BadOrderInput(f"the caller number {exc}") from None
    except BadPhoneNumber as exc:
        raise BadOrderInput(f"the caller number: {exc}") from None


def order_from_call(
    store: Store,
    settings: Settings,
    *,
    call_id: str,
    category: str,
    summary: str,
    created_by: str,
    department: str | None = None,
    kind: str = "call",
    now: dt.datetime | None = None,
) -> Order:
    """An order for a call an agent took (the wrap-up's "needs follow-up") or a callback that
    could not be settled (`kind='callback'`), in a transaction of its own: see call_order."""
    with store.transaction() as c:
        order, _ = call_order(
            c, settings, call_id=call_id, category=category, summary=summary, created_by=created_by,
            department=department, kind=kind, now=now,
        )  # fmt: skip
    return order


def call_order(
    c: Connection,
    settings: Settings,
    *,
    call_id: str,
    category: str,
    summary: str,
    created_by: str,
    department: str | None = None,
    kind: str = "call",
    now: dt.datetime | None = None,
) -> tuple[Order, bool]:
    """The call's order in the caller's transaction, and whether it is new. The caller's
    number and the identified resident come from the call's record (BadOrderInput if there
    is no such call). A call has one order of kind 'call': asking again (the wrap-up saved
    again) returns the one made before, unchanged, in whatever state it is now."""
    now = moment(now)
    if kind not in KINDS:
        raise BadOrderInput(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    values = order_values(settings, kind, category, summary, created_by, department, now)
    call = c.execute(select(Call.caller_number, Call.resident_id).where(Call.id == call_id)).first()
    if call is None:
        raise BadOrderInput(f"no call {call_id[:40]!r}")
    values |= {"caller_number": call.caller_number or None, "resident_id": call.resident_id, "call_id": call_id}
    if kind != "call":
        return insert_order(c, values, now), True
    made = existing_call_order(c, call_id)
    if made is not None:
        return made, False
    # Two saves at once: the partial unique index (uq_work_orders_call) lets one insert win.
    statement = upsert(c, ORDERS).values(**values)
    statement = statement.on_conflict_do_nothing(index_elements=["call_id"], index_where=text(CALL_ORDER_WHERE))
    row = c.execute(statement.returning(*ORDERS.c)).first()
    if row is None:
        made = existing_call_order(c, call_id)
        assert made is not None  # the conflicting order is there: the index says so
        return made, False
    order = order_of(row)
    add_created(c, order, now)
    return order, True


def existing_call_order(c: Connection, call_id: str) -> Order | None:
    """The call's order of kind 'call' (the first, should older duplicates be closed)."""
    query = select(ORDERS).where(ORDERS.c.call_id == call_id, ORDERS.c.kind == "call")
    row = c.execute(query.order_by(ORDERS.c.status == "closed", ORDERS.c.id).limit(1)).first()
    return order_of(row) if row is not None else None


def order_values(
    settings: Settings,
    kind: str,
    category: str,
    summary: str,
    created_by: str,
    department: str | None,
    created_at: dt.datetime,
) -> dict[str, Any]:
    if category not in CASE_CATEGORIES:
        raise UnknownCategory(category, CASE_CATEGORIES)
    if department:
        check_department(settings.cases.departments, department)
    days = settings.cases.deadline_days[category]
    return {
        "kind": kind,
        "category": category,
        "summary": checked_text(summary, "summary", SUMMARY_MAX),
        "department": department or None,
        "status": "open",
        "created_by": created_by,
        "created_at": created_at,
        "due_at": add_working_days(settings.queue, created_at, days),
    }


def insert_order(
    c: Connection, values: dict[str, Any], now: dt.datetime, origin: dict[str, Any] | None = None
) -> Order:
    """Insert the order and its `created` event in the caller's transaction; `origin`, where
    it came from when that is not our own (12345's counterpart and number), goes in the event."""
    order = order_of(c.execute(ORDERS.insert().values(**values).returning(*ORDERS.c)).one())
    add_created(c, order, now, origin)
    return order


def add_created(c: Connection, order: Order, now: dt.datetime, origin: dict[str, Any] | None = None) -> None:
    detail: dict[str, Any] = {"kind": order.kind, "category": order.category, "department": order.department}
    detail["due_at"] = order.due_at.isoformat()
    detail |= origin or {}
    if order.voice_message_id is not None:
        detail["voice_message_id"] = order.voice_message_id
    add_event(c, order.id, order.created_by, "created", detail, now)


@dataclass(frozen=True)
class OrderPage:
    """One page of a list of orders, and how many the whole list holds (one COUNT)."""

    orders: tuple[Order, ...]
    total: int
    page: int  # from 1
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first(self) -> int:
        """The position of the page's first order in the whole list (1-based; 0 when empty)."""
        return (self.page - 1) * self.per_page + 1 if self.orders else 0

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total


def _listed(
    query: Select[Any], status: str | None, department: str | None, category: str | None, now: dt.datetime
) -> Select[Any]:
    """The list's filters, all in SQL (so that a limit or a page cuts the filtered list)."""
    if status == "open":
        query = query.where(ORDERS.c.status.in_(WAITING))
    elif status == "overdue":
        query = query.where(ORDERS.c.status.in_(WAITING), ORDERS.c.due_at < now)
    elif status in STATES:
        query = query.where(ORDERS.c.status == status)
    elif status not in (None, "all"):
        raise BadOrderInput(f"unknown status {status!r} (open, overdue, answered, returned, closed)")
    if department is not None:
        query = query.where(ORDERS.c.department == department)
    if category is not None:
        if category not in CASE_CATEGORIES:
            raise UnknownCategory(category, CASE_CATEGORIES)
        query = query.where(ORDERS.c.category == category)
    return query


def _ordering(status: str | None, now: dt.datetime) -> tuple[Any, ...]:
    """Escalated (督办) orders still waiting past due first; then the whole list and the closed
    newest first (a new order is on page 1), what waits soonest due first."""
    escalated = ORDERS.c.escalated_at.is_not(None) & ORDERS.c.status.in_(WAITING) & (ORDERS.c.due_at < now)
    first = case((escalated, 0), else_=1)
    if status in (None, "all"):
        return first, ORDERS.c.created_at.desc(), ORDERS.c.id.desc()
    if status == "closed":
        return ORDERS.c.closed_at.desc(), ORDERS.c.id.desc()
    return first, ORDERS.c.due_at, ORDERS.c.id


def orders_for(
    store: Store,
    *,
    status: str | None = None,
    department: str | None = None,
    category: str | None = None,
    now: dt.datetime | None = None,
    limit: int = 500,
    offset: int = 0,
) -> list[Order]:
    """Orders, escalated ones first; then waiting ones soonest due first, all and closed ones
    newest first. `limit` cuts the list: count_orders says how long it is."""
    now = moment(now)
    query = _listed(select(ORDERS), status, department, category, now).order_by(*_ordering(status, now))
    with store.transaction() as c:
        return [order_of(r) for r in c.execute(query.limit(limit).offset(offset))]


def count_orders(
    store: Store,
    *,
    status: str | None = None,
    department: str | None = None,
    category: str | None = None,
    now: dt.datetime | None = None,
) -> int:
    """How many orders `orders_for` would list without a limit: one COUNT in the database."""
    query = _listed(select(func.count()).select_from(ORDERS), status, department, category, moment(now))
    with store.transaction() as c:
        return int(c.execute(query).scalar_one())


def page_of_orders(
    store: Store,
    *,
    status: str | None = None,
    department: str | None = None,
    category: str | None = None,
    page: int = 1,
    per_page: int = 100,
    now: dt.datetime | None = None,
) -> OrderPage:
    """Page `page` (from 1) of `orders_for`'s list, with the list's length: two queries."""
    if page < 1 or per_page < 1:
        raise BadOrderInput(f"page {page} of {per_page} orders: both count from 1")
    now = moment(now)
    found = orders_for(
        store, status=status, department=department, category=category, now=now,
        limit=per_page, offset=(page - 1) * per_page,
    )  # fmt: skip
    total = count_orders(store, status=status, department=department, category=category, now=now)
    return OrderPage(tuple(found), total, page, per_page)


def overdue_count(store: Store, *, department: str | None = None, now: dt.datetime | None = None) -> int:
    """How many orders `orders_for(status='overdue')` lists: one COUNT in the database (on
    the status/due index), for the supervisors' nav badge and the wallboard."""
    return count_orders(store, status="overdue", department=department, now=now)


def read_order(c: Connection, order_id: int, department: str | None) -> Order:
    """The order in this transaction; OrderNotFound too when it is another department's."""
    row = c.execute(select(ORDERS).where(ORDERS.c.id == order_id)).first()
    if row is None:
        raise OrderNotFound(order_id)
    order = order_of(row)
    if department is not None and order.department != department:
        raise OrderNotFound(order_id)
    return order


def get_order(store: Store, order_id: int, *, actor: str, department: str | None = None) -> OrderDetail:
    """The order with its history and recording; every view is audited (`read:order`, in
    the same transaction as the read): an order holds the caller's number and what they
    said, whether or not they named themselves as a resident."""
    with store.transaction() as c:
        order = read_order(c, order_id, department)
        events = events_of(c, order_id)
        message = None
        if order.voice_message_id is not None:
            columns = (MESSAGES.c.recording, MESSAGES.c.duration_s, MESSAGES.c.deleted_at, MESSAGES.c.delete_reason)
            message = c.execute(select(*columns).where(MESSAGES.c.id == order.voice_message_id)).first()
        origin = _from_12345(c, order_id) if order.kind == "12345" else None
        told = tuple(outbox12345.messages_of(c, order_id))  # from 12345, or forwarded to it
        audit.record(
            c,
            actor=actor,
            action="read:order",
            resident_id=order.resident_id,
            call_id=order.call_id,
            detail=f"work order {order_id}",
        )
    if message is None:
        return OrderDetail(order, tuple(events), from_12345=origin, to_12345=told)
    return OrderDetail(
        order, tuple(events), message.recording, message.duration_s, message.deleted_at, message.delete_reason,
        from_12345=origin, to_12345=told,
    )  # fmt: skip


def _from_12345(c: Connection, order_id: int) -> From12345 | None:
    query = select(FROM_12345.c.counterpart, FROM_12345.c.order_no).where(FROM_12345.c.order_id == order_id)
    row = c.execute(query).first()
    return From12345(row.counterpart, row.order_no) if row is not None else None


def transition(
    c: Connection,
    order_id: int,
    allowed: Sequence[str],
    action: str,
    values: dict[str, Any],
    department: str | None = None,
) -> Order:
    """Move the order on if it is in one of `allowed` (and of `department`), in the caller's
    transaction; OrderStateError (with its state) if it is not, OrderNotFound if there is none."""
    condition = (ORDERS.c.id == order_id) & ORDERS.c.status.in_(allowed)
    if department is not None:
        condition &= ORDERS.c.department == department
    row = c.execute(update(ORDERS).where(condition).values(**values).returning(*ORDERS.c)).first()
    if row is not None:
        return order_of(row)
    current = read_order(c, order_id, department)
    raise OrderStateError(order_id, current.status, action)


def answer_order(
    store: Store,
    settings: Settings,
    order_id: int,
    *,
    actor: str,
    answer: str,
    reply_via: str,
    department: str | None = None,
    now: dt.datetime | None = None,
) -> Order:
    """Record the answer and send it to the resident as `reply_via` says, in one transaction."""
    now = moment(now)
    answer = checked_text(answer, "answer", ANSWER_MAX)
    if reply_via not in REPLY_VIA:
        raise BadOrderInput(f"unknown reply_via {reply_via!r} (sms, callback or none)")
    try:
        with store.transaction() as c:
            values = {"status": "answered", "answer": answer, "answered_by": actor, "answered_at": now}
            order = transition(c, order_id, WAITING, "answered", values | {"reply_via": reply_via}, department)
            if reply_via != "none" and not order.caller_number:
                raise NoReplyNumber(order_id, reply_via)  # rolls the answer back: it would reach nobody
            sent = send_reply(c, settings, order, now)
            detail: dict[str, Any] = {"reply_via": reply_via, "answer": answer, "late": now > order.due_at} | sent
            event_id = add_event(c, order_id, actor, "answered", detail, now)
            outbox12345.enqueue(c, order, event_id, "answered", now, answer=answer)  # 办结, if from 12345
    except NoReplyNumber as exc:
        if exc.refused is not None:  # a number abroad (or a premium one) to call or text: on record
            refuse(store, exc.refused, where=f"work order {order_id} answer by {reply_via}", actor=actor)
        raise
    return order


def return_order(
    store: Store,
    order_id: int,
    *,
    actor: str,
    reason: str,
    department: str | None = None,
    now: dt.datetime | None = None,
) -> Order:
    """The department sends the order back to the hotline (not theirs, or not enough to go on)."""
    now = moment(now)
    reason = checked_text(reason, "reason", REASON_MAX)
    with store.transaction() as c:
        order = transition(c, order_id, ("open",), "returned", {"status": "returned"}, department)
        # Not told to 12345: a department giving the order back to the hotline is ours alone
        # (the hotline reassigns it); 退单 to 12345 is the hotline giving it back to 12345.
        add_event(c, order_id, actor, "returned", {"reason": reason, "department": order.department}, now)
    return order


def reassign_order(
    store: Store,
    settings: Settings,
    order_id: int,
    *,
    actor: str,
    department: str,
    now: dt.datetime | None = None,
) -> Order:
    """Hand a waiting order to a (new) department; it is open there. The deadline stays."""
    now = moment(now)
    check_department(settings.cases.departments, department)
    with store.transaction() as c:
        before = read_order(c, order_id, None)
        values = {"status": "open", "department": department}
        order = transition(c, order_id, WAITING, "reassigned", values)
        add_event(c, order_id, actor, "assigned", {"from": before.department, "to": department}, now)
    return order


def close_order(
    store: Store,
    order_id: int,
    *,
    actor: str,
    note: str = "",
    now: dt.datetime | None = None,
) -> Order:
    """Close an answered order (办结), or a waiting one without a reply (then `note`, the
    reason, is required: withdrawn, a duplicate of another order)."""
    now = moment(now)
    note = checked_text(note, "note", REASON_MAX) if note.strip() else ""
    with store.transaction() as c:
        current = read_order(c, order_id, None)
        if current.status in WAITING and not note:
            raise BadOrderInput(f"work order {order_id} was not answered: closing it needs a note saying why")
        values = {"status": "closed", "closed_at": now}
        order = transition(c, order_id, (*WAITING, "answered"), "closed", values)
        add_event(c, order_id, actor, "closed", {"note": note, "answered": current.status == "answered"}, now)
    return order
