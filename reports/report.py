"""The supervisors' report over a period: call figures, breakdowns, SMS; read from the store.

Calls are counted by when they started (local time), messages by when they were created.
Every figure comes from a few grouped queries over an index range (calls by `started_at`,
messages by `created_at`): the calls are summed per UTC hour in the database and those
hourly sums are rolled up here into days, weeks, months, hours of the day and days of the
week, so a half-year is one pass over its rows. The definitions are in the README
("Report figures"); `Totals` holds the sums every figure is derived from.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, distinct, func, select

from core.db import Store
from core.models import Agent, AgentEvent, Call, Callback, CallStep, SmsMessage
from reports.period import Period

FAILED = ("failed", "undelivered", "expired", "rejected", "deleted")
IN_FLIGHT = ("queued", "sending", "submitted")


def half_up(x: float) -> int:
    """Rounded half away from zero (196.5 -> 197), not Python's round-half-even."""
    return int(Decimal(repr(x)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Totals:
    """Sums over a set of calls, from which every call figure is derived; adding two
    Totals gives the figures of both sets together."""

    automated: int = 0
    agent: int = 0
    abandoned: int = 0
    timeout: int = 0
    callback: int = 0
    talk_s: int = 0
    answered_wait_s: int = 0
    answered_waits: int = 0  # answered calls whose wait is known
    answered_in_sl: int = 0
    abandoned_wait_s: int = 0
    abandoned_waits: int = 0
    abandoned_in_sl: int = 0
    satisfied: int = 0
    rated: int = 0

    def __iadd__(self, other: Totals) -> Totals:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def calls(self) -> int:
        return self.automated + self.agent + self.abandoned + self.timeout + self.callback

    @property
    def offered(self) -> int:
        """Calls that reached the queue: answered, abandoned, timed out or left for a callback."""
        return self.agent + self.abandoned + self.timeout + self.callback

    def figures(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "automated_calls": self.automated,
            "agent_calls": self.agent,
            "abandoned_calls": self.abandoned,
            "timeout_calls": self.timeout,
            "callback_calls": self.callback,
            "agent_talk_seconds": self.talk_s,
            "agent_talk_minutes": half_up(self.talk_s / 60),
            "avg_agent_talk_seconds": half_up(self.talk_s / self.agent) if self.agent else 0,
            "avg_wait_seconds": half_up(self.answered_wait_s / self.answered_waits) if self.answered_waits else 0,
            "avg_abandoned_wait_seconds": (
                half_up(self.abandoned_wait_s / self.abandoned_waits) if self.abandoned_waits else 0
            ),
            "service_level_20s": ratio(self.answered_in_sl, self.answered_waits),
            "service_level_20s_with_abandoned": ratio(
                self.answered_in_sl + self.abandoned_in_sl, self.answered_waits + self.abandoned_waits
            ),
            "abandonment_rate": ratio(self.abandoned, self.offered),
            "satisfaction_rate": ratio(self.satisfied, self.rated),
            "rated_calls": self.rated,
        }


@dataclass
class AgentFigures:
    agent: str
    name: str
    calls: int = 0
    talk_s: int = 0
    logged_in_s: int = 0
    paused_s: int = 0

    def as_dict(self) -> dict[str, Any]:
        available = self.logged_in_s - self.paused_s
        return {
            "agent": self.agent,
            "name": self.name,
            "calls": self.calls,
            "talk_seconds": self.talk_s,
            "avg_handle_seconds": half_up(self.talk_s / self.calls) if self.calls else 0,
            "paused_seconds": self.paused_s,
            "logged_in_seconds": self.logged_in_s,
            "occupancy": min(1.0, self.talk_s / available) if available > 0 else None,
        }


@dataclass
class Report:
    period: Period
    totals: Totals
    by_hour: dict[dt.datetime, Totals]  # local hour -> sums
    agents: list[AgentFigures]
    menu: list[dict[str, Any]]
    ivr_resolved: int
    callbacks: dict[str, int]
    sms: dict[str, Any]
    simulated_calls: int = 0  # written by `hotline simulate`: demo traffic, not real callers
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def rollup(self, key: Any) -> list[tuple[Any, Totals]]:
        out: dict[Any, Totals] = defaultdict(Totals)
        for hour, totals in self.by_hour.items():
            out[key(hour)] += totals
        return sorted(out.items(), key=lambda kv: kv[0])

    def by_day(self) -> list[dict[str, Any]]:
        return [{"day": d.isoformat(), **t.figures()} for d, t in self.rollup(lambda h: h.date())]

    def by_week(self) -> list[dict[str, Any]]:
        """ISO weeks (Monday first), labelled by their Monday; the first and last may be partial."""
        return [{"week_of": w, **t.figures()} for w, t in self.rollup(_monday)]

    def by_month(self) -> list[dict[str, Any]]:
        return [{"month": m, **t.figures()} for m, t in self.rollup(lambda h: f"{h.year:04d}-{h.month:02d}")]

    def per_hour(self) -> list[dict[str, Any]]:
        """Hours of the day (0..23), every one listed, over the whole period."""
        got = dict(self.rollup(lambda h: h.hour))
        return [{"hour": h, **got.get(h, Totals()).figures()} for h in range(24)]

    def per_weekday(self) -> list[dict[str, Any]]:
        """Days of the week, 1 = Monday .. 7 = Sunday (ISO), every one listed."""
        got = dict(self.rollup(lambda h: h.isoweekday()))
        return [{"weekday": d, **got.get(d, Totals()).figures()} for d in range(1, 8)]

    def as_dict(self) -> dict[str, Any]:
        """The report JSON (keys in DESIGN.md; seconds are integers, rates 0..1 or null)."""
        return {
            "period": {
                "from": self.period.first.isoformat(),
                "to": self.period.last.isoformat(),
                "timezone": self.period.zone,
            },
            **self.totals.figures(),
            "simulated_calls": self.simulated_calls,
            "ivr_resolved_calls": self.ivr_resolved,
            "callbacks": self.callbacks,
            "per_agent": [a.as_dict() for a in self.agents],
            "per_hour": self.per_hour(),
            "per_weekday": self.per_weekday(),
            "by_day": self.by_day(),
            "by_week": self.by_week(),
            "by_month": self.by_month(),
            "menu_usage": self.menu,
            "sms": self.sms,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
        }


def _monday(hour: dt.datetime) -> str:
    return (hour.date() - dt.timedelta(days=hour.weekday())).isoformat()


# --- queries ------------------------------------------------------------------------------


def _utc_hour(c: Connection, column: Any) -> ColumnElement[str]:
    """'YYYY-MM-DD HH' of a UTC timestamp column, in either database."""
    if c.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)


def _seconds_between(c: Connection, later: Any, earlier: Any) -> Any:
    if c.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _sum(condition: Any, value: Any = 1) -> Any:
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def _sums(sl: int) -> list[Any]:
    """The Totals fields, in order, as SQL sums over calls."""
    disposition = Call.disposition
    answered, abandoned = disposition == "agent", disposition == "abandoned"
    known = Call.queue_wait_s.is_not(None)
    return [
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
    ]


def _ended(start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    """Calls started in [start, end) that have ended (a call in progress has no disposition)."""
    return (Call.started_at >= start) & (Call.started_at < end) & Call.disposition.is_not(None)


def totals(store: Store, start: dt.datetime, end: dt.datetime, service_level_s: int = 20) -> Totals:
    """The sums over calls started in [start, end): the wallboard's figures of the day."""
    with store.transaction() as c:
        row = c.execute(select(*_sums(service_level_s)).where(_ended(start, end))).one()
    return Totals(*(int(v) for v in row))


def _call_totals(c: Connection, period: Period, sl: int) -> dict[dt.datetime, Totals]:
    hour = _utc_hour(c, Call.started_at).label("hour")
    stmt = select(hour, *_sums(sl)).where(_ended(period.start, period.end)).group_by(hour)
    out: dict[dt.datetime, Totals] = {}
    for row in c.execute(stmt):
        utc = dt.datetime.strptime(row[0], "%Y-%m-%d %H").replace(tzinfo=dt.UTC)
        # Whole-hour offsets (China's): a UTC hour is one local hour.
        local = utc.astimezone(period.tz).replace(tzinfo=None)
        out[local] = Totals(*(int(v) for v in row[1:]))
    return out


def _agents(c: Connection, period: Period) -> list[AgentFigures]:
    names = {a.id: a.name for a in c.execute(select(Agent.id, Agent.name))}
    by_name = {name: agent_id for agent_id, name in names.items()}
    figures: dict[str, AgentFigures] = {}

    def of(key: str) -> AgentFigures:
        agent_id = key if key in names else by_name.get(key, key)
        if agent_id not in figures:
            figures[agent_id] = AgentFigures(agent_id, names.get(agent_id, key))
        return figures[agent_id]

    stmt = (
        select(Call.agent, func.count(), func.coalesce(func.sum(Call.talk_s), 0))
        .where(Call.started_at >= period.start, Call.started_at < period.end, Call.disposition == "agent")
        .group_by(Call.agent)
    )
    for agent, calls, talk in c.execute(stmt):
        a = of(agent or "?")
        a.calls += int(calls)
        a.talk_s += int(talk or 0)
    _agent_time(c, period, of)
    return sorted(figures.values(), key=lambda a: (-a.calls, a.agent))


def _agent_time(c: Connection, period: Period, of: Any) -> None:
    """Logged-in and paused seconds inside the period, from login/logout/pause/unpause
    events and each agent's state when the period began."""
    before = (
        select(AgentEvent.agent_id, func.max(AgentEvent.at).label("at"))
        .where(AgentEvent.at < period.start)
        .group_by(AgentEvent.agent_id)
        .subquery()
    )
    opening = c.execute(
        select(AgentEvent.agent_id, AgentEvent.kind).join(
            before, (before.c.agent_id == AgentEvent.agent_id) & (before.c.at == AgentEvent.at)
        )
    ).all()
    events = c.execute(
        select(AgentEvent.agent_id, AgentEvent.at, AgentEvent.kind)
        .where(AgentEvent.at >= period.start, AgentEvent.at < period.end)
        .order_by(AgentEvent.agent_id, AgentEvent.at, AgentEvent.id)
    ).all()
    state: dict[str, tuple[bool, bool, dt.datetime]] = {}  # agent -> (logged in, paused, since)
    for agent_id, kind in opening:
        state[agent_id] = (kind != "logout", kind == "pause", period.start)
    now = min(period.end, dt.datetime.now(dt.UTC))
    for agent_id, at, kind in [*events, *((a, now, "_end") for a in {e[0] for e in events} | set(state))]:
        logged, paused, since = state.get(agent_id, (False, False, period.start))
        if at > since:
            a = of(agent_id)
            span = int((at - since).total_seconds())
            if logged:
                a.logged_in_s += span
                if paused:
                    a.paused_s += span
        if kind == "login":
            logged, paused = True, False
        elif kind == "logout":
            logged, paused = False, False
        elif kind == "pause":
            logged, paused = True, True
        elif kind == "unpause":
            logged, paused = True, False
        state[agent_id] = (logged, paused, max(at, since))


def _menu(c: Connection, period: Period) -> tuple[list[dict[str, Any]], int]:
    """Self-service queries by name: how many calls used each and how many succeeded; and
    how many automated calls had at least one successful query (resolved by the IVR)."""
    name = CallStep.detail["query"].as_string()
    status = CallStep.detail["status"].as_string()
    in_period = (Call.started_at >= period.start) & (Call.started_at < period.end)
    rows = c.execute(
        select(
            name, func.count(distinct(CallStep.call_id)), func.count(distinct(case((status == "ok", CallStep.call_id))))
        )
        .join(Call, Call.id == CallStep.call_id)
        .where(in_period, CallStep.kind == "query")
        .group_by(name)
    ).all()
    resolved = c.execute(
        select(func.count(distinct(CallStep.call_id)))
        .join(Call, Call.id == CallStep.call_id)
        .where(in_period, CallStep.kind == "query", status == "ok", Call.disposition == "automated")
    ).scalar_one()
    menu = [{"query": q or "?", "calls": int(n), "succeeded": int(ok)} for q, n, ok in rows]
    return sorted(menu, key=lambda m: (-m["calls"], m["query"])), int(resolved or 0)


def _callbacks(c: Connection, period: Period) -> dict[str, int]:
    rows = c.execute(
        select(Callback.status, func.count())
        .where(Callback.requested_at >= period.start, Callback.requested_at < period.end)
        .group_by(Callback.status)
    ).all()
    by = {status: int(n) for status, n in rows}
    return {"requested": sum(by.values()), "completed": by.get("done", 0), "failed": by.get("failed", 0)}


def _sms(c: Connection, period: Period) -> dict[str, Any]:
    latency = _seconds_between(c, SmsMessage.final_at, SmsMessage.created_at)
    delivered = SmsMessage.status == "delivered"
    rows = c.execute(
        select(
            SmsMessage.category,
            SmsMessage.status,
            func.count(),
            func.sum(case((SmsMessage.submitted_at.is_not(None), 1), else_=0)),
            func.sum(case((delivered, latency), else_=None)),
        )
        .where(SmsMessage.created_at >= period.start, SmsMessage.created_at < period.end)
        .group_by(SmsMessage.category, SmsMessage.status)
    ).all()
    by_category: dict[str, dict[str, Any]] = {}
    latency_s: dict[str, float] = defaultdict(float)  # category -> summed delivery latency
    for category, status, n, submitted, latency_sum in rows:
        entry = by_category.setdefault(category, {"messages": 0, "sent": 0, "delivered": 0, "failed": 0, "states": {}})
        entry["messages"] += int(n)
        entry["sent"] += int(submitted or 0)
        entry["states"][status] = int(n)
        if status == "delivered":
            entry["delivered"] += int(n)
            latency_s[category] += float(latency_sum or 0.0)
        elif status in FAILED:
            entry["failed"] += int(n)
    for category, entry in by_category.items():
        entry["avg_delivery_seconds"] = _mean(latency_s[category], entry["delivered"])
    out: dict[str, Any] = {
        key: sum(e[key] for e in by_category.values()) for key in ("messages", "sent", "delivered", "failed")
    }
    out["avg_delivery_seconds"] = _mean(sum(latency_s.values()), out["delivered"])
    out["by_category"] = dict(sorted(by_category.items()))
    return out


def _mean(total: float, n: int) -> int | None:
    return half_up(total / n) if n else None


def build(store: Store, period: Period, service_level_s: int = 20) -> Report:
    """The report for `period`, read in one transaction (a consistent snapshot; on SQLite
    under WAL and on PostgreSQL, readers never block the writers recording calls)."""
    with store.transaction() as c:
        by_hour = _call_totals(c, period, service_level_s)
        agents = _agents(c, period)
        menu, resolved = _menu(c, period)
        callbacks = _callbacks(c, period)
        sms = _sms(c, period)
        simulated = c.execute(
            select(func.count()).where(_ended(period.start, period.end), Call.source == "sim")
        ).scalar_one()
    totals = Totals()
    for t in by_hour.values():
        totals += t
    return Report(period, totals, by_hour, agents, menu, resolved, callbacks, sms, int(simulated))
