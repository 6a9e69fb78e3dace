"""Business hours with a holiday calendar: when agents are there to answer."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from core.settings import QueueSettings


def local_now(settings: QueueSettings, now: dt.datetime) -> dt.datetime:
    return now.astimezone(zoneinfo.ZoneInfo(settings.timezone))


def is_open(settings: QueueSettings, now: dt.datetime) -> bool:
    """Open on an open weekday or an adjusted working day, not on a holiday, between the
    hours (open_time == close_time means all day).

    >>> from core.settings import QueueSettings
    >>> q = QueueSettings(holidays=(dt.date(2026, 10, 1),))
    >>> is_open(q, dt.datetime(2026, 10, 1, 2, 0, tzinfo=dt.UTC))  # 10:00 in Beijing, National Day
    False
    """
    local = local_now(settings, now)
    day = local.date()
    if day in settings.holidays:
        return False
    if day.isoweekday() not in settings.open_weekdays and day not in settings.workdays:
        return False
    if settings.open_time == settings.close_time:
        return True  # open the whole day
    return settings.open_time <= local.time().replace(tzinfo=None) < settings.close_time


def local_midnight(settings: QueueSettings, now: dt.datetime) -> dt.datetime:
    """The start of today where the hotline is, as an aware datetime (for "today's" figures)."""
    local = local_now(settings, now)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)
