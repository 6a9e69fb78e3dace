"""From `business_events` rows to `sms_messages`: take up, render, address, queue.

Events are taken up and expanded in one transaction: the oldest pending events, chosen
`FOR UPDATE SKIP LOCKED` on PostgreSQL (so concurrent intakes never take the same event)
and by an UPDATE's own `status` condition on SQLite (which serialises writers), become
`queued` in the same transaction that inserts their messages. A crash before the commit
leaves them pending and adds nothing; no event waits for a dead dispatcher's timeout.

Messages are inserted with ON CONFLICT DO NOTHING on (event_id, recipient), so an event
made pending again by hand adds nothing twice. An event that cannot be sent (unknown
type, a payload that does not fit its template, nobody to send to) ends `failed` with the
reason; one with messages ends `queued`.

Whatever the business system wrote, one event never holds up the others: the payload is
read as text and parsed here, event by event, and the events taken together are expanded
in a savepoint. Should that fail on anything but the store being out of reach (a fault
of ours, or a row the store refuses), they are expanded again one at a time, each in its
own savepoint, and the one that fails ends `failed` with the fault named and logged
with its traceback, instead of rolling back the batch to be taken up again for ever.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, Text, bindparam, cast, literal_column, select, update
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

from core.business import BusinessPort
from core.db import Store, among, chunks, insert_rows, upsert
from core.errors import StoreUnavailable
from core.masking import mask_id, mask_phone
from core.models import BusinessEvent, SmsMessage, SmsOptOut, utcnow
from core.phones import BadPhoneNumber, store_form
from core.settings import SmsSettings
from core.states import EventState, MessageState
from sms.outbox import LockAndUpdate
from sms.templates import OPTIONAL_CATEGORIES, TEMPLATES, TemplateError, parse_payload, render, shown

log = logging.getLogger(__name__)
EVENTS: Table = BusinessEvent.__table__  # type: ignore[assignment]
MESSAGES: Table = SmsMessage.__table__  # type: ignore[assignment]
# Sent as soon as the event is committed, ahead of any batch.
INSTANT_CATEGORIES = frozenset({"resident_reminder", "security", "medical", "casework"})
INSTANT_TYPES = sorted(t.event_type for t in TEMPLATES.values() if t.category in INSTANT_CATEGORIES)
SUBJECT_KINDS = frozenset(t.subject_kind for t in TEMPLATES.values())


@dataclass
class IntakeReport:
    events: int = 0
    queued: int = 0
    failed: int = 0
    messages: int = 0
    skipped: int = 0  # opted out
    # (event id, its type, the reason): logged once committed
    failures: list[tuple[int, str, str]] = field(default_factory=list)

    def add(self, other: IntakeReport) -> None:
        self.events += other.events
        self.queued += other.queued
        self.failed += other.failed
        self.messages += other.messages
        self.skipped += other.skipped
        self.failures += other.failures


@dataclass(frozen=True)
class Claimed:
    id: int
    event_type: str
    subject_kind: str
    subject_id: str
    payload: str | None  # the JSON as stored: parsed per event, so no row can stop a take
    batch_id: int | None = None


def _take_statement(instant_only: bool) -> LockAndUpdate:
    # 'pending' written out, not a bound parameter: only then can the planner see that the
    # partial indexes' condition holds.
    condition: ColumnElement[bool] = EVENTS.c.status == literal_column(f"'{EventState.PENDING}'")
    # The two kinds apart: an instant event is the dispatcher's step's to take (it claims
    # the message at once), never a batch intake's that happened to look first.
    condition &= EVENTS.c.event_type.in_(INSTANT_TYPES) if instant_only else EVENTS.c.event_type.not_in(INSTANT_TYPES)
    due = (
        select(EVENTS.c.id)
        .where(condition)
        .order_by(EVENTS.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    returned = (
        EVENTS.c.id,
        EVENTS.c.event_type,
        EVENTS.c.subject_kind,
        EVENTS.c.subject_id,
        cast(EVENTS.c.payload, Text),
        EVENTS.c.batch_id,
    )
    values: dict[str, Any] = {"status": EventState.QUEUED, "claimed_at": bindparam("p_now"), "reason": None}
    # Instant ones are few: found by type, then sorted (not in id order).
    return LockAndUpdate(EVENTS, due, condition, values, returned, ordered=not instant_only)


TAKE = {instant_only: _take_statement(instant_only) for instant_only in (False, True)}


def _take(c: Connection, limit: int, now: dt.datetime, *, instant_only: bool) -> list[Claimed]:
    """Up to `limit` pending events, oldest first, taken up in the caller's transaction
    (`queued` now; `_fail` turns those that cannot be sent to `failed`). `instant_only`:
    pending events of the instant types (an index range, however many batch events wait),
    so an instant reminder never queues behind a batch's intake; else those of the others."""
    rows = TAKE[instant_only].run(c, {"limit": limit, "p_now": now})
    return sorted((Claimed(*r) for r in map(tuple, rows)), key=lambda e: e.id)


