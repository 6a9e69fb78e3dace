"""The report's notice figures: notices over the channels residents chose (sms/channels.py),
by the channel they are on or ended on and their state, how many fell back from their
first channel, how many failed on every channel. Counts are of the notices made in the
period, in the state they are in now; read from `notices` with one grouped query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, case, func, select

from core.models import Notice
from core.states import Channel, NoticeState

CHANNELS: Final = tuple(c.value for c in Channel)
STATES: Final = tuple(s.value for s in NoticeState)
IN_FLIGHT: Final = (NoticeState.PENDING.value, NoticeState.ADVANCE.value)


@dataclass
class Notices:
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    fallbacks: int = 0  # notices that left their first channel (skipped or gave up)
    failed: int = 0  # every channel of the plan tried, none delivered
    in_flight: int = 0  # pending on a channel, or waiting to be moved to the next

    @property
    def total(self) -> int:
        return sum(sum(states.values()) for states in self.by_channel.values())

    def as_dict(self) -> dict[str, Any]:
        return {"by_channel": self.by_channel, "fallbacks": self.fallbacks, "failed": self.failed}


def build(c: Connection, start: dt.datetime | None = None, end: dt.datetime | None = None) -> Notices:
    """Notices made in [start, end) (all of them without bounds)."""
    fell_back = func.sum(case((Notice.fallbacks > 0, 1), else_=0)).label("fell_back")
    query = select(Notice.channel, Notice.state, func.count(), fell_back).group_by(Notice.channel, Notice.state)
    if start is not None:
        query = query.where(Notice.created_at >= start)
    if end is not None:
        query = query.where(Notice.created_at < end)
    out = Notices()
    for channel, state, n, moved in c.execute(query):
        out.by_channel.setdefault(channel, {})[state] = int(n)
        out.fallbacks += int(moved or 0)
        out.failed += int(n) if state == NoticeState.FAILED else 0
        out.in_flight += int(n) if state in IN_FLIGHT else 0
    out.by_channel = {ch: out.by_channel[ch] for ch in sorted(out.by_channel, key=_channel_order)}
    return out


def _channel_order(channel: str) -> int:
    return CHANNELS.index(channel) if channel in CHANNELS else len(CHANNELS)
