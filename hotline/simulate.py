"""`hotline simulate`: realistic demo traffic for a period, so a fresh store shows a report.

Everything it writes is marked as simulated and can be told apart from real records:
calls have `source = 'sim'` and ids `sim-...`, their steps belong to those calls, agent
events carry the reason `simulated`, messages have the event type `simulated`, callbacks
the reason `simulated`. Running it again for the same days replaces what it wrote there;
`--clear` removes all of it. Real records are never touched.

The model (a county hotline, seeded so a run is reproducible): arrivals peak on weekday
mornings (09:00-11:00) with a smaller afternoon peak, a quarter of the weekday volume at
weekends; six in ten callers are served by the IVR alone (balance queries mostly); the
others queue, and most are answered after a wait of about 25 s; talk times around 3 min;
six in ten answered callers rate the call; agents work 08:30-17:30 with an hour's pause
at noon on weekdays; SMS reminders and batches, nearly all delivered within seconds.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select

from core import rollups
from core.db import Store, chunks
from core.models import AgentEvent, Call, Callback, CallStep, SmsMessage

SOURCE = "sim"
MARK = "simulated"
# Relative arrivals per local hour on a weekday.
HOURLY = (0, 0, 0, 0, 0, 0, 0.2, 1.0, 4.0, 9.0, 10.0, 8.0, 4.0, 3.0, 6.0, 7.0, 5.5, 3.0, 1.2, 0.6, 0.4, 0.2, 0.1, 0)
QUERIES = (("pension", 0.42), ("medical", 0.26), ("contributions", 0.14), ("unemployment", 0.08), ("card_loss", 0.10))
SMS_MIX = (("pension", 0.25), ("medical", 0.20), ("statement", 0.25), ("employer", 0.20), ("policy", 0.10))


@dataclass
class Traffic:
    """What to simulate per weekday (weekends get a quarter of the calls)."""

    calls_per_day: int = 110
    messages_per_day: int = 300
    agents: tuple[str, ...] = ("1001", "1002", "1003", "1004")
    seed: int = 12333


@dataclass
class Rows:
    calls: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    agent_events: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)


def _pick(rng: random.Random, mix: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in mix], [w for _, w in mix])[0]


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal for large ones."""
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def day(rng: random.Random, date: dt.date, zone: zoneinfo.ZoneInfo, traffic: Traffic) -> Rows:
    """One local day's calls, steps, agent shifts, messages and callbacks."""
    rows = Rows()
    weekend = date.weekday() >= 5
    volume = traffic.calls_per_day * (0.25 if weekend else 1.0)
    total = sum(HOURLY)
    n = 0
    for hour, weight in enumerate(HOURLY):
        for _ in range(_poisson(rng, volume * weight / total)):
            local = dt.datetime.combine(date, dt.time(hour), zone) + dt.timedelta(seconds=rng.randrange(3600))
            _call(rng, rows, f"sim-{date.isoformat()}-{n:05d}", local.astimezone(dt.UTC), traffic, weekend)
            n += 1
    if not weekend:
        for agent in traffic.agents:
            for hh, mm, kind in ((8, 30, "login"), (12, 0, "pause"), (13, 0, "unpause"), (17, 30, "logout")):
                when = dt.datetime.combine(date, dt.time(hh, mm), zone) + dt.timedelta(seconds=rng.randrange(300))
                rows.agent_events.append(
                    {"agent_id": agent, "at": when.astimezone(dt.UTC), "kind": kind, "reason": MARK}
                )
    for i in range(_poisson(rng, traffic.messages_per_day * (0.3 if weekend else 1.0))):
        _message(rng, rows, date, zone, i)
    return rows


def _call(rng: random.Random, rows: Rows, call_id: str, start: dt.datetime, traffic: Traffic, weekend: bool) -> None:
    ivr_s = rng.randint(15, 120)
    call: dict[str, Any] = {
        "id": call_id,
        "caller_number": f"1{rng.choice('35789')}{rng.randrange(10**9):09d}",
        "transport": "fastagi",
        "language": "zh",
        "started_at": start,
        "source": SOURCE,
        "ring_no_answer": 0,
        "queue": None,
        "agent": None,
        "queue_wait_s": None,
        "talk_s": None,
        "survey": None,
        "queue_entered_at": None,
        "answered_at": None,
    }
    for seq in range(rng.choice((1, 1, 2))):
        query = _pick(rng, QUERIES)
        status = "ok" if rng.random() < 0.85 else rng.choice(("not_found", "wrong_pin", "unavailable"))
        detail = {"query": query, "status": status}
        rows.steps.append(
            {"call_id": call_id, "seq": seq + 1, "at": start, "kind": "query", "node": query, "detail": detail}
        )
    if weekend or rng.random() < 0.6:
        call.update(disposition="automated", outcome="completed", ended_at=start + dt.timedelta(seconds=ivr_s))
        rows.calls.append(call)
        return
    entered = start + dt.timedelta(seconds=ivr_s)
    call.update(queue="hotline-12333", queue_entered_at=entered, outcome="transferred")
    fate = rng.random()
    if fate < 0.88:
        wait = min(300, int(rng.expovariate(1 / 25)))
        talk = max(20, min(1800, int(rng.lognormvariate(math.log(170), 0.55))))
        call.update(
            disposition="agent",
            queue_wait_s=wait,
            answered_at=entered + dt.timedelta(seconds=wait),
            agent=rng.choice(traffic.agents),
            talk_s=talk,
            ended_at=entered + dt.timedelta(seconds=wait + talk),
        )
        if rng.random() < 0.6:
            call["survey"] = rng.choices((1, 2, 3), (0.72, 0.2, 0.08))[0]
    else:
        kind = "abandoned" if fate < 0.96 else ("timeout" if fate < 0.98 else "callback")
        wait = {"abandoned": min(300, int(rng.expovariate(1 / 45))), "timeout": 300, "callback": rng.randint(30, 120)}[
            kind
        ]
        call.update(disposition=kind, queue_wait_s=wait, ended_at=entered + dt.timedelta(seconds=wait))
        if kind == "callback":
            done = rng.random() < 0.8
            rows.callbacks.append(
                {
                    "call_id": call_id,
                    "number": call["caller_number"],
                    "queue": "hotline-12333",
                    "reason": MARK,
                    "requested_at": call["ended_at"],
                    "status": "done" if done else "open",
                    "agent_id": rng.choice(traffic.agents) if done else None,
                    "done_at": call["ended_at"] + dt.timedelta(minutes=rng.randint(5, 90)) if done else None,
                    "note": "",
                }
            )
    rows.calls.append(call)