def recipients(
    port: BusinessPort, subject_kind: str, subject_ids: list[str], country_code: str = "86"
) -> dict[str, list[str]]:
    """Phones by subject, as the business port gives them (a person's registered phones by ID
    number, an employer's contact phone by unified social credit code), in the store's one
    form (core.phones), as opt-outs and replies are, whatever form the business system wrote
    them in. One that is no phone number is left out (and logged)."""
    found: dict[str, set[str]] = {}
    # A `phone` subject is the number to text (a reply to whoever asked the hotline): no
    # registration to look up.
    given = {s: [s] for s in subject_ids} if subject_kind == "phone" else port.recipients(subject_kind, subject_ids)
    for subject, numbers in given.items():
        for number in numbers:
            if not number:
                continue
            try:
                found.setdefault(subject, set()).add(store_form(number, country_code))
            except BadPhoneNumber as exc:
                log.warning(
                    "%s %s: registered number %s left out: %s", subject_kind, mask_id(subject), mask_phone(number), exc
                )
    return {subject: sorted(numbers) for subject, numbers in found.items()}


def quiet_until(settings: SmsSettings, zone: str, category: str, now: dt.datetime) -> dt.datetime:
    """`now`, or the end of the category's quiet hours if `now` falls inside them."""
    window = settings.quiet_hours.get(category)
    if window is None or category in INSTANT_CATEGORIES:
        return now
    start, end = window
    local = now.astimezone(zoneinfo.ZoneInfo(zone))
    t = local.time().replace(tzinfo=None)
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return now
    wake = local.replace(hour=end.hour, minute=end.minute, second=end.second, microsecond=0)
    if wake <= local:
        wake += dt.timedelta(days=1)
    return wake.astimezone(dt.UTC)


def _once_per_recipient(insert: Any) -> Any:
    return insert.on_conflict_do_nothing(index_elements=["event_id", "recipient"])


def _fail(c: Connection, event: Claimed, reason: str, report: IntakeReport) -> None:
    c.execute(update(EVENTS).where(EVENTS.c.id == event.id).values(status=EventState.FAILED, reason=reason))
    report.failed += 1
    report.failures.append((event.id, event.event_type, reason))


def _unfit(event: Claimed) -> str | None:
    """Why the event's type and subject kind cannot be sent, if they cannot."""
    template = TEMPLATES.get(event.event_type)
    if template is None:
        return f"unknown event type {shown(event.event_type)}"
    if event.subject_kind == template.subject_kind:
        return None
    if event.subject_kind in SUBJECT_KINDS:
        return f"{event.event_type} is for a {template.subject_kind}, not a {event.subject_kind}"
    return f"unknown subject kind {shown(event.subject_kind)} ({event.event_type} is for a {template.subject_kind})"


def _render_all(c: Connection, events: list[Claimed], zone: str, report: IntakeReport) -> list[tuple[Claimed, str]]:
    """Each event with its text; an event that cannot be rendered fails with the reason."""
    rendered: list[tuple[Claimed, str]] = []
    for event in events:
        unfit = _unfit(event)
        if unfit is not None:
            _fail(c, event, unfit, report)
            continue
        try:
            rendered.append((event, render(event.event_type, parse_payload(event.payload), zone)))
        except TemplateError as exc:
            _fail(c, event, str(exc), report)
    return rendered


def _nobody(event: Claimed) -> str:
    if event.subject_kind == "person":
        return f"no registered phone for person {mask_id(event.subject_id[:32])}"
    if event.subject_kind == "phone":
        return f"not a phone number: {mask_phone(event.subject_id[:32])}"
    return f"no registered phone for {event.subject_kind} {shown(event.subject_id)}"


def _expand(
    c: Connection,
    port: BusinessPort,
    events: list[Claimed],
    settings: SmsSettings,
    zone: str,
    report: IntakeReport,
    now: dt.datetime,
) -> None:
    """Turn taken events into their messages (or their failures): one query for the
    recipients, one for opt-outs, one INSERT; an UPDATE only for those that fail."""
    report.events += len(events)
    rendered = _render_all(c, events, zone, report)
    phones: dict[tuple[str, str], list[str]] = {}
    for kind in {event.subject_kind for event, _ in rendered}:
        subjects = sorted({event.subject_id for event, _ in rendered if event.subject_kind == kind})
        found = recipients(port, kind, subjects, settings.country_code)
        phones.update(((kind, subject), numbers) for subject, numbers in found.items())
    optional = {
        phone
        for event, _ in rendered
        if TEMPLATES[event.event_type].category in OPTIONAL_CATEGORIES
        for phone in phones.get((event.subject_kind, event.subject_id), [])
    }
    opted_out: set[str] = set()
    for numbers in chunks(sorted(optional)):
        opted_out.update(c.scalars(select(SmsOptOut.phone).where(among(c, SmsOptOut.phone, numbers))))
    rows: list[dict[str, Any]] = []
    for event, text in rendered:
        template = TEMPLATES[event.event_type]
        to = phones.get((event.subject_kind, event.subject_id))
        if not to:
            _fail(c, event, _nobody(event), report)
            continue
        skipped = opted_out if template.category in OPTIONAL_CATEGORIES else set()
        due = quiet_until(settings, zone, template.category, now)
        rows += [
            {
                "event_id": event.id,
                "event_type": event.event_type,
                "category": template.category,
                "recipient": phone,
                "text": text,
                "priority": 0 if template.category in INSTANT_CATEGORIES else 1,
                "batch_id": event.batch_id,
                "status": MessageState.SKIPPED if phone in skipped else MessageState.QUEUED,
                "last_error": "opted out (TD)" if phone in skipped else None,
                "attempts": 0,
                "next_attempt_at": due,
                "segments": 1,
                "created_at": now,
                "duplicate_suspect": False,
            }
            for phone in to
        ]
        report.queued += 1
        for phone in to:
            if phone in skipped:
                report.skipped += 1
                log.info("event %d: %s opted out of %s", event.id, mask_phone(phone), template.category)
            else:
                report.messages += 1
    insert_rows(c, MESSAGES, rows, _once_per_recipient)


