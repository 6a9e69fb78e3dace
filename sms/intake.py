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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, Text, bindparam, cast, literal_column, select, update
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

from core.business import BusinessPort
from core.calls_out import refuse
from core.db import Store, among, chunks, insert_rows, upsert
from core.destinations import DestinationPolicy, DestinationRefused, DestinationSettings
from core.errors import StoreUnavailable
from core.masking import mask_id, mask_phone
from core.models import BusinessEvent, SmsMessage, SmsOptOut, utcnow
from core.phones import BadPhoneNumber
from core.preferences import Preference, choose, load
from core.settings import SmsSettings, WeChatSettings
from core.states import EventState
from sms.channels import (
    INSTANT_CATEGORIES,
    SMS_ONLY_TYPES,
    Channels,
    NewNotice,
    bindings,
    once_per_recipient,
    quiet_until,
    sms_row,
    start_notice,
)
from sms.outbox import LockAndUpdate
from sms.templates import OPTIONAL_CATEGORIES, TEMPLATES, TemplateError, parse_payload, render, shown

log = logging.getLogger(__name__)
EVENTS: Table = BusinessEvent.__table__  # type: ignore[assignment]
MESSAGES: Table = SmsMessage.__table__  # type: ignore[assignment]
__all__ = ["INSTANT_CATEGORIES", "IntakeReport", "emit", "intake", "quiet_until", "recipients"]
INSTANT_TYPES = sorted(t.event_type for t in TEMPLATES.values() if t.category in INSTANT_CATEGORIES)
SUBJECT_KINDS = frozenset(t.subject_kind for t in TEMPLATES.values())


@dataclass
class IntakeReport:
    events: int = 0
    queued: int = 0
    failed: int = 0
    messages: int = 0
    skipped: int = 0  # opted out
    notices: int = 0  # events whose subject chose channels (sms/channels.py)
    # (event id, its type, the reason): logged once committed
    failures: list[tuple[int, str, str]] = field(default_factory=list)

    def add(self, other: IntakeReport) -> None:
        self.events += other.events
        self.queued += other.queued
        self.failed += other.failed
        self.messages += other.messages
        self.skipped += other.skipped
        self.notices += other.notices
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
    port: BusinessPort,
    subject_kind: str,
    subject_ids: list[str],
    country_code: str = "86",
    policy: DestinationPolicy | None = None,
    refused: list[tuple[str, DestinationRefused]] | None = None,
) -> dict[str, list[str]]:
    """Phones by subject, as the business port gives them (a person's registered phones by ID
    number, an employer's contact phone by unified social credit code), in the store's one
    form (core.phones), as opt-outs and replies are, whatever form the business system wrote
    them in. One that is no phone number is left out (and logged); so is one `policy` (the
    default destination policy unless given) refuses, added to `refused` to go on record."""
    policy = policy or DestinationPolicy(DestinationSettings(), country_code)
    found: dict[str, set[str]] = {}
    # A `phone` subject is the number to text (a reply to whoever asked the hotline): no
    # registration to look up.
    given = {s: [s] for s in subject_ids} if subject_kind == "phone" else port.recipients(subject_kind, subject_ids)
    for subject, numbers in given.items():
        for number in numbers:
            if not number:
                continue
            try:
                found.setdefault(subject, set()).add(policy.check(number))
            except DestinationRefused as exc:
                where = f"{subject_kind} {mask_id(subject)}: registered number"
                if refused is None:
                    log.warning("%s left out: %s", where, exc)
                else:
                    refused.append((where, exc))
            except BadPhoneNumber as exc:
                log.warning(
                    "%s %s: registered number %s left out: %s", subject_kind, mask_id(subject), mask_phone(number), exc
                )
    return {subject: sorted(numbers) for subject, numbers in found.items() if numbers}


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


def _nobody(event: Claimed, channels: Channels) -> str:
    where = f"{event.subject_kind} {mask_id(event.subject_id)}: registered number"
    refused = [exc for at, exc in channels.refused if at == where]
    if refused:
        return f"every registered number refused by the destination policy ({refused[0].rule}): {refused[0]}"
    if event.subject_kind == "person":
        return f"no registered phone for person {mask_id(event.subject_id[:32])}"
    if event.subject_kind == "phone":
        return f"not a phone number: {mask_phone(event.subject_id[:32])}"
    return f"no registered phone for {event.subject_kind} {shown(event.subject_id)}"


Chosen = dict[tuple[str, str], dict[str, Preference | str]]


def _preferences(c: Connection, rendered: list[tuple[Claimed, str]]) -> Chosen:
    """The preference rows of the events' subjects: one query per subject kind."""
    chosen: Chosen = {}
    for kind in {event.subject_kind for event, _ in rendered} & {"person", "unit"}:
        subjects = [event.subject_id for event, _ in rendered if event.subject_kind == kind]
        chosen.update(((kind, subject), rows) for subject, rows in load(c, kind, subjects).items())
    return chosen


