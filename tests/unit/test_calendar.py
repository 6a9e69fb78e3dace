"""The working-day calendar (core.calendar): deadlines as a centre counts them, on the 2026
holiday calendar (in the tests only: a site configures its own `queue.holidays`)."""

from __future__ import annotations

import datetime as dt
import doctest
from pathlib import Path

import pytest

import core.calendar
from core.calendar import add_working_days, is_working_day, working_days_between
from core.errors import SettingsError
from core.settings import QueueSettings, load_settings
from ivr.dialplan import QUEUE_GENERAL
from ivr.hours import is_open

BEIJING = dt.timezone(dt.timedelta(hours=8))
QINGMING = tuple(dt.date(2026, 4, d) for d in (4, 5, 6))  # Saturday to Monday
NATIONAL_DAY = tuple(dt.date(2026, 10, d) for d in range(1, 8))
ADJUSTED = (dt.date(2026, 9, 27), dt.date(2026, 10, 10))  # a Sunday and a Saturday worked
Q2026 = QueueSettings(holidays=QINGMING + NATIONAL_DAY, workdays=ADJUSTED)


def at(y: int, m: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=BEIJING)


def due(created: dt.datetime, days: int = 2, q: QueueSettings = Q2026) -> dt.datetime:
    return add_working_days(q, created, days).astimezone(BEIJING)


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(core.calendar).failed == 0


def test_friday_afternoon_before_a_monday_holiday_is_due_at_close_on_wednesday() -> None:
    assert due(at(2026, 4, 3, 15)) == at(2026, 4, 8, 17, 30)


def test_the_day_an_order_arrives_never_counts_whatever_the_hour() -> None:
    assert due(at(2026, 4, 1, 8, 0)) == due(at(2026, 4, 1, 23, 59)) == at(2026, 4, 3, 17, 30)
    # 01:00 on Friday in Beijing is Thursday in UTC: the hotline's day counts.
    assert due(dt.datetime(2026, 4, 2, 17, 0, tzinfo=dt.UTC)) == at(2026, 4, 8, 17, 30)


def test_an_adjusted_working_day_on_a_weekend_counts() -> None:
    assert due(at(2026, 10, 9, 16)) == at(2026, 10, 12, 17, 30)  # Saturday 10th, then Monday
    plain = QueueSettings(holidays=NATIONAL_DAY)
    assert due(at(2026, 10, 9, 16), q=plain) == at(2026, 10, 13, 17, 30)
    assert due(at(2026, 9, 26, 10)) == at(2026, 9, 28, 17, 30)  # left on Saturday: Sunday 27th is day 1


def test_national_day_week_is_skipped() -> None:
    assert due(at(2026, 9, 30, 15)) == at(2026, 10, 9, 17, 30)
    assert due(at(2026, 9, 30, 15), 5) == at(2026, 10, 13, 17, 30)  # 8th, 9th, 10th (Sat), 12th, 13th
    assert [is_working_day(Q2026, dt.date(2026, 10, d)) for d in (1, 7, 8, 10, 11)] == [False, False, True, True, False]


def test_open_all_day_counts_to_midnight() -> None:
    q = QueueSettings(open_time=dt.time(0), close_time=dt.time(0))
    assert due(at(2026, 12, 4, 10), 1, q) == at(2026, 12, 8, 0, 0)  # Friday: Monday's end


def test_handling_time_in_working_days() -> None:
    q = QueueSettings(holidays=(dt.date(2026, 4, 6),))
    # Friday 14:00-17:30 (3.5 of 9 h), Tuesday whole, Wednesday 08:30-11:00 (2.5 h).
    assert working_days_between(q, at(2026, 4, 3, 14), at(2026, 4, 8, 11)) == pytest.approx(1 + 6 / 9, abs=1e-3)
    assert working_days_between(q, at(2026, 4, 4, 9), at(2026, 4, 6, 20)) == 0.0  # weekend and holiday
    assert working_days_between(q, at(2026, 4, 8, 11), at(2026, 4, 3, 14)) == 0.0


def test_business_hours_follow_the_same_calendar() -> None:
    assert is_open(Q2026, at(2026, 9, 27, 10))  # the Sunday worked
    assert not is_open(Q2026, at(2026, 10, 2, 10))
    assert not is_open(Q2026, at(2026, 9, 28, 17, 30))  # closed at close_time


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        add_working_days(Q2026, at(2026, 4, 3, 15), 0)
    with pytest.raises(ValueError, match="aware"):
        add_working_days(Q2026, dt.datetime(2026, 4, 3, 15), 2)
    with pytest.raises(ValueError, match="no 2 working days"):
        add_working_days(QueueSettings(open_weekdays=()), at(2026, 4, 3, 15), 2)


def test_cases_settings_defaults_and_checks(tmp_path: Path) -> None:
    s = load_settings(None, {})
    assert s.cases.departments == ("养老保险", "医疗保险", "就业", "劳动监察", "社保卡")
    assert s.cases.deadline_days == {
        "policy_question": 2,
        "account_lookup": 2,
        "how_to": 2,
        "complaint": 5,
        "suggestion": 5,
    }
    assert s.cases.callback_queue == QUEUE_GENERAL  # an answer's callback waits where agents see callbacks
    config = tmp_path / "hotline.toml"
    config.write_text('[cases]\ndepartments = ["养老保险", "工伤保险"]\ndeadline_days = {how_to = 1}\n')
    s = load_settings(config, {})
    assert s.cases.departments == ("养老保险", "工伤保险")
    assert s.cases.deadline_days["how_to"] == 1 and s.cases.deadline_days["complaint"] == 5
    for bad, said in (
        ("deadline_days = {gossip = 2}", "unknown categories"),
        ("deadline_days = {complaint = 0}", "1 to 60"),
        ('voice_message_department = "财务"', "one of the departments"),
        ('departments = ["就业", "就业"]', "named twice"),
    ):
        config.write_text(f"[cases]\n{bad}\n")
        with pytest.raises(SettingsError, match=said):
            load_settings(config, {})
    env = load_settings(None, {"HOTLINE_CASES_DEPARTMENTS": "就业,社保卡", "HOTLINE_CASES_ESCALATE_OVERDUE": "false"})
    assert env.cases.departments == ("就业", "社保卡") and not env.cases.escalate_overdue
