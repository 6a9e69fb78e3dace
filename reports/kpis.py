"""The national KPIs' goals (GB/T 33358-2016 for government hotlines): a service level
(answered within `queue.service_level_s`, default 15 s) of at least
`queue.service_level_goal`, and a 24-hour connection rate (接通率) of at least
`queue.connection_rate_goal` (95 %); and which figures missed them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.settings import QueueSettings

GOALS = ("connection_rate", "service_level")


@dataclass(frozen=True)
class Goals:
    service_level_s: int = 15
    service_level: float = 0.8
    connection_rate: float = 0.95
    short_abandon_s: int = 5

    @classmethod
    def of(cls, queue: QueueSettings) -> Goals:
        return cls(queue.service_level_s, queue.service_level_goal, queue.connection_rate_goal, queue.short_abandon_s)

    def missed(self, figures: dict[str, Any]) -> list[str]:
        """The goals these figures (Totals.figures()) fall short of; none without calls.

        >>> Goals().missed({"connection_rate": 0.94, "service_level": 0.8})
        ['connection_rate']
        >>> Goals().missed({"connection_rate": None, "service_level": None})
        []
        """
        return [g for g in GOALS if figures[g] is not None and figures[g] < getattr(self, g)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "service_level_seconds": self.service_level_s,
            "service_level": self.service_level,
            "connection_rate": self.connection_rate,
            "short_abandon_seconds": self.short_abandon_s,
        }

    def missed_hours(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows (each with `hour` and its figures) that missed a goal, with which."""
        out = []
        for row in rows:
            missed = self.missed(row)
            if missed:
                out.append({"hour": row["hour"], **{k: row[k] for k in (*GOALS, "agent_calls")}, "missed": missed})
        return out
