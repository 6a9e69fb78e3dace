"""What the live pages show, as plain dicts ready for JSON: the wallboard and an agent's own state."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import select

from cases.orders import overdue_count
from core.db import Store
from core.models import Agent, MonitorSession, utcnow
from core.settings import QueueSettings
from ivr.hours import is_open, local_midnight
from ivr.skills import all_skills, skill_queue
from reports.kpis import Goals
from reports.report import Totals, hourly

AGENT_STATES = ("available", "on_call", "paused", "logged_out")


class WaitingCallers(Protocol):
    """Who is in a queue now: the AMI monitor in the same process knows."""

    def waiting(self) -> list[tuple[str, dt.datetime]]: ...


class PhoneStates(Protocol):
    """Whether an agent's phone (`PJSIP/<endpoint>`) is registered: True, False, or None
    when unknown (no AMI monitor here, not a PJSIP phone, state not read yet)."""

    def phone_registered(self, interface: str) -> bool | None: ...


def _phone(phones: PhoneStates | None, interface: str) -> bool | None:
    return phones.phone_registered(interface) if phones is not None else None


def agent_state(a: Agent) -> str:
    return "on_call" if a.current_call_id and a.state != "logged_out" else a.state


def wallboard(
    store: Store,
    queue: QueueSettings,
    callers: WaitingCallers | None,
    phones: PhoneStates | None = None,
    skills: Sequence[str] = (),
) -> dict[str, Any]:
    now = utcnow()
    with store.session() as s:
        agents = list(s.scalars(select(Agent).order_by(Agent.id)))
        monitors = _monitors(s)
    states = Counter(agent_state(a) for a in agents)
    waiting = callers.waiting() if callers is not None else None
    skilled = all_skills(store)
    waiting_by_queue = Counter(q for q, _ in waiting or [])
    today, hours = _today(store, queue, now)
    goals = Goals.of(queue)
    return {
        "open": is_open(queue, now),
        "live": waiting is not None,  # False when this process runs no AMI monitor
        "waiting": len(waiting) if waiting is not None else None,
        "longest_wait_s": int((now - waiting[0][1]).total_seconds()) if waiting else 0,
        "waiting_by_queue": dict(waiting_by_queue),
        # Per skill (ivr/skills.py): callers waiting in its queue, its agents free to take one.
        "by_skill": [
            {
                "skill": name,
                "waiting": waiting_by_queue.get(skill_queue(name), 0) if waiting is not None else None,
                "available": sum(1 for a in agents if agent_state(a) == "available" and name in skilled.get(a.id, [])),
            }
            for name in skills
        ],
        "agents": {state: states.get(state, 0) for state in AGENT_STATES},
        "agent_list": [
            {
                "id": a.id,
                "name": a.name,
                "state": agent_state(a),
                "reason": a.pause_reason or "",
                # False marks an agent whose phone is not registered: the queue does not ring it.
                "phone_registered": _phone(phones, a.interface),
                # Supervisors on the agent's call now: listen, whisper or barge (ringing or active).
                "monitors": monitors.get(a.id, []),
                "skills": skilled.get(a.id, []),
            }
            for a in agents
        ],
        "today": today.figures(),
        # The national KPIs beside their goals, and today's hours that missed one so far.
        "goals": goals.as_dict(),
        "goals_missed": goals.missed(today.figures()),
        "hours_missed": goals.missed_hours(hours),
        "overdue_orders": overdue_count(store, now=now),  # waiting past their deadline (督办)
    }


def _today(store: Store, queue: QueueSettings, now: dt.datetime) -> tuple[Totals, list[dict[str, Any]]]:
    """The local day's sums so far, and its figures per local hour (hours with calls)."""
    by_hour = hourly(store, local_midnight(queue, now), now + dt.timedelta(seconds=1), queue)
    zone = zoneinfo.ZoneInfo(queue.timezone)
    today = Totals()
    for t in by_hour.values():
        today += t
    hours = [{"hour": h.astimezone(zone).hour, **t.figures()} for h, t in sorted(by_hour.items())]
    return today, hours


def _monitors(s: Any, agent_id: str | None = None) -> dict[str, list[str]]:
    """The modes of the supervisors' sessions open now, by agent."""
    q = select(MonitorSession.agent_id, MonitorSession.mode).where(MonitorSession.state.in_(("ringing", "active")))
    if agent_id is not None:
        q = q.where(MonitorSession.agent_id == agent_id, MonitorSession.state == "active")
    out: dict[str, list[str]] = {}
    for agent, mode in s.execute(q):
        out.setdefault(agent, []).append(mode)
    return out


def _endpoint(interface: str) -> str:
    return interface.split("/", 1)[1] if interface.startswith("PJSIP/") else interface


def agent_snapshot(
    store: Store,
    agent_id: str,
    interface: str = "",
    phones: PhoneStates | None = None,
    softphone: str = "",
    *,
    monitor_notice: bool = True,
) -> dict[str, Any]:
    """The agent's own state and phones. `phones` lists each of the agent's phones (the
    account's `interface`, and the desk's `softphone` interface when it has one) with its
    own registration and whether the queue rings it: the queue member the agent logged in
    as (either phone, or another interface). `phone_registered` is that of the phone the
    queue rings, or, logged out, of the one a log-in would use (the softphone when it is
    registered, as the desk chooses; else the account's). `monitored`: the modes of
    supervisors on the agent's call now, when the site tells its agents
    (`queue.monitor_notice`), else always empty."""
    with store.session() as s:
        a = s.get(Agent, agent_id)
        monitored = _monitors(s, agent_id).get(agent_id, []) if monitor_notice else []
    logged_in = a is not None and a.state != "logged_out"
    member = a.interface if a is not None and logged_in else ""
    own = [("desk", interface)] + ([("softphone", softphone)] if softphone else [])
    if member and member not in (i for _, i in own):
        own.append(("other", member))
    listed = [
        {
            "kind": kind,
            "endpoint": _endpoint(iface),
            "registered": _phone(phones, iface),
            "rings": iface == member,
        }
        for kind, iface in own
        if iface
    ]
    chosen = member or (softphone if softphone and _phone(phones, softphone) else interface)
    base = {"phone_registered": _phone(phones, chosen), "phones": listed}
    if a is None:
        return {"state": "logged_out", "reason": "", "current_call_id": None, "queues": [], "monitored": [], **base}
    return {
        "state": agent_state(a),
        "reason": a.pause_reason or "",
        "current_call_id": a.current_call_id if logged_in else None,
        "queues": [q for q in a.queues.split(",") if q],
        **base,
        "monitored": monitored if a.current_call_id else [],
    }
