"""Business hours with a holiday calendar: when agents are there to answer (the calendar
itself is core.calendar's, shared with casework)."""

from __future__ import annotations

import datetime as dt

from core.calendar import in_business_hours, local_now
from core.settings import QueueSettings

__all__ = ["is_open", "local_midnight", "local_now"]


def is_open(settings: QueueSettings, now: dt.datetime) -> bool:
    """Open on a working day (core.calendar), between the hours (open_time == close_time
    means all day).

    >>> from core.settings import QueueSettings
    >>> q = QueueSettings(holidays=(dt.date(2026, 10, 1),))
    >>> is_open(q, dt.datetime(2026, 10, 1, 2, 0, tzinfo=dt.UTC))  # 10:00 in Beijing, National Day
    False
    """
    return in_business_hours(settings, now)


def local_midnight(settings: QueueSettings, now: dt.datetime) -> dt.datetime:
    """The start of today where the hotline is, as an aware datetime (for "today's" figures)."""
    local = local_now(settings, now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
