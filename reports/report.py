"""The supervisors' report over a period: call figures, breakdowns, SMS and casework
(reports/casework.py); read from the store.

Calls are counted by when they started (local time), messages by when they were created.
Every figure comes from a few grouped queries over an index range (calls by `started_at`,
messages by `created_at`): the calls are summed per UTC hour in the database and those
hourly sums are rolled up here into days, weeks, months, hours of the day and days of the
week, so a half-year is one pass over its rows. The definitions are in docs/reports.md
("Report figures"); `Totals` holds the sums every figure is derived from.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field, fields
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from core.blocked_callers import blocked_calls
from core.db import Store
from core.models import Agent, AgentEvent, Callback, Conference, QualityScore, Recording
from core.settings import QueueSettings
from core.states import NOT_DELIVERED
from reports import casework, notices, sums
from reports.kpis import Goals
from reports.period import Period

FAILED = NOT_DELIVERED


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
    # Abandoned within queue.short_abandon_s of joining: left out of the connection rate.
    # Not a column of the hourly sums: counted from the records at each read (sums.short_abandons).
    abandoned_short: int = 0

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
            "service_level": ratio(self.answered_in_sl, self.answered_waits),
            "service_level_with_abandoned": ratio(
                self.answered_in_sl + self.abandoned_in_sl, self.answered_waits + self.abandoned_waits
            ),
            "connection_rate": ratio(self.agent, self.offered - self.abandoned_short),
            "short_abandoned_calls": self.abandoned_short,
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
    quality_scores: int = 0  # quality checks of this agent's calls in the period
    quality_percent_sum: float = 0.0  # sum of 100 * total / max_total over them

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
            "quality_scores": self.quality_scores,
            "avg_quality_score": (
                round(self.quality_percent_sum / self.quality_scores, 1) if self.quality_scores else None
            ),
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
    casework: casework.Casework
    simulated_calls: int = 0  # written by `hotline simulate`: demo traffic, not real callers
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    notices: notices.Notices = field(default_factory=notices.Notices)  # over the channels residents chose
    goals: Goals = field(default_factory=Goals)
    # Three-party calls (ivr/conference.py) started in the period: brought together, or not.
    three_party: dict[str, int] = field(default_factory=lambda: {"calls": 0, "failed": 0})
    # Calls from numbers on the nuisance list, and how many numbers (core/blocked_callers.py).
    blocked: dict[str, int] = field(default_factory=lambda: {"calls": 0, "numbers": 0})

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
            "service_level_seconds": self.goals.service_level_s,
            "goals": self.goals.as_dict(),
            "goals_missed": self.goals.missed(self.totals.figures()),
            "hours_missed": self.goals.missed_hours(self.per_hour()),
            "simulated_calls": self.simulated_calls,
            "ivr_resolved_calls": self.ivr_resolved,
            "callbacks": self.callbacks,
            "three_party": self.three_party,
            "blocked_calls": self.blocked["calls"],
            "blocked_numbers": self.blocked["numbers"],
            "per_agent": [a.as_dict() for a in self.agents],
            "per_hour": self.per_hour(),
            "per_weekday": self.per_weekday(),
            "by_day": self.by_day(),
            "by_week": self.by_week(),
            "by_month": self.by_month(),
            "menu_usage": self.menu,
            "sms": self.sms,
            "casework": self.casework.as_dict(),
            "notices": self.notices.as_dict(),
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
        }


def _monday(hour: dt.datetime) -> str:
    return (hour.date() - dt.timedelta(days=hour.weekday())).isoformat()


# --- from the hourly sums -------------------------------------------------------------------


def row_totals(row: dict[str, Any]) -> Totals:
    """The Totals of one row of hourly call sums (reports.sums.read)."""
    return Totals(*(int(row[name]) for name in sums.CALL_SUMS[:14]))


def hourly(store: Store, start: dt.datetime, end: dt.datetime, queue: QueueSettings) -> dict[dt.datetime, Totals]:
    """The sums over calls started in [start, end) per UTC hour: the wallboard's day."""
    out: dict[dt.datetime, Totals] = defaultdict(Totals)
    with store.transaction() as c:
        for row in sums.read(c, "calls", start, end, queue.service_level_s):
            out[row["hour"]] += row_totals(row)
        for hour, n in sums.short_abandons(c, start, end, queue.short_abandon_s).items():
            out[hour].abandoned_short += n
    return dict(out)


def _agents(c: Connection, period: Period, rows: list[dict[str, Any]]) -> list[AgentFigures]:
    names = {a.id: a.name for a in c.execute(select(Agent.id, Agent.name))}
    by_name = {name: agent_id for agent_id, name in names.items()}
    figures: dict[str, AgentFigures] = {}

    def of(key: str) -> AgentFigures:
        agent_id = key if key in names else by_name.get(key, key)
        if agent_id not in figures:
            figures[agent_id] = AgentFigures(agent_id, names.get(agent_id, key))
        return figures[agent_id]

    for row in rows:
        if row["agent"] and row["agent_calls"]:
            a = of(row["agent"])
            a.calls += int(row["agent_calls"])
            a.talk_s += int(row["talk_s"])
    _agent_time(c, period, of)
    _quality(c, period, of)
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


