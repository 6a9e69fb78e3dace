"""Hourly sums for the report: read from the records, sealed once an hour is closed.

Three kinds, each a list of rows keyed by UTC hour:

- `calls`: per hour and agent ('' when no agent answered), the sums of `Totals` (and how
  many calls were simulated); calls by the hour they started;
- `menu`: per hour and self-service query, the calls that used it and those in which it
  succeeded; the query '' counts the automated calls the IVR resolved;
- `sms`: per hour, category and state, messages, sent, summed delivery latency; messages
  by the hour they were created.

`read(kind)` returns the rows of a range: sealed hours from the `report_*` tables, the
rest summed from the records. `seal(kind)` first sums the closed hours of the range that
are not sealed yet, in a read transaction that never holds up a writer, then stores them
in a short write transaction, unless an unseal happened meanwhile (`core.rollups`).
Calls and their steps are closed a day after the hour (the live paths never touch them
later); an hour of messages once none of them is still in flight.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, delete, distinct, func, insert, select

from core import rollups
from core.db import Store, chunks
from core.models import (
    Call,
    CallStep,
    ReportCallHour,
    ReportMenuHour,
    ReportSealed,
    ReportSmsHour,
    SmsMessage,
    utcnow,
)

HOUR = dt.timedelta(hours=1)
CLOSED_AFTER = dt.timedelta(days=1)  # calls and steps: no live path touches an older hour
IN_FLIGHT = ("queued", "sending", "submitted")
CALL_SUMS = (
    "automated",
    "agent_calls",
    "abandoned",
    "timeout",
    "callback",
    "talk_s",
    "answered_wait_s",
    "answered_waits",
    "answered_in_sl",
    "abandoned_wait_s",
    "abandoned_waits",
    "abandoned_in_sl",
    "satisfied",
    "rated",
    "simulated",
)
Row = dict[str, Any]


def _hour_key(c: Connection, column: Any) -> ColumnElement[str]:
    """'YYYY-MM-DD HH' of a UTC timestamp column. SQLite keeps timestamps as ISO text in
    UTC, whose first 13 characters are that (cheaper than strftime on a million rows)."""
    if c.dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", func.timezone("UTC", column)), "YYYY-MM-DD HH24")
    return func.substr(column, 1, 13)


def _hour(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H").replace(tzinfo=dt.UTC)


def _sum(condition: Any, value: Any = 1) -> Any:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def _seconds_between(c: Connection, later: Any, earlier: Any) -> Any:
    if c.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


# --- from the records ----------------------------------------------------------------------


def _calls(c: Connection, start: dt.datetime, end: dt.datetime, sl: int) -> list[Row]:
    disposition = Call.disposition
    answered, abandoned = disposition == "agent", disposition == "abandoned"
    known = Call.queue_wait_s.is_not(None)
    hour = _hour_key(c, Call.started_at).label("hour")
    agent = func.coalesce(case((answered, Call.agent), else_=""), "").label("agent")
    sums = (
        _sum(disposition == "automated"),
        _sum(answered),
        _sum(abandoned),
        _sum(disposition == "timeout"),
        _sum(disposition == "callback"),
        _sum(answered, func.coalesce(Call.talk_s, 0)),
        _sum(answered & known, Call.queue_wait_s),
        _sum(answered & known),
        _sum(answered & (Call.queue_wait_s <= sl)),
        _sum(abandoned & known, Call.queue_wait_s),
        _sum(abandoned & known),
        _sum(abandoned & (Call.queue_wait_s <= sl)),
        _sum(Call.survey.in_((1, 2))),
        _sum(Call.survey.is_not(None)),
        _sum(Call.source == "sim"),
    )
    stmt = (
        select(hour, agent, *sums)
        .where(Call.started_at >= start, Call.started_at < end, disposition.is_not(None))
        .group_by(hour, agent)
    )
    return [
        {"hour": _hour(r[0]), "agent": r[1] or "", **dict(zip(CALL_SUMS, map(int, r[2:]), strict=True)), "sl_s": sl}
        for r in c.execute(stmt)
    ]


def _menu(c: Connection, start: dt.datetime, end: dt.datetime, sl: int) -> list[Row]:
    name = func.coalesce(CallStep.detail["query"].as_string(), "?")
    ok = CallStep.detail["status"].as_string() == "ok"
    hour = _hour_key(c, Call.started_at).label("hour")
    in_range = (Call.started_at >= start) & (Call.started_at < end) & (CallStep.kind == "query")
    used = (
        select(
            hour,
            name.label("query"),
            func.count(distinct(CallStep.call_id)),
            func.count(distinct(case((ok, CallStep.call_id)))),
        )
        .join(Call, Call.id == CallStep.call_id)
        .where(in_range)
        .group_by(hour, name)
    )
    resolved = (
        select(hour, func.count(distinct(CallStep.call_id)))
        .join(Call, Call.id == CallStep.call_id)
        .where(in_range, ok, Call.disposition == "automated")
        .group_by(hour)
    )
    rows = [{"hour": _hour(h), "query": q, "calls": int(n), "succeeded": int(s)} for h, q, n, s in c.execute(used)]
    rows += [{"hour": _hour(h), "query": "", "calls": int(n), "succeeded": int(n)} for h, n in c.execute(resolved)]
    return rows


def _sms(c: Connection, start: dt.datetime, end: dt.datetime, sl: int) -> list[Row]:
    latency = _seconds_between(c, SmsMessage.final_at, SmsMessage.created_at)
    hour = _hour_key(c, SmsMessage.created_at).label("hour")
    stmt = (
        select(
            hour,
            SmsMessage.category,
            SmsMessage.status,
            func.count(),
            _sum(SmsMessage.submitted_at.is_not(None)),
            func.coalesce(func.sum(case((SmsMessage.status == "delivered", latency), else_=None)), 0.0),
        )
        .where(SmsMessage.created_at >= start, SmsMessage.created_at < end)
        .group_by(hour, SmsMessage.category, SmsMessage.status)
    )
    return [
        {
            "hour": _hour(h),
            "category": cat,
            "status": st,
            "messages": int(n),
            "sent": int(sent),
            "latency_s": float(lat),
        }
        for h, cat, st, n, sent, lat in c.execute(stmt)
    ]


COMPUTE: dict[str, Callable[[Connection, dt.datetime, dt.datetime, int], list[Row]]] = {
    "calls": _calls,
    "menu": _menu,
    "sms": _sms,
}
TABLES: dict[str, Any] = {"calls": ReportCallHour, "menu": ReportMenuHour, "sms": ReportSmsHour}


# --- sealing and reading -------------------------------------------------------------------


def closed_before(now: dt.datetime) -> dt.datetime:
    """Hours before this one are closed for calls and steps."""
    return rollups.hour_of(now - CLOSED_AFTER)


def _hours(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    out, h = [], rollups.hour_of(start)
    while h < end:
        out.append(h)
        h += HOUR
    return out


def _runs(hours: list[dt.datetime]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Sorted hours as ranges of consecutive ones: one query per range, not one over
    everything between the first and the last (an hour left open by a message stuck in a
    paused batch must not make every report read the months after it)."""
    runs: list[tuple[dt.datetime, dt.datetime]] = []
    for h in hours:
        if runs and runs[-1][1] == h:
            runs[-1] = (runs[-1][0], h + HOUR)
        else:
            runs.append((h, h + HOUR))
    return runs