def _out_of_reach(exc: Exception) -> bool:
    """The store, not the event: what core.db turns into StoreUnavailable (the connection
    lost, a lock or statement timeout, SQLITE_BUSY). Left to fail the whole take, which
    leaves every event pending for the next."""
    if isinstance(exc, StoreUnavailable | OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _fault(exc: Exception) -> str:
    """The exception for the log, without what a statement's error carries: its SQL and
    parameters (phones, names, texts). The driver's first line names the constraint."""
    if isinstance(exc, StatementError):
        first_line = str(exc.orig).partition("\n")[0]
        return f"{type(exc).__name__}: {type(exc.orig).__name__}: {first_line}"
    return f"{type(exc).__name__}: {exc}"


def _expand_saved(
    c: Connection, port: BusinessPort, events: list[Claimed], settings: SmsSettings, zone: str, now: dt.datetime
) -> IntakeReport:
    part = IntakeReport()
    with c.begin_nested():
        _expand(c, port, events, settings, zone, part, now)
    return part


def _expand_apart(
    c: Connection,
    port: BusinessPort,
    events: list[Claimed],
    settings: SmsSettings,
    zone: str,
    report: IntakeReport,
    now: dt.datetime,
) -> None:
    """`_expand` for all the events together in a savepoint (one query of each kind); if
    that fails, for each on its own, and an event that fails alone ends failed."""
    try:
        report.add(_expand_saved(c, port, events, settings, zone, now))
        return
    except Exception as exc:  # sorted out below: the store's trouble is raised, an event's is not
        if _out_of_reach(exc):
            raise
        log.warning(
            "events %d to %d: expanding them together failed (%s); one at a time",
            events[0].id,
            events[-1].id,
            type(exc).__name__,
        )
    for event in events:
        try:
            report.add(_expand_saved(c, port, [event], settings, zone, now))
        except Exception as exc:  # a fault of ours or a row refused: this event fails, not the take
            if _out_of_reach(exc):
                raise
            log.error(
                "event %d (%s) not expanded: %s\nTraceback (most recent call last):\n%s",
                event.id,
                shown(event.event_type),
                _fault(exc),
                "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
            )
            part = IntakeReport(events=1)
            _fail(c, event, f"not expanded: {type(exc).__name__} (a fault in the gateway; see its log)", part)
            report.add(part)


def intake(
    store: Store,
    port: BusinessPort,
    settings: SmsSettings,
    zone: str,
    limit: int = 500,
    now: dt.datetime | None = None,
    passes: tuple[bool, ...] = (True, False),
) -> IntakeReport:
    """Take up to `limit` pending events and make their messages, instant types first, each
    pass in one transaction; returns what happened. `passes`: (True,) for the instant types,
    (False,) for the others, (True, False) for all. The store out of reach (or a crash)
    before the commit leaves the events pending and adds nothing; a fault in one event
    fails that event alone."""
    now = now or utcnow()
    report = IntakeReport()
    for instant_only in passes:
        logged = len(report.failures)
        with store.transaction() as c:
            events = _take(c, limit, now, instant_only=instant_only)
            if events:
                _expand_apart(c, port, events, settings, zone, report, now)
        for event_id, event_type, reason in report.failures[logged:]:
            log.warning("event %d (%s) not sent: %s", event_id, shown(event_type), reason)
    return report


def emit(store: Store, event_type: str, subject_kind: str, subject_id: str, payload: dict[str, Any], key: str) -> bool:
    """INSERT a business event as the business system would; False if the key exists already."""
    with store.transaction() as c:
        stmt = (
            upsert(c, EVENTS)
            .values(
                event_type=event_type,
                subject_kind=subject_kind,
                subject_id=subject_id,
                payload=payload,
                idempotency_key=key,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(EVENTS.c.id)
        )
        return c.execute(stmt).first() is not None