def _expand(
    c: Connection,
    port: BusinessPort,
    events: list[Claimed],
    channels: Channels,
    report: IntakeReport,
    now: dt.datetime,
) -> None:
    """Turn taken events into their messages (or their failures): one query for the
    recipients, one for preferences, one for opt-outs, one INSERT; an UPDATE only for
    those that fail. Subjects with preferences get notices (sms/channels.py)."""
    settings = channels.sms
    report.events += len(events)
    rendered = _render_all(c, events, channels.zone, report)
    phones: dict[tuple[str, str], list[str]] = {}
    for kind in {event.subject_kind for event, _ in rendered}:
        subjects = sorted({event.subject_id for event, _ in rendered if event.subject_kind == kind})
        found = recipients(port, kind, subjects, settings.country_code, channels.destinations, channels.refused)
        phones.update(((kind, subject), numbers) for subject, numbers in found.items())
    chosen = _preferences(c, rendered)
    if chosen:
        notices = [(e, t) for e, t in rendered if (e.subject_kind, e.subject_id) in chosen]
        notices = [(e, t) for e, t in notices if e.event_type not in SMS_ONLY_TYPES]
        if notices:
            rendered = [pair for pair in rendered if pair not in notices]
            _start_notices(c, notices, chosen, phones, channels, report, now)
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
            _fail(c, event, _nobody(event, channels), report)
            continue
        skipped = opted_out if template.category in OPTIONAL_CATEGORIES else set()
        due = quiet_until(settings, channels.zone, template.category, now)
        rows += [
            sms_row(
                event.id, event.event_type, template.category, event.batch_id, phone, text, due, now, phone in skipped
            )
            for phone in to
        ]
        report.queued += 1
        for phone in to:
            if phone in skipped:
                report.skipped += 1
                log.info("event %d: %s opted out of %s", event.id, mask_phone(phone), template.category)
            else:
                report.messages += 1
    insert_rows(c, MESSAGES, rows, once_per_recipient)


def _start_notices(
    c: Connection,
    events: list[tuple[Claimed, str]],
    chosen: Chosen,
    phones: dict[tuple[str, str], list[str]],
    channels: Channels,
    report: IntakeReport,
    now: dt.datetime,
) -> None:
    """A notice per event, on the first usable channel its subject chose."""
    bound = bindings(c, [e.subject_id for e, _ in events if e.subject_kind == "person"])
    for event, text in events:
        category = TEMPLATES[event.event_type].category
        choice = choose(chosen[(event.subject_kind, event.subject_id)], category)
        if not isinstance(choice, str) and choice.language != "zh":
            # Rendered once more in the language they chose (the payload fitted already).
            text = render(event.event_type, parse_payload(event.payload), channels.zone, choice.language)
        new = NewNotice(
            event.id, event.event_type, category, event.subject_kind, event.subject_id, event.batch_id, text
        )
        to = phones.get((event.subject_kind, event.subject_id), [])
        openid = bound.get(event.subject_id) if event.subject_kind == "person" else None
        opened = start_notice(c, channels, new, choice, to, openid, now)
        report.notices += 1
        if opened.step is None:
            _fail(c, event, f"{_nobody(event, channels)}, and no other channel it chose can carry it", report)
            continue
        report.queued += 1
        report.messages += opened.messages
        log.info("event %d: notice %s by %s", event.id, opened.notice_id, opened.channel)


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
    c: Connection, port: BusinessPort, events: list[Claimed], channels: Channels, now: dt.datetime
) -> IntakeReport:
    part = IntakeReport()
    with c.begin_nested():
        _expand(c, port, events, channels, part, now)
    return part


def _expand_apart(
    c: Connection,
    port: BusinessPort,
    events: list[Claimed],
    channels: Channels,
    report: IntakeReport,
    now: dt.datetime,
) -> None:
    """`_expand` for all the events together in a savepoint (one query of each kind); if
    that fails, for each on its own, and an event that fails alone ends failed."""
    try:
        report.add(_expand_saved(c, port, events, channels, now))
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
            report.add(_expand_saved(c, port, [event], channels, now))
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
    wechat: WeChatSettings | None = None,
    voice_off: str = "",
    destinations: DestinationSettings | None = None,
) -> IntakeReport:
    """Take up to `limit` pending events and make their messages, instant types first, each
    pass in one transaction; returns what happened. `passes`: (True,) for the instant types,
    (False,) for the others, (True, False) for all. The store out of reach (or a crash)
    before the commit leaves the events pending and adds nothing; a fault in one event
    fails that event alone. `wechat`: the account notices may go through (None: off);
    `voice_off`: why notice calls cannot be placed ("" if they can); `destinations`: the
    policy numbers pass (the default one if None), its refusals audited after the commit."""
    now = now or utcnow()
    channels = Channels(settings, zone, wechat, voice_off, destinations)
    report = IntakeReport()
    for instant_only in passes:
        logged = len(report.failures)
        with store.transaction() as c:
            channels.take_refused()  # of a transaction that did not commit: tried again now
            events = _take(c, limit, now, instant_only=instant_only)
            if events:
                _expand_apart(c, port, events, channels, report, now)
        for where, refused in channels.take_refused():
            refuse(store, refused, where=f"business event intake, {where}", actor="sms")
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
