"""A report's period: whole local days, `--from` and `--to` both included."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

MAX_DAYS = 3660  # ten years: a typo in a year (2103) is refused, not run for minutes


class PeriodError(ValueError):
    """A period that cannot be reported on; the message says what to change."""


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date  # included
    zone: str

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.zone)

    @property
    def start(self) -> dt.datetime:
        """The first instant, in UTC (local midnight of `first`)."""
        return dt.datetime.combine(self.first, dt.time(), self.tz).astimezone(dt.UTC)

    @property
    def end(self) -> dt.datetime:
        """The instant after the last, in UTC (local midnight after `last`)."""
        return dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(), self.tz).astimezone(dt.UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def label(self) -> str:
        return f"{self.first.isoformat()} – {self.last.isoformat()}"


def parse_period(first: str, last: str, zone: str) -> Period:
    """`first` and `last` as YYYY-MM-DD (local days, both included)."""
    days = []
    for flag, text in (("--from", first), ("--to", last)):
        try:
            days.append(dt.date.fromisoformat(text.strip()))
        except ValueError:
            raise PeriodError(f"{flag} {text!r}: not a date; write it as YYYY-MM-DD, e.g. 2013-07-01") from None
    start, end = days
    if end < start:
        raise PeriodError(f"the period ends ({end}) before it starts ({start}); swap --from and --to")
    if (end - start).days + 1 > MAX_DAYS:
        raise PeriodError(f"{(end - start).days + 1} days is longer than {MAX_DAYS} days; report a shorter period")
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"unknown time zone {zone!r} (queue.timezone)") from None
    return Period(start, end, zone)