def _compute(c: Connection, kind: str, hours: list[dt.datetime], sl: int) -> list[Row]:
    wanted = set(hours)
    return [r for a, b in _runs(hours) for r in COMPUTE[kind](c, a, b, sl) if r["hour"] in wanted]


def _sealed(c: Connection, kind: str, start: dt.datetime, end: dt.datetime) -> set[dt.datetime]:
    return set(
        c.scalars(
            select(ReportSealed.hour).where(
                ReportSealed.kind == kind, ReportSealed.hour >= start, ReportSealed.hour < end
            )
        )
    )


def seal(store: Store, kind: str, start: dt.datetime, end: dt.datetime, sl: int, now: dt.datetime) -> int:
    """Sum and store the closed hours of [start, end) that are not sealed yet; returns how
    many hours were sealed."""
    stop = min(end, closed_before(now))
    if stop <= start:
        return 0
    with store.transaction() as c:  # a read: it holds up no writer, however long it takes
        generation = rollups.generation(c, kind)
        if kind == "calls":
            stale = select(ReportCallHour.hour).where(ReportCallHour.sl_s != sl).distinct()
            mismatched = set(c.scalars(stale.where(ReportCallHour.hour >= start, ReportCallHour.hour < stop)))
        else:
            mismatched = set()
        sealed = _sealed(c, kind, start, stop)
        missing = [h for h in _hours(start, stop) if h not in sealed or h in mismatched]
        if not missing:
            return 0
        rows = _compute(c, kind, missing, sl)
        if kind == "sms":
            busy = {r["hour"] for r in rows if r["status"] in IN_FLIGHT}
            missing = [h for h in missing if h not in busy]
            rows = [r for r in rows if r["hour"] not in busy]
    if not missing:
        return 0
    table = TABLES[kind]
    with store.transaction() as c:  # short: a write of a few thousand rows at most
        rollups.serialize(c)
        if rollups.generation(c, kind) != generation:
            return 0  # unsealed since our read: those sums may be stale; the next report redoes them
        for part in chunks(missing):
            c.execute(delete(table).where(table.hour.in_(part)))
            c.execute(delete(ReportSealed).where(ReportSealed.kind == kind, ReportSealed.hour.in_(part)))
        for batch in chunks(rows, 1000):
            c.execute(insert(table), list(batch))
        for hours in chunks(missing, 1000):
            c.execute(insert(ReportSealed), [{"kind": kind, "hour": h, "sealed_at": now} for h in hours])
    return len(missing)


def read(c: Connection, kind: str, start: dt.datetime, end: dt.datetime, sl: int) -> list[Row]:
    """The rows of [start, end): sealed hours from their table, the others from the records."""
    sealed = _sealed(c, kind, start, end)
    table = TABLES[kind]
    columns = [col for col in table.__table__.columns]
    rows: list[Row] = []
    if sealed:
        stored = select(*columns).where(table.hour >= start, table.hour < end)
        rows = [dict(r._mapping) for r in c.execute(stored) if r.hour in sealed]
    return rows + _compute(c, kind, [h for h in _hours(start, end) if h not in sealed], sl)


def seal_all(store: Store, start: dt.datetime, end: dt.datetime, sl: int, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    return sum(seal(store, kind, start, end, sl, now) for kind in COMPUTE)