def _message(rng: random.Random, rows: Rows, date: dt.date, zone: zoneinfo.ZoneInfo, i: int) -> None:
    category = _pick(rng, SMS_MIX)
    hour = rng.choices(range(24), HOURLY)[0]
    created = (dt.datetime.combine(date, dt.time(hour), zone) + dt.timedelta(seconds=rng.randrange(3600))).astimezone(
        dt.UTC
    )
    fate = rng.random()
    status = "delivered" if fate < 0.96 else "undelivered" if fate < 0.98 else "failed"
    submitted = created + dt.timedelta(seconds=rng.uniform(0.2, 3)) if status != "failed" else None
    final = created + dt.timedelta(seconds=rng.uniform(2, 40))
    rows.messages.append(
        {
            "event_id": None,
            "event_type": MARK,
            "category": category,
            "recipient": f"139{rng.randrange(10**8):08d}",
            "text": f"【安吉人社】（模拟）{category} #{i}",
            "priority": 0 if category in ("pension", "medical") else 1,
            "status": status,
            "attempts": 1,
            "next_attempt_at": created,
            "last_error": None if status == "delivered" else "simulated",
            "segments": 1,
            "created_at": created,
            "submitted_at": submitted,
            "final_at": final,
            "duplicate_suspect": False,
        }
    )


def days(first: dt.date, last: dt.date, zone: str, traffic: Traffic) -> Iterator[Rows]:
    tz = zoneinfo.ZoneInfo(zone)
    rng = random.Random(f"{traffic.seed}:{first.isoformat()}")
    for i in range((last - first).days + 1):
        yield day(rng, first + dt.timedelta(days=i), tz, traffic)


def clear(store: Store, start: dt.datetime | None = None, end: dt.datetime | None = None) -> int:
    """Delete what `simulate` wrote (in [start, end) when given); returns the calls removed."""
    calls = select(Call.id).where(Call.source == SOURCE)
    messages = SmsMessage.event_type == MARK
    events = AgentEvent.reason == MARK
    callbacks = Callback.reason == MARK
    if start is not None and end is not None:
        calls = calls.where(Call.started_at >= start, Call.started_at < end)
        messages &= (SmsMessage.created_at >= start) & (SmsMessage.created_at < end)
        events &= (AgentEvent.at >= start) & (AgentEvent.at < end)
        callbacks &= (Callback.requested_at >= start) & (Callback.requested_at < end)
    everything = (dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC))
    with store.transaction() as c:
        rollups.unseal_range(c, *((start, end) if start and end else everything), ("calls", "menu", "sms"))
        ids = list(c.scalars(calls))
        for part in chunks(ids):
            c.execute(delete(CallStep).where(CallStep.call_id.in_(part)))
            c.execute(delete(Call).where(Call.id.in_(part)))
        c.execute(delete(SmsMessage).where(messages))
        c.execute(delete(AgentEvent).where(events))
        c.execute(delete(Callback).where(callbacks))
    return len(ids)


def simulate(store: Store, first: dt.date, last: dt.date, zone: str, traffic: Traffic) -> dict[str, int]:
    """Replace the simulated traffic of [first, last] (local days); returns what was written."""
    tz = zoneinfo.ZoneInfo(zone)
    start = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
    clear(store, start, end)
    written = {"calls": 0, "steps": 0, "agent_events": 0, "messages": 0, "callbacks": 0}
    for rows in days(first, last, zone, traffic):
        with store.transaction() as c:
            for name, model in (
                ("calls", Call),
                ("steps", CallStep),
                ("agent_events", AgentEvent),
                ("messages", SmsMessage),
                ("callbacks", Callback),
            ):
                batch: list[dict[str, Any]] = getattr(rows, name)
                for part in chunks(batch, 1000):
                    c.execute(insert(model), list(part))
                written[name] += len(batch)
    with store.transaction() as c:
        # Again: a report that summed these hours while they were being filled kept nothing
        # (it saw the first unseal) or sums them again now.
        rollups.unseal_range(c, start, end, ("calls", "menu", "sms"))
    return written


def simulated_calls(store: Store) -> int:
    with store.transaction() as c:
        return int(c.scalar(select(func.count()).select_from(Call).where(Call.source == SOURCE)) or 0)
