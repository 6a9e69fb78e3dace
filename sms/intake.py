"""From `business_events` rows to `sms_messages`: claim, render, address, queue.

Claiming is one statement on both databases: an UPDATE of the oldest pending events
(and of events whose claimer died `reclaim_after_s` ago) chosen by a subquery that locks
`FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent intakes never take the same event;
SQLite serialises writers and the UPDATE's own `status` condition does the rest.

Expanding an event is idempotent: its messages are inserted with ON CONFLICT DO NOTHING on
(event_id, recipient), so an event claimed again after a crash adds nothing twice. An event
that cannot be sent (unknown type, a payload that does not fit its template, nobody to
send to) ends `failed` with the reason; one with messages ends `queued`.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, select, update

from core.db import Store, among, chunks, upsert
from core.masking import mask_id, mask_phone
from core.models import BusinessEvent, Employer, Resident, ResidentPhone, SmsMessage, SmsOptOut, utcnow
from core.settings import SmsSettings
from sms.outbox import lock_and_update
from sms.templates import OPTIONAL_CATEGORIES, TEMPLATES, TemplateError, render

log = logging.getLogger(__name__)
EVENTS: Table = BusinessEvent.__table__  # type: ignore[assignment]
MESSAGES: Table = SmsMessage.__table__  # type: ignore[assignment]
# Sent as soon as the event is committed, ahead of any batch.
INSTANT_CATEGORIES = frozenset({"resident_reminder", "security", "medical"})
INSTANT_TYPES = sorted(t.event_type for t in TEMPLATES.values() if t.category in INSTANT_CATEGORIES)


@dataclass
class IntakeReport:
    events: int = 0
    queued: int = 0
    failed: int = 0
    messages: int = 0
    skipped: int = 0  # opted out


@dataclass(frozen=True)
class Claimed:
    id: int
    event_type: str
    subject_kind: str
    subject_id: str
    payload: dict[str, Any]
    batch_id: int | None = None


def claim(
    store: Store,
    limit: int,
    reclaim_after: dt.timedelta,
    now: dt.datetime | None = None,
    *,
    instant_only: bool = False,
    reclaim: bool = True,
) -> list[Claimed]:
    """Up to `limit` events, oldest first: pending ones, and (`reclaim`) those whose claimer
    died. `instant_only`: pending events of the instant types only (an index range, however
    many batch events wait), so an instant reminder never queues behind a batch's intake."""
    now = now or utcnow()
    condition: ColumnElement[bool] = EVENTS.c.status == "pending"
    if instant_only:
        condition &= EVENTS.c.event_type.in_(INSTANT_TYPES)
    due = select(EVENTS.c.id).where(condition).order_by(EVENTS.c.id).limit(limit).with_for_update(skip_locked=True)
    returned = (
        EVENTS.c.id,
        EVENTS.c.event_type,
        EVENTS.c.subject_kind,
        EVENTS.c.subject_id,
        EVENTS.c.payload,
        EVENTS.c.batch_id,
    )
    if reclaim and not instant_only:
        reclaim_stale_events(store, reclaim_after, now)
    with store.transaction() as c:
        values = {"status": "claimed", "claimed_at": now}
        # Instant ones are few: found by status and type, then sorted (not in id order).
        ordered = not instant_only
        rows = lock_and_update(c, EVENTS, due, EVENTS.c.status == "pending", values, returned, ordered=ordered)
    return sorted((Claimed(*r) for r in map(tuple, rows)), key=lambda e: e.id)


def reclaim_stale_events(store: Store, reclaim_after: dt.timedelta, now: dt.datetime) -> int:
    """Events whose claimer died before expanding them are pending again (a short range of
    the index: what is claimed at any moment is what intakes are expanding). Its own
    statement, so that the claim reads its index range in order."""
    with store.transaction() as c:
        result = c.execute(
            update(EVENTS)
            .where(EVENTS.c.status == "claimed", EVENTS.c.claimed_at < now - reclaim_after)
            .values(status="pending")
        )
        return int(result.rowcount)