def _quality(c: Connection, period: Period, of: Any) -> None:
    """Quality scores (cases' quality checks) of the recordings of calls in the period, each
    as a percentage of its form's maximum, so a changed form still averages fairly."""
    rows = c.execute(
        select(QualityScore.agent, QualityScore.total, QualityScore.max_total)
        .join(Recording, Recording.id == QualityScore.recording_id)
        .where(Recording.started_at >= period.start, Recording.started_at < period.end)
    )
    for agent, total, max_total in rows:
        if agent and max_total:
            a = of(agent)
            a.quality_scores += 1
            a.quality_percent_sum += 100.0 * total / max_total


def _menu(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Self-service queries by name: how many times callers used each and how many times
    it succeeded; and how many automated calls had a successful query (resolved by the IVR)."""
    used: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    resolved = 0
    for row in rows:
        if row["query"] == "":
            resolved += int(row["uses"])
        else:
            used[row["query"]][0] += int(row["uses"])
            used[row["query"]][1] += int(row["succeeded"])
    menu = [{"query": q, "uses": n, "succeeded": ok} for q, (n, ok) in used.items()]
    return sorted(menu, key=lambda m: (-m["uses"], m["query"])), resolved


def _callbacks(c: Connection, period: Period) -> dict[str, int]:
    rows = c.execute(
        select(Callback.status, func.count())
        .where(Callback.requested_at >= period.start, Callback.requested_at < period.end)
        .group_by(Callback.status)
    ).all()
    by = {status: int(n) for status, n in rows}
    return {"requested": sum(by.values()), "completed": by.get("done", 0), "failed": by.get("failed", 0)}


def _three_party(c: Connection, period: Period) -> dict[str, int]:
    """Calls in which a department or a phone joined the caller (the member answered), and
    the attempts that failed (not answered, refused); each counted once per call."""
    rows = c.execute(
        select(Conference.state, func.count(func.distinct(Conference.call_id)))
        .where(Conference.started_at >= period.start, Conference.started_at < period.end)
        .group_by(Conference.state)
    ).all()
    by = {state: int(n) for state, n in rows}
    return {"calls": by.get("active", 0) + by.get("ended", 0), "failed": by.get("failed", 0)}


def _sms(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_category: dict[str, dict[str, Any]] = {}
    latency_s: dict[str, float] = defaultdict(float)  # category -> summed delivery latency
    for row in rows:
        category, status, n = row["category"], row["status"], int(row["messages"])
        entry = by_category.setdefault(category, {"messages": 0, "sent": 0, "delivered": 0, "failed": 0, "states": {}})
        entry["messages"] += n
        entry["sent"] += int(row["sent"])
        entry["states"][status] = entry["states"].get(status, 0) + n
        if status == "delivered":
            entry["delivered"] += n
            latency_s[category] += float(row["latency_s"])
        elif status in FAILED:
            entry["failed"] += n
    for category, entry in by_category.items():
        entry["avg_delivery_seconds"] = _mean(latency_s[category], entry["delivered"])
        entry["states"] = dict(sorted(entry["states"].items()))
    out: dict[str, Any] = {
        key: sum(e[key] for e in by_category.values()) for key in ("messages", "sent", "delivered", "failed")
    }
    out["avg_delivery_seconds"] = _mean(sum(latency_s.values()), out["delivered"])
    out["by_category"] = dict(sorted(by_category.items()))
    return out


def _mean(total: float, n: int) -> int | None:
    return half_up(total / n) if n else None


def build(store: Store, period: Period, queue: QueueSettings, now: dt.datetime | None = None) -> Report:
    """The report for `period`, with the queue's service-level threshold and its calendar
    of working days (handling time); `now` (default the present) decides which waiting
    orders are overdue. Closed hours not summed yet are summed first and kept
    (`reports.sums.seal`: a read, then a short write); then one read transaction takes
    the sums and sums the open hours from the records. Neither holds up call recording."""
    now = dt.datetime.now(dt.UTC) if now is None else now.astimezone(dt.UTC)
    sl, start, end = queue.service_level_s, period.start, period.end
    sums.seal_all(store, start, end, sl)
    with store.transaction() as c:
        call_rows = sums.read(c, "calls", start, end, sl)
        agents = _agents(c, period, sums.read(c, "calls", start, end, sl, by=("agent",)))
        menu_rows = sums.read(c, "menu", start, end, sl, by=("query",))
        sms_rows = sums.read(c, "sms", start, end, sl, by=("category", "status"))
        callbacks = _callbacks(c, period)
        three_party = _three_party(c, period)
        cases = casework.build(c, period, queue, now)
        notice_figures = notices.build(c, start, end)
        short = sums.short_abandons(c, start, end, queue.short_abandon_s)
        blocked = blocked_calls(c, start, end)
    by_hour: dict[dt.datetime, Totals] = defaultdict(Totals)
    total, simulated = Totals(), 0
    for row in call_rows:
        # Whole-hour offsets (China's): a UTC hour is one local hour.
        local = row["hour"].astimezone(period.tz).replace(tzinfo=None)
        t = row_totals(row)
        by_hour[local] += t
        total += t
        simulated += int(row["simulated"])
    for hour, n in short.items():
        by_hour[hour.astimezone(period.tz).replace(tzinfo=None)].abandoned_short += n
        total.abandoned_short += n
    menu, resolved = _menu(menu_rows)
    sms = _sms(sms_rows)
    return Report(
        period, total, dict(by_hour), agents, menu, resolved, callbacks, sms, cases, simulated, now, notice_figures,
        Goals.of(queue), three_party, blocked,
    )  # fmt: skip
