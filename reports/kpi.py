"""The headline figures over a time range, read from the call records through `core`.

Definitions (DESIGN.md): an automated call ended without reaching an agent and was not
abandoned in the queue; an agent call is one an agent answered. The service level is the
share of calls offered to the queue (answered, abandoned or timed out) that an agent
answered within the threshold. Satisfaction is the share of rated calls rated 1 or 2.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import case, func, select

from core.db import Store
from core.models import Call


@dataclass(frozen=True)
class Kpis:
    automated_calls: int
    agent_calls: int
    abandoned_calls: int
    timeout_calls: int
    callback_calls: int
    agent_talk_seconds: int
    avg_agent_talk_seconds: int
    avg_wait_seconds: int
    service_level_20s: float | None
    satisfaction_rate: float | None

    @property
    def agent_talk_minutes(self) -> int:
        return round(self.agent_talk_seconds / 60)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "agent_talk_minutes": self.agent_talk_minutes}


def _count(disposition: str) -> Any:
    return func.sum(case((Call.disposition == disposition, 1), else_=0))


def kpis(store: Store, since: dt.datetime, until: dt.datetime, service_level_s: int = 20) -> Kpis:
    answered = Call.disposition == "agent"
    stmt = select(
        _count("automated"),
        _count("agent"),
        _count("abandoned"),
        _count("timeout"),
        _count("callback"),
        func.sum(case((answered, Call.talk_s), else_=0)),
        func.avg(case((answered, Call.queue_wait_s))),
        func.sum(case((answered & (Call.queue_wait_s <= service_level_s), 1), else_=0)),
        func.sum(case((Call.survey.in_((1, 2)), 1), else_=0)),
        func.sum(case((Call.survey.is_not(None), 1), else_=0)),
    ).where(Call.started_at >= since, Call.started_at < until)
    with store.transaction() as c:
        row = c.execute(stmt).one()
    automated, agent, abandoned, timeout, callback, talk, avg_wait, in_sl, pleased, rated = (
        int(v or 0) if i != 6 else v for i, v in enumerate(row)
    )
    offered = agent + abandoned + timeout
    return Kpis(
        automated_calls=automated,
        agent_calls=agent,
        abandoned_calls=abandoned,
        timeout_calls=timeout,
        callback_calls=callback,
        agent_talk_seconds=talk,
        avg_agent_talk_seconds=round(talk / agent) if agent else 0,
        avg_wait_seconds=round(float(avg_wait)) if avg_wait is not None else 0,
        service_level_20s=in_sl / offered if offered else None,
        satisfaction_rate=pleased / rated if rated else None,
    )