def recipients(c: Connection, subject_kind: str, subject_ids: list[str]) -> dict[str, list[str]]:
    """Phones by subject: a person's registered phones (by ID number: `residents.phone` and
    `resident_phones`), an employer's contact phone (by unified social credit code)."""
    queries: list[Any]
    if subject_kind == "person":
        queries = [
            lambda ids: select(Resident.id_number, Resident.phone).where(among(c, Resident.id_number, ids)),
            lambda ids: (
                select(Resident.id_number, ResidentPhone.phone)
                .join(ResidentPhone, ResidentPhone.resident_id == Resident.id)
                .where(among(c, Resident.id_number, ids))
            ),
        ]
    elif subject_kind == "unit":
        queries = [
            lambda ids: select(Employer.credit_code, Employer.contact_phone).where(among(c, Employer.credit_code, ids))
        ]
    else:
        return {}
    found: dict[str, set[str]] = {}
    for ids in chunks(subject_ids):
        for query in queries:
            for subject, number in c.execute(query(ids)):
                if number:
                    found.setdefault(subject, set()).add(number)
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


def _insert(c: Connection) -> Any:
    return upsert(c, MESSAGES).on_conflict_do_nothing(index_elements=["event_id", "recipient"])


def _fail(c: Connection, event: Claimed, reason: str, report: IntakeReport) -> None:
    c.execute(update(EVENTS).where(EVENTS.c.id == event.id).values(status="failed", reason=reason))
    report.failed += 1
    log.warning("event %d (%s) not sent: %s", event.id, event.event_type, reason)


def _render_all(c: Connection, events: list[Claimed], zone: str, report: IntakeReport) -> list[tuple[Claimed, str]]:
    """Each event with its text; an event that cannot be rendered fails with the reason."""
    rendered: list[tuple[Claimed, str]] = []
    for event in events:
        template = TEMPLATES.get(event.event_type)
        if template is None:
            _fail(c, event, f"unknown event type {event.event_type!r}", report)
            continue
        if event.subject_kind != template.subject_kind:
            _fail(c, event, f"{event.event_type} is for a {template.subject_kind}, not a {event.subject_kind}", report)
            continue
        try:
            rendered.append((event, render(event.event_type, event.payload, zone)))
        except TemplateError as exc:
            _fail(c, event, str(exc), report)
    return rendered


def expand(
    store: Store,
    events: list[Claimed],
    settings: SmsSettings,
    zone: str,
    report: IntakeReport,
    now: dt.datetime | None = None,
) -> None:
    """Turn claimed events into their messages (or their failures), in one transaction:
    one query for the recipients, one for opt-outs, one INSERT, one UPDATE of the events."""
    now = now or utcnow()
    report.events += len(events)
    with store.transaction() as c:
        rendered = _render_all(c, events, zone, report)
        phones: dict[tuple[str, str], list[str]] = {}
        for kind in {event.subject_kind for event, _ in rendered}:
            subjects = sorted({event.subject_id for event, _ in rendered if event.subject_kind == kind})
            phones.update(((kind, subject), found) for subject, found in recipients(c, kind, subjects).items())
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
        queued: list[int] = []
        for event, text in rendered:
            template = TEMPLATES[event.event_type]
            to = phones.get((event.subject_kind, event.subject_id))
            if not to:
                who = mask_id(event.subject_id) if event.subject_kind == "person" else event.subject_id
                _fail(c, event, f"no registered phone for {event.subject_kind} {who}", report)
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
                    "status": "skipped" if phone in skipped else "queued",
                    "last_error": "opted out (TD)" if phone in skipped else None,
                    "attempts": 0,
                    "next_attempt_at": due,
                    "segments": 1,
                    "created_at": now,
                    "duplicate_suspect": False,
                }
                for phone in to
            ]
            queued.append(event.id)
            report.queued += 1
            for phone in to:
                if phone in skipped:
                    report.skipped += 1
                    log.info("event %d: %s opted out of %s", event.id, mask_phone(phone), template.category)
                else:
                    report.messages += 1
        if rows:
            c.execute(_insert(c), rows)
        for ids in chunks(queued):
            c.execute(update(EVENTS).where(among(c, EVENTS.c.id, ids)).values(status="queued", reason=None))


def intake(
    store: Store,
    settings: SmsSettings,
    zone: str,
    limit: int = 500,
    now: dt.datetime | None = None,
    passes: tuple[bool, ...] = (True, False),
    *,
    reclaim: bool = True,
) -> IntakeReport:
    """Claim up to `limit` events and expand them, instant types first; returns what
    happened. `passes`: (True,) for the instant types only, (False,) for all pending.
    `reclaim`: take back the events of a claimer that died (a dispatcher does it once a second)."""
    report = IntakeReport()
    after = dt.timedelta(seconds=settings.reclaim_after_s)
    for instant_only in passes:
        events = claim(store, limit, after, now, instant_only=instant_only, reclaim=reclaim)
        if events:
            expand(store, events, settings, zone, report, now=now)
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
