"""Business hours with holidays, the wait estimate behind the callback offer, and list settings."""

from __future__ import annotations

import datetime as dt

import pytest

from core.errors import SettingsError
from core.settings import QueueSettings, load_settings
from ivr.hours import is_open, local_midnight
from ivr.queue_entry import QueueState, estimate_wait_s

BEIJING = dt.timezone(dt.timedelta(hours=8))


def at(y: int, m: int, d: int, hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=BEIJING).astimezone(dt.UTC)


Q = QueueSettings(holidays=(dt.date(2026, 10, 1),), workdays=(dt.date(2026, 10, 10),))


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        (at(2026, 11, 27, 8, 29), False),  # Friday, before 08:30
        (at(2026, 11, 27, 8, 30), True),
        (at(2026, 11, 27, 17, 29), True),
        (at(2026, 11, 27, 17, 30), False),  # closing time is exclusive
        (at(2026, 11, 28, 10), False),  # Saturday
        (at(2026, 10, 1, 10), False),  # National Day, a Thursday
        (at(2026, 10, 10, 10), True),  # an adjusted working Saturday
    ],
)
def test_business_hours_in_beijing_time(when: dt.datetime, open_: bool) -> None:
    assert is_open(Q, when) is open_


def test_equal_open_and_close_times_mean_all_day_and_today_starts_at_local_midnight() -> None:
    always = QueueSettings(open_time=dt.time(0), close_time=dt.time(0), open_weekdays=(1, 2, 3, 4, 5, 6, 7))
    assert all(is_open(always, at(2026, 11, 28, h)) for h in range(24))
    # 01:00 on the 28th in Beijing is still the 27th in UTC.
    assert local_midnight(Q, at(2026, 11, 28, 1)) == dt.datetime(2026, 11, 28, tzinfo=BEIJING)


@pytest.mark.parametrize(
    ("state", "talk", "expected"),
    [
        (QueueState(waiting=0, ready=2, staffed=2), 180, 0),  # an agent is free: no announcement
        (QueueState(waiting=1, ready=1, staffed=3), 180, 180),  # second in line, one free
        (QueueState(waiting=0, ready=0, staffed=1), 200, 200),
        (QueueState(waiting=3, ready=0, staffed=2), 100, 200),  # 4th in line, 2 agents
        (QueueState(waiting=4, ready=0, staffed=0), 100, None),  # nobody staffed: unknown
    ],
)
def test_estimated_wait(state: QueueState, talk: int, expected: int | None) -> None:
    assert estimate_wait_s(state, talk) == expected


def test_list_settings_from_the_environment_and_a_bad_zone() -> None:
    s = load_settings(
        None, {"HOTLINE_QUEUE_HOLIDAYS": "2026-10-01, 2026-10-02", "HOTLINE_QUEUE_OPEN_WEEKDAYS": "1,2,3,4,5,6"}
    )
    assert s.queue.holidays == (dt.date(2026, 10, 1), dt.date(2026, 10, 2))
    assert s.queue.open_weekdays == (1, 2, 3, 4, 5, 6)
    with pytest.raises(SettingsError, match=r"queue\.timezone"):
        load_settings(None, {"HOTLINE_QUEUE_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(SettingsError, match=r"queue\.holidays"):
        load_settings(None, {"HOTLINE_QUEUE_HOLIDAYS": "2026-13-01"})
