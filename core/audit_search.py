"""What an auditor asks of the trail (by resident, user, days, channel), checked, resolved
and itself audited: the ID number typed is looked up here and the look-up recorded, and
every search is recorded before its results are handed out."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import NoResultFound

from core import audit, idnumber
from core.audit_log import Entry, Query, actors_of, find
from core.business import BusinessPort
from core.db import Store
from core.errors import AuditQueryRefused
from core.masking import mask_id, mask_numbers

MAX_ROWS = 5000


@dataclass(frozen=True)
class Ask:
    """The auditor's filters as typed: any of them may be empty."""

    id_number: str = ""
    user: str = ""
    first: str = ""  # YYYY-MM-DD, local, included
    last: str = ""  # YYYY-MM-DD, local, included
    channel: str = ""

    def describe(self) -> str:
        """For the audit entry of the search itself: the ID number masked."""
        parts = [
            f"resident {mask_id(self.id_number)}" if self.id_number else "",
            f"user {self.user}" if self.user else "",
            f"from {self.first}" if self.first else "",
            f"to {self.last}" if self.last else "",
            f"channel {self.channel}" if self.channel else "",
        ]
        return ", ".join(p for p in parts if p) or "everything"


@dataclass(frozen=True)
class Found:
    entries: list[Entry]
    masked_ids: dict[int, str]  # resident_id -> masked ID number, for the residents shown
    resident_id: int | None  # the resident asked for, when one was
    truncated: bool  # more rows matched than MAX_ROWS


def _day(text: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise AuditQueryRefused(f"{flag} {text!r}: not a date; write it as YYYY-MM-DD") from None


def _bounds(ask: Ask, zone: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    tz = zoneinfo.ZoneInfo(zone)
    since = until = None
    if ask.first:
        since = dt.datetime.combine(_day(ask.first, "from"), dt.time(), tz).astimezone(dt.UTC)
    if ask.last:
        after = _day(ask.last, "to") + dt.timedelta(days=1)
        until = dt.datetime.combine(after, dt.time(), tz).astimezone(dt.UTC)
    if since is not None and until is not None and until <= since:
        raise AuditQueryRefused(f"the days end ({ask.last}) before they start ({ask.first})")
    return since, until


def _checked_id(id_number: str) -> str:
    entered = id_number.strip().upper()
    problem = idnumber.problem(entered)
    if problem is not None:
        raise AuditQueryRefused(f"{mask_id(entered)} is not an ID number ({problem.value})")
    return entered


def _masked(port: BusinessPort, resident_ids: Sequence[int]) -> dict[int, str]:
    shown: dict[int, str] = {}
    for rid in resident_ids:
        try:
            shown[rid] = mask_id(port.person(rid).id_number)
        except (LookupError, NoResultFound):  # no longer held by the business system
            shown[rid] = "-"
    return shown


def search(store: Store, port: BusinessPort, ask: Ask, *, viewer: str, channel: str, zone: str) -> Found:
    """Entries matching `ask`, oldest first. The ID-number look-up (`lookup:resident`) and
    the search (`view:audit_log`) are audited under `viewer` through `channel` (cli or
    console) before anything is returned."""
    if ask.channel and ask.channel not in audit.CHANNELS:
        raise AuditQueryRefused(f"channel {ask.channel!r}: one of {', '.join(audit.CHANNELS)}")
    since, until = _bounds(ask, zone)
    resident_id = None
    if ask.id_number:
        entered = _checked_id(ask.id_number)
        resident_id = port.resident_of(entered)
        detail = f"{mask_id(entered)}: {'found' if resident_id is not None else 'nobody holds it'}"
        with store.transaction() as c:
            audit.record(
                c, actor=viewer, action="lookup:resident", resident_id=resident_id, detail=detail, channel=channel
            )
    entries: list[Entry] = []
    if not ask.id_number or resident_id is not None:
        query = Query(
            resident_id=resident_id,
            actors=actors_of(store, ask.user) if ask.user else (),
            since=since,
            until=until,
            channel=ask.channel or None,
            limit=MAX_ROWS + 1,
        )
        entries = find(store, query)
    truncated = len(entries) > MAX_ROWS
    entries = [_shown(e) for e in entries[:MAX_ROWS]]
    with store.transaction() as c:
        detail = f"{ask.describe()}: {len(entries)} rows"
        audit.record(c, actor=viewer, action="view:audit_log", resident_id=resident_id, detail=detail, channel=channel)
    ids = sorted({e.resident_id for e in entries if e.resident_id is not None})
    return Found(entries, _masked(port, ids), resident_id, truncated)


def _shown(e: Entry) -> Entry:
    """Free text of an entry with long digit runs masked (an ID or phone number in a detail)."""
    return Entry(e.id, e.seq, e.at, e.actor, e.action, e.channel, e.resident_id, e.call_id, mask_numbers(e.detail))


def rows(found: Found, zone: str) -> list[dict[str, object]]:
    """Plain rows for JSON, CSV and the page: local times, masked ID numbers."""
    tz = zoneinfo.ZoneInfo(zone)
    return [
        {
            "seq": e.seq,
            "at": e.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
            "actor": e.actor,
            "action": e.action,
            "channel": e.channel,
            "resident": found.masked_ids.get(e.resident_id, "-") if e.resident_id is not None else "-",
            "call_id": e.call_id or "",
            "detail": e.detail,
        }
        for e in found.entries
    ]


COLUMNS = ("seq", "at", "actor", "action", "channel", "resident", "call_id", "detail")


def as_csv(table: Sequence[dict[str, object]]) -> str:
    """The rows as CSV with a header, for a spreadsheet (RFC 4180 quoting)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()
