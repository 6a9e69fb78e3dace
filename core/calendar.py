"""The hotline's working-day calendar, shared by the IVR (business hours) and casework
(work-order deadlines, handling time).

A working day is an open weekday (`queue.open_weekdays`) that is not a public holiday
(`queue.holidays`), or an adjusted working day (`queue.workdays`: a weekend day that the
State Council's holiday notice makes a working day, 调休). Times are aware datetimes; days
are the hotline's local days (`queue.timezone`).

A deadline of N working days is counted as a centre counts it: the day the order arrives
does not count, whatever the hour; the order is due at the close of business
(`queue.close_time`) of the N-th working day after it. With National Day 2026
(holidays 10-01..10-07, adjusted working days 09-27 and 10-10), an order created on
Wednesday 30 September counts Thursday 8 October as its first working day and is due at
the close of Friday 9 October, its second:

>>> q = QueueSettings(holidays=tuple(dt.date(2026, 10, d) for d in range(1, 8)),
...                   workdays=(dt.date(2026, 9, 27), dt.date(2026, 10, 10)))
>>> created = dt.datetime(2026, 9, 30, 7, 0, tzinfo=dt.UTC)  # 15:00 in Beijing
>>> add_working_days(q, created, 2).astimezone(zone(q)).isoformat()
'2026-10-09T17:30:00+08:00'
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator

from core.settings import QueueSettings

# Longest a count may run: a deadline or a span of this many calendar days ends the loop
# (a calendar with no working day at all would otherwise never end).
MAX_DAYS = 3660


def zone(settings: QueueSettings) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.timezone)


def local_now(settings: QueueSettings, now: dt.datetime) -> dt.datetime:
    return now.astimezone(zone(settings))


def is_working_day(settings: QueueSettings, day: dt.date) -> bool:
    """An open weekday that is not a holiday, or an adjusted working day.

    >>> q = QueueSettings(holidays=(dt.date(2026, 10, 1),), workdays=(dt.date(2026, 9, 27),))
    >>> is_working_day(q, dt.date(2026, 10, 1)), is_working_day(q, dt.date(2026, 9, 27))  # Thu, Sun
    (False, True)
    """
    if day in settings.holidays:
        return False
    return day.isoweekday() in settings.open_weekdays or day in settings.workdays


def day_hours(settings: QueueSettings, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The day's business hours as aware local datetimes (the whole day when
    open_time == close_time, the queue's way of saying "open all day")."""
    tz = zone(settings)
    if settings.open_time == settings.close_time:
        start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
        return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return (
        dt.datetime.combine(day, settings.open_time, tzinfo=tz),
        dt.datetime.combine(day, settings.close_time, tzinfo=tz),
    )


def in_business_hours(settings: QueueSettings, now: dt.datetime) -> bool:
    """On a working day, between its hours: when agents answer, and when the hotline texts
    residents who did not ask for a message just now (a follow-up)."""
    day = local_now(settings, now).date()
    if not is_working_day(settings, day):
        return False
    opens, closes = day_hours(settings, day)
    return opens <= now < closes


def add_working_days(settings: QueueSettings, start: dt.datetime, days: int) -> dt.datetime:
    """The close of business of the `days`-th working day after `start`'s local day, in UTC.

    >>> q = QueueSettings(holidays=(dt.date(2026, 10, 5),))  # a Monday holiday
    >>> friday = dt.datetime(2026, 10, 2, 6, 0, tzinfo=dt.UTC)  # Friday 14:00 in Beijing
    >>> add_working_days(q, friday, 2).astimezone(zone(q)).isoformat()  # Tue, Wed
    '2026-10-07T17:30:00+08:00'
    """
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    if days < 1:
        raise ValueError("a deadline is at least one working day")
    day = local_now(settings, start).date()
    counted = 0
    for _ in range(MAX_DAYS):
        day += dt.timedelta(days=1)
        if is_working_day(settings, day):
            counted += 1
            if counted == days:
                return day_hours(settings, day)[1].astimezone(dt.UTC)
    raise ValueError(f"no {days} working days within {MAX_DAYS} days of {start.isoformat()}")


def _days(settings: QueueSettings, a: dt.datetime, b: dt.datetime) -> Iterator[dt.date]:
    day, last = local_now(settings, a).date(), local_now(settings, b).date()
    for _ in range(MAX_DAYS):
        if day > last:
            return
        yield day
        day += dt.timedelta(days=1)


def working_days_between(settings: QueueSettings, a: dt.datetime, b: dt.datetime) -> float:
    """The business hours between `a` and `b` in working days (each working day's hours
    count as one day): the handling time of an order. Negative spans count as 0.

    >>> q = QueueSettings()
    >>> fri = dt.datetime(2026, 12, 4, 4, 30, tzinfo=dt.UTC)  # Friday 12:30, half-way through
    >>> working_days_between(q, fri, fri + dt.timedelta(days=3))  # to Monday 12:30
    1.0
    """
    if b <= a:
        return 0.0
    total = 0.0
    for day in _days(settings, a, b):
        if not is_working_day(settings, day):
            continue
        opens, closes = day_hours(settings, day)
        covered = min(closes, b) - max(opens, a)
        if covered > dt.timedelta(0):
            total += covered / (closes - opens)
    return round(total, 4)


def deadline_text(settings: QueueSettings, at: dt.datetime) -> str:
    """A deadline as people read it, local: a close of business at midnight (a queue open
    all day) is that day's 24:00, not the next day's 00:00.

    >>> q = QueueSettings(open_time=dt.time(0), close_time=dt.time(0))
    >>> deadline_text(q, dt.datetime(2026, 12, 4, 16, 0, tzinfo=dt.UTC))  # midnight in Beijing
    '2026-12-04 24:00'
    """
    local = local_now(settings, at)
    if local.time() == dt.time(0):
        return f"{(local.date() - dt.timedelta(days=1)).isoformat()} 24:00"
    return local.strftime("%Y-%m-%d %H:%M")
