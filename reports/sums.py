"""Hourly sums for the report: read from the records, sealed once an hour is closed.

Three kinds, each a list of rows keyed by UTC hour:

- `calls`: per hour and agent ('' when no agent answered), the sums of `Totals` (and how
  many calls were simulated); calls by the hour they started;
- `menu`: per hour and self-service query, how many times callers used it and how many
  times it succeeded; the query '' counts the automated calls the IVR resolved;
- `sms`: per hour, category and state, messages, sent, summed delivery latency; messages
  by the hour they were created;
- `fcr`: per hour, the first-call counts of its agent calls (by the hour they started):
  with a caller number, of them called again from the number within 7 days, and without
  a number (whether a call became a work order stays live: reports.casework).

`read(kind)` returns the rows of a range: sealed hours from the `report_*` tables, the
rest summed from the records. `seal(kind)` first sums the closed hours of the range that
are not sealed yet, in a read transaction that never holds up a writer, then stores them
in a short write transaction, unless an unseal happened meanwhile (`core.rollups`).
Calls and their steps are closed a day after the hour (the live paths never touch them
later); an hour of messages once none of them is still in flight; first-call counts 8
days after the hour: its calls' 7-day repeat window is over and the calls in that window
are closed too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    delete,
    distinct,
    exists,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.orm import aliased

from core import rollups
from core.db import Store, chunks
from core.models import (
    Call,
    CallStep,
    ReportCallHour,
    ReportSealed,
    SmsMessage,
    utcnow,
)
from core.states import IN_FLIGHT, MessageState

HOUR = dt.timedelta(hours=1)
CLOSED_AFTER = dt.timedelta(days=1)  # calls and steps: no live path touches an older hour
# First-call counts: the repeat window, then a day for the calls in it to close.
FCR_CLOSED_AFTER = rollups.REPEAT_WINDOW + CLOSED_AFTER
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
    """Counted and summed per hour, agent, disposition, within-threshold, rating and
    origin in the database (plain counts and sums: a million rows in a few seconds), then
    folded into the Totals sums here."""
    hour = _hour_key(c, Call.started_at).label("hour")
    agent = func.coalesce(case((Call.disposition == "agent", Call.agent), else_=""), "")
    in_sl = case((Call.queue_wait_s <= sl, 1), else_=0)
    simulated = case((Call.source == "sim", 1), else_=0)
    groups = (hour, agent, Call.disposition, in_sl, Call.survey, simulated)
    stmt = (
        select(
            *groups,
            func.count(),
            func.coalesce(func.sum(Call.talk_s), 0),
            func.coalesce(func.sum(Call.queue_wait_s), 0),
            func.count(Call.queue_wait_s),
        )
        .where(Call.started_at >= start, Call.started_at < end, Call.disposition.is_not(None))
        .group_by(*groups)
    )
    out: dict[tuple[str, str], Row] = {}
    for h, who, disposition, within, survey, sim, n, talk, wait, waits in c.execute(stmt):
        row = out.get((h, who))
        if row is None:
            row = out[(h, who)] = {"hour": _hour(h), "agent": who or "", **dict.fromkeys(CALL_SUMS, 0), "sl_s": sl}
        n, talk, wait, waits = int(n), int(talk), int(wait), int(waits)
        if disposition == "agent":
            row["agent_calls"] += n
            row["talk_s"] += talk
            row["answered_wait_s"] += wait
            row["answered_waits"] += waits
            row["answered_in_sl"] += n if within else 0
        elif disposition == "abandoned":
            row["abandoned"] += n
            row["abandoned_wait_s"] += wait
            row["abandoned_waits"] += waits
            row["abandoned_in_sl"] += n if within else 0
        elif disposition in ("automated", "timeout", "callback"):
            row[disposition] += n
        row["satisfied"] += n if survey in (1, 2) else 0
        row["rated"] += n if survey is not None else 0
        row["simulated"] += n if sim else 0
    return list(out.values())


def _menu(c: Connection, start: dt.datetime, end: dt.datetime, sl: int) -> list[Row]:
    name = func.coalesce(CallStep.detail["query"].as_string(), "?")
    ok = CallStep.detail["status"].as_string() == "ok"
    hour = _hour_key(c, Call.started_at).label("hour")
    in_range = (Call.started_at >= start) & (Call.started_at < end) & (CallStep.kind == "query")
    used = (
        select(
            hour,
            name.label("query"),
            func.count(),
            _sum(ok),
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
    rows = [{"hour": _hour(h), "query": q, "uses": int(n), "succeeded": int(s)} for h, q, n, s in c.execute(used)]
    rows += [{"hour": _hour(h), "query": "", "uses": int(n), "succeeded": int(n)} for h, n in c.execute(resolved)]
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
            func.coalesce(func.sum(case((SmsMessage.status == MessageState.DELIVERED, latency), else_=None)), 0.0),
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


def later(c: Connection, column: Any, span: dt.timedelta) -> Any:
    """`column + span` in SQL. SQLite keeps timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' text;
    strftime's %f writes the same form to the millisecond, so comparing the text holds (to
    under a millisecond)."""
    seconds = int(span.total_seconds())
    if c.dialect.name == "postgresql":
        return column + literal_column(f"interval '{seconds} seconds'")
    return func.strftime("%Y-%m-%d %H:%M:%f", column, f"+{seconds} seconds")


def called_again(c: Connection, call: Any) -> Any:
    """Another call from `call`'s number started after it, within 7 days (168 hours): a
    probe of the index calls(caller_number, started_at) (migration 0027)."""
    again = aliased(Call)
    return exists().where(
        again.caller_number == call.caller_number,
        again.started_at > call.started_at,
        again.started_at < later(c, call.started_at, rollups.REPEAT_WINDOW),
    )


def numbered(call: Any) -> Any:
    return and_(call.caller_number.is_not(None), call.caller_number != "")


def agent_calls(call: Any, start: dt.datetime, end: dt.datetime) -> tuple[Any, ...]:
    return (call.disposition == "agent", call.started_at >= start, call.started_at < end)


def _fcr(c: Connection, start: dt.datetime, end: dt.datetime, sl: int) -> list[Row]:
    """Agent calls per hour: with a number, called again within 7 days, without a number;
    one probe of calls(caller_number, started_at) per agent call with a number."""
    first = aliased(Call)
    hour = _hour_key(c, first.started_at).label("hour")
    has_number = case((numbered(first), 1), else_=0)
    query: Any
    if c.dialect.name == "postgresql":
        # PostgreSQL runs an EXISTS in a WHERE as a semi-join, but one in a CASE as a subplan
        # per row, four times slower (3.9 s against 0.8 s for 320,000 agent calls): so the
        # repeated calls are found first and joined.
        probe = aliased(Call)
        repeated = select(probe.id).where(*agent_calls(probe, start, end), called_again(c, probe)).cte("repeated")
        again = case((repeated.c.id.is_not(None), 1), else_=0)
        query = select(hour, has_number, again, func.count()).outerjoin(repeated, repeated.c.id == first.id)
    else:
        # SQLite probes the index from each row either way; in the CASE, once per row.
        again = case((called_again(c, first), 1), else_=0)
        query = select(hour, has_number, again, func.count())
    rows = c.execute(query.where(*agent_calls(first, start, end)).group_by(hour, has_number, again))
    out: dict[str, Row] = {}
    for h, with_number, repeat, n in rows:
        row = out.setdefault(h, {"hour": _hour(h), "calls": 0, "repeated": 0, "no_number": 0})
        if not with_number:
            row["no_number"] += int(n)
            continue
        row["calls"] += int(n)
        row["repeated"] += int(n) if repeat else 0
    return list(out.values())


def short_abandons(c: Connection, start: dt.datetime, end: dt.datetime, short_s: int) -> dict[dt.datetime, int]:
    """Abandoned calls per UTC hour (by start) whose callers hung up within `short_s` of
    joining the queue (queue.short_abandon_s; 0: none are short). Counted from the records
    at every read, not sealed: only abandoned calls are read (the disposition index), and a
    changed setting needs no resealing."""
    if short_s <= 0:
        return {}
    hour = _hour_key(c, Call.started_at).label("hour")
    stmt = (
        select(hour, func.count())
        .where(Call.disposition == "abandoned", Call.queue_wait_s <= short_s)
        .where(Call.started_at >= start, Call.started_at < end)
        .group_by(hour)
    )
    return {_hour(h): int(n) for h, n in c.execute(stmt)}


COMPUTE: dict[str, Callable[[Connection, dt.datetime, dt.datetime, int], list[Row]]] = {
    "calls": _calls,
    "menu": _menu,
    "sms": _sms,
    "fcr": _fcr,
}


# --- sealing and reading -------------------------------------------------------------------


def closed_before(now: dt.datetime, kind: str = "calls") -> dt.datetime:
    """Hours before this one are closed for calls and steps (for first-call counts, `fcr`)."""
    return rollups.hour_of(now - (FCR_CLOSED_AFTER if kind == "fcr" else CLOSED_AFTER))


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
    stop = min(end, closed_before(now, kind))
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
    table = rollups.KINDS[kind]
    try:
        with store.transaction() as c:  # short: a write of a few thousand rows at most
            rollups.serialize(c)
            # Writes first: on SQLite a transaction that reads and then writes fails at once
            # if another connection wrote in between; one that begins by writing holds the
            # write lock for what it reads after.
            for part in chunks(missing):
                c.execute(delete(table).where(table.hour.in_(part)))
                c.execute(delete(ReportSealed).where(ReportSealed.kind == kind, ReportSealed.hour.in_(part)))
            if rollups.generation(c, kind) != generation:
                raise _Unsealed  # since our read: those sums may be stale; the next report redoes them
            for batch in chunks(rows, 1000):
                c.execute(insert(table), list(batch))
            for hours in chunks(missing, 1000):
                c.execute(insert(ReportSealed), [{"kind": kind, "hour": h, "sealed_at": now} for h in hours])
    except _Unsealed:
        return 0  # rolled back: nothing deleted, nothing kept
    return len(missing)


class _Unsealed(Exception):
    """Hours were unsealed while we summed them: roll the seal back."""


KEYS = {
    "calls": ("hour", "agent"),
    "menu": ("hour", "query"),
    "sms": ("hour", "category", "status"),
    "fcr": ("hour",),
}


def read(
    c: Connection, kind: str, start: dt.datetime, end: dt.datetime, sl: int, by: tuple[str, ...] = ("hour",)
) -> list[Row]:
    """The sums of [start, end) grouped `by` some of the kind's keys: sealed hours added up
    in the database (a rollup row exists only for a sealed hour), the others summed from
    the records and added here."""
    table = rollups.KINDS[kind]
    values = [col.name for col in table.__table__.columns if col.name not in (*KEYS[kind], "sl_s")]
    keys = [getattr(table, k) for k in by]
    stored = (
        select(*keys, *(func.sum(getattr(table, v)) for v in values))
        .where(table.hour >= start, table.hour < end)
        .group_by(*keys)
    )
    out: dict[tuple[Any, ...], Row] = {}
    for r in c.execute(stored):
        key = tuple(r[: len(by)])
        out[key] = {**dict(zip(by, key, strict=True)), **{v: r[len(by) + i] or 0 for i, v in enumerate(values)}}
    sealed = _sealed(c, kind, start, end)
    for row in _compute(c, kind, [h for h in _hours(start, end) if h not in sealed], sl):
        key = tuple(row[k] for k in by)
        into = out.setdefault(key, {**dict(zip(by, key, strict=True)), **dict.fromkeys(values, 0)})
        for v in values:
            into[v] += row[v]
    return list(out.values())


def seal_all(store: Store, start: dt.datetime, end: dt.datetime, sl: int, now: dt.datetime | None = None) -> int:
    now = now or utcnow()
    return sum(seal(store, kind, start, end, sl, now) for kind in COMPUTE)
