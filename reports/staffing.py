"""Staffing by Erlang C: how many agents each hour of the coming week needs to meet the
service goal, from the calls of the same hour in the last few weeks, against the agents
who were signed in then.

For each hour of the week (Monday 09:00, ...) over the last `weeks` whole weeks before
today (local days): the calls offered to agents per week on average (answered, abandoned,
timed out, left for a callback: reports.report.Totals.offered), and the average handling
time, talk plus the queues' wrap-up (`queue.wrapup_s`) per answered call; an hour with no
answered call takes the whole history's handling time (or `queue.default_talk_s` plus
wrap-up when nothing was answered at all). Traffic = offered × handling time / 3600 s
(erlangs); agents needed = the fewest that answer `queue.service_level_goal` of the calls
within `queue.service_level_s` (reports.erlang); with them, the expected average wait and
occupancy. Signed in = the agents logged in during that hour (paused included), averaged
over the weeks, from the agents' log-in and log-out events.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from core.db import Store
from core.models import AgentEvent
from core.settings import QueueSettings
from reports import erlang, sums
from reports.report import half_up, row_totals

HOUR = dt.timedelta(hours=1)
Slot = tuple[int, int]  # ISO weekday (1 = Monday), local hour


class StaffingError(ValueError):
    """A staffing question that cannot be answered; the message says what to change."""


@dataclass(frozen=True)
class HourPlan:
    day: dt.date
    hour: int
    offered: float  # calls offered to agents in this hour, per week on average
    aht_s: int  # average handling time: talk plus wrap-up
    erlangs: float
    needed: int
    service_level: float | None  # expected with `needed` agents (None: no calls)
    wait_s: int  # expected average speed of answer with `needed` agents
    occupancy: float | None
    signed_in: float  # agents signed in at this hour of past weeks, on average

    @property
    def short(self) -> bool:
        """Fewer agents were signed in than the hour needs (to a tenth of an agent)."""
        return self.signed_in + 0.05 < self.needed

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "weekday": self.day.isoweekday(),
            "hour": self.hour,
            "offered_calls": self.offered,
            "avg_handle_seconds": self.aht_s,
            "erlangs": self.erlangs,
            "agents_needed": self.needed,
            "expected_service_level": self.service_level,
            "expected_wait_seconds": self.wait_s,
            "expected_occupancy": self.occupancy,
            "agents_signed_in": self.signed_in,
            "short": self.short,
        }


@dataclass
class Staffing:
    weeks: int
    history_first: dt.date
    history_last: dt.date  # included
    zone: str
    threshold_s: int
    goal: float
    wrapup_s: int
    hours: list[HourPlan]
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def as_dict(self) -> dict[str, Any]:
        """Seconds are integers, rates 0..1 (or null for an hour without calls)."""
        return {
            "weeks": self.weeks,
            "history": {"from": self.history_first.isoformat(), "to": self.history_last.isoformat()},
            "timezone": self.zone,
            "service_level_seconds": self.threshold_s,
            "service_level_goal": self.goal,
            "wrapup_seconds": self.wrapup_s,
            "hours": [h.as_dict() for h in self.hours],
            "short_hours": sum(1 for h in self.hours if h.short),
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
        }


def build(store: Store, queue: QueueSettings, weeks: int | None = None, now: dt.datetime | None = None) -> Staffing:
    """The plan for the 7 days after today (local), from the `weeks` whole weeks before
    today; `now` (default the present) decides what today is."""
    weeks = queue.staffing_weeks if weeks is None else weeks
    if not 1 <= weeks <= 52:
        raise StaffingError(f"--weeks {weeks}: give 1 to 52 weeks of history")
    now = dt.datetime.now(dt.UTC) if now is None else now.astimezone(dt.UTC)
    tz = zoneinfo.ZoneInfo(queue.timezone)
    today = now.astimezone(tz).date()
    first = today - dt.timedelta(weeks=weeks)
    start = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(today, dt.time(), tz).astimezone(dt.UTC)
    sl = queue.service_level_s
    sums.seal_all(store, start, end, sl, now)
    with store.transaction() as c:
        calls = sums.read(c, "calls", start, end, sl)
        signed = _signed_in(c, start, end, now)
    offered: dict[Slot, int] = defaultdict(int)
    answered: dict[Slot, int] = defaultdict(int)
    talk: dict[Slot, int] = defaultdict(int)
    for row in calls:
        t, slot = row_totals(row), _slot(row["hour"], tz)
        offered[slot] += t.offered
        answered[slot] += t.agent
        talk[slot] += t.talk_s
    seconds_in: dict[Slot, float] = defaultdict(float)
    for hour, seconds in signed.items():
        seconds_in[_slot(hour, tz)] += seconds
    all_answered = sum(answered.values())
    fallback_talk = sum(talk.values()) / all_answered if all_answered else float(queue.default_talk_s)
    plans = []
    for d in range(1, 8):
        day = today + dt.timedelta(days=d)
        for h in range(24):
            slot = (day.isoweekday(), h)
            mean_talk = talk[slot] / answered[slot] if answered[slot] else fallback_talk
            plans.append(
                _plan(day, h, offered[slot] / weeks, mean_talk + queue.wrapup_s, seconds_in[slot] / 3600 / weeks, queue)
            )
    return Staffing(weeks, first, today - dt.timedelta(days=1), queue.timezone, sl, queue.service_level_goal,
                    queue.wrapup_s, plans, now)  # fmt: skip


def _plan(day: dt.date, hour: int, offered: float, aht_s: float, signed_in: float, queue: QueueSettings) -> HourPlan:
    a = offered * aht_s / 3600
    n = erlang.agents_needed(a, aht_s, queue.service_level_s, queue.service_level_goal)
    calls = offered > 0
    return HourPlan(
        day,
        hour,
        round(offered, 1),
        half_up(aht_s),
        round(a, 2),
        n,
        round(erlang.service_level(n, a, aht_s, queue.service_level_s), 4) if calls else None,
        half_up(erlang.mean_wait_s(n, a, aht_s)) if calls else 0,
        round(erlang.occupancy(n, a), 4) if calls else None,
        round(signed_in, 1),
    )


def _slot(utc_hour: dt.datetime, tz: zoneinfo.ZoneInfo) -> Slot:
    local = utc_hour.astimezone(tz)
    return local.isoweekday(), local.hour


def _signed_in(c: Connection, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> dict[dt.datetime, float]:
    """Seconds agents were signed in (logged in, paused or not) per UTC hour of [start, end):
    each agent's log-in spans from its events, starting from its state before `start`."""
    before = (
        select(AgentEvent.agent_id, func.max(AgentEvent.at).label("at"))
        .where(AgentEvent.at < start)
        .group_by(AgentEvent.agent_id)
        .subquery()
    )
    opening = c.execute(
        select(AgentEvent.agent_id, AgentEvent.kind).join(
            before, (before.c.agent_id == AgentEvent.agent_id) & (before.c.at == AgentEvent.at)
        )
    ).all()
    since: dict[str, dt.datetime | None] = {agent: start for agent, kind in opening if kind != "logout"}
    events = c.execute(
        select(AgentEvent.agent_id, AgentEvent.at, AgentEvent.kind)
        .where(AgentEvent.at >= start, AgentEvent.at < end)
        .order_by(AgentEvent.at, AgentEvent.id)
    ).all()
    out: dict[dt.datetime, float] = defaultdict(float)
    for agent, at, kind in events:
        began = since.get(agent)
        if kind == "logout":
            if began is not None:
                _spread(out, began, at)
            since[agent] = None
        elif began is None:  # login, pause or unpause: signed in from here
            since[agent] = at
    stop = min(end, now)
    for began in since.values():
        if began is not None and began < stop:
            _spread(out, began, stop)
    return out


def _spread(out: dict[dt.datetime, float], began: dt.datetime, ended: dt.datetime) -> None:
    """Add the seconds of [began, ended) to the UTC hours they fall in."""
    at = began
    while at < ended:
        hour = at.replace(minute=0, second=0, microsecond=0)
        upto = min(ended, hour + HOUR)
        out[hour] += (upto - at).total_seconds()
        at = upto
