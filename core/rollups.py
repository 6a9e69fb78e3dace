"""The reports' hourly sums of closed hours (tables `report_*`): which hours are sealed,
and how a writer that changes old records unseals them.

`reports.report` seals and reads them. Any path that changes calls, their steps or
messages more than a day after they started (or were created) must call `unseal` for
the hours it touched, in its own transaction: importing Asterisk's files or spooled
calls, `hotline simulate`. The live paths (the IVR, the AMI monitor, the survey, the SMS
dispatcher) only touch recent hours, which are never sealed. A changed call also changes
whether the calls of the 7 days before it were called again (first-call resolution), so
unsealing `calls` unseals the first-call counts (`fcr`) of those days too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, select

from core.db import chunks, pg_lock, upsert
from core.models import ReportCallHour, ReportFcrHour, ReportMenuHour, ReportSealed, ReportSmsHour, ReportState

KINDS: dict[str, Any] = {"calls": ReportCallHour, "menu": ReportMenuHour, "sms": ReportSmsHour, "fcr": ReportFcrHour}
REPEAT_WINDOW = dt.timedelta(days=7)  # first-call resolution: a call again within 7 days (168 h) is a repeat
HOUR = dt.timedelta(hours=1)
LOCK_KEY = 12333005  # PostgreSQL advisory lock: sealing and unsealing one at a time


def hour_of(moment: dt.datetime) -> dt.datetime:
    """The UTC hour a moment falls in."""
    return moment.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def serialize(c: Connection) -> None:
    """Sealing and unsealing exclude each other until the transaction ends, so a seal is
    never written from a snapshot taken before an unseal committed. (SQLite has one writer
    at a time already: both begin by writing.)"""
    pg_lock(c, LOCK_KEY)


def generation(c: Connection, kind: str) -> int:
    """Bumped by every unseal of `kind`: sums computed from a snapshot older than the
    latest unseal are not sealed (`reports.report` compares it before and after)."""
    return int(c.scalar(select(ReportState.generation).where(ReportState.kind == kind)) or 0)


def _bump(c: Connection, kinds: tuple[str, ...]) -> None:
    for kind in kinds:
        stmt = upsert(c, ReportState).values(kind=kind, generation=1)
        c.execute(stmt.on_conflict_do_update(index_elements=["kind"], set_={"generation": ReportState.generation + 1}))


def unseal(c: Connection, moments: Iterable[dt.datetime], kinds: Iterable[str] = ("calls", "menu")) -> int:
    """Forget the sums of the hours these moments fall in; the next report sums them again
    from the records. Returns how many hours were unsealed."""
    hours = sorted({hour_of(m) for m in moments})
    if not hours:
        return 0
    serialize(c)
    kinds = tuple(kinds)
    _bump(c, (*kinds, "fcr") if "calls" in kinds else kinds)
    for part in chunks(hours):
        for kind in kinds:
            c.execute(delete(ReportSealed).where(ReportSealed.kind == kind, ReportSealed.hour.in_(part)))
            table = KINDS[kind]
            c.execute(delete(table).where(table.hour.in_(part)))
    if "calls" in kinds:
        for first, end in _weeks_before(hours):
            _forget_range(c, "fcr", first, end)
    return len(hours)


def _weeks_before(hours: list[dt.datetime]) -> list[tuple[dt.datetime, dt.datetime]]:
    """The hours whose calls a call in these (sorted) hours may repeat, from 7 days before
    each to its own hour, as ranges [first, end): a few deletes for a half-year's import."""
    ranges: list[tuple[dt.datetime, dt.datetime]] = []
    for h in hours:
        first, end = _week_before(h), h + HOUR
        if ranges and first <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((first, end))
    return ranges


def _forget_range(c: Connection, kind: str, first: dt.datetime, end: dt.datetime) -> None:
    c.execute(
        delete(ReportSealed).where(ReportSealed.kind == kind, ReportSealed.hour >= first, ReportSealed.hour < end)
    )
    table = KINDS[kind]
    c.execute(delete(table).where(table.hour >= first, table.hour < end))


def unseal_range(c: Connection, start: dt.datetime, end: dt.datetime, kinds: Iterable[str]) -> None:
    """Forget the sums of every hour in [start, end) (and, with `calls`, the first-call
    counts of the 7 days before it as well)."""
    serialize(c)
    kinds = tuple(kinds)
    if "calls" in kinds:
        kinds = (*kinds, "fcr")
    _bump(c, kinds)
    for kind in kinds:
        _forget_range(c, kind, hour_of(_week_before(start) if kind == "fcr" else start), end)


def _week_before(moment: dt.datetime) -> dt.datetime:
    earliest = dt.datetime.min.replace(tzinfo=dt.UTC)
    return earliest if moment - earliest < REPEAT_WINDOW else moment - REPEAT_WINDOW
