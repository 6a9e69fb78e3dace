"""Staffing by Erlang C (reports/staffing.py) from a hand-made store, on SQLite and
PostgreSQL: offered calls and handling time of the same hour of past weeks, agents needed
for the goal, agents who were signed in; the CLI's outputs; bad input."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from core.db import Store
from core.models import AgentEvent, Call
from core.settings import QueueSettings
from reports import staffing, staffing_render

ROOT = Path(__file__).resolve().parents[2]
BJ = zoneinfo.ZoneInfo("Asia/Shanghai")
# Tuesday 2026-11-10, 10:00 in Beijing: two weeks of history are 10-27 .. 11-09, and the
# plan is for Wednesday 11-11 .. Tuesday 11-17.
NOW = dt.datetime(2026, 11, 10, 10, tzinfo=BJ)


def at(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=BJ).astimezone(dt.UTC)


def call_row(cid: str, started: dt.datetime, disposition: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "started_at": started,
        "ended_at": started + dt.timedelta(minutes=5),
        "disposition": disposition,
        "transport": "fastagi",
        "language": "zh",
        "ring_no_answer": 0,
        "source": "ivr",
        **{k: None for k in ("queue_wait_s", "talk_s", "agent", "survey")},
        **kw,
    }


def _hour_of_calls(tag: str, month: int, day: int, hour: int, answered: int, abandoned: int) -> list[dict[str, Any]]:
    """Calls spread over an hour: `answered` of 175 s talk, `abandoned` after 30 s."""
    out = []
    for i in range(answered + abandoned):
        when = at(month, day, hour, (i * 17) // 60 % 60, (i * 17) % 60)
        if i < answered:
            out.append(call_row(f"{tag}-{i}", when, "agent", queue_wait_s=3, talk_s=175, agent="1001"))
        else:
            out.append(call_row(f"{tag}-{i}", when, "abandoned", queue_wait_s=30))
    return out


def _event(agent: str, when: dt.datetime, kind: str) -> dict[str, Any]:
    return {"agent_id": agent, "at": when, "kind": kind, "reason": None}


@pytest.fixture
def history(store: Store) -> Store:
    fill_history(store)
    return store


def fill_history(store: Store) -> None:
    """Two weeks of Monday-morning traffic and log-ins before NOW (also the console's test)."""
    calls = [
        # Monday 09:00-10:00 in both weeks: 200 offered each, 175 s talk + 5 s wrap-up, so
        # 200 × 180 s / 3600 s = 10 erlangs: the Call Centre Helper example (14 agents at 80/20).
        *_hour_of_calls("mon1", 11, 2, 9, answered=190, abandoned=10),
        *_hour_of_calls("mon2", 11, 9, 9, answered=200, abandoned=0),
        # Tuesday 14:00: abandoned calls only: handling time from the whole history.
        *_hour_of_calls("tue1", 10, 27, 14, answered=0, abandoned=3),
        *_hour_of_calls("tue2", 11, 3, 14, answered=0, abandoned=1),
        # Outside the history: three weeks back, and today.
        *_hour_of_calls("old", 10, 26, 9, answered=50, abandoned=0),
        *_hour_of_calls("today", 11, 10, 9, answered=50, abandoned=0),
    ]
    events = [
        _event("1002", at(10, 20, 8), "login"),  # before the history, still in on its first day
        _event("1002", at(11, 2, 12), "pause"),
        _event("1002", at(11, 2, 13), "unpause"),
        _event("1002", at(11, 9, 9, 30), "logout"),
        _event("1001", at(11, 2, 8, 30), "login"),
        _event("1001", at(11, 2, 10, 30), "logout"),
        _event("1001", at(11, 9, 9), "login"),
        _event("1001", at(11, 9, 9, 45), "logout"),
        _event("1003", at(11, 10, 9), "login"),  # today: not history
    ]
    with store.transaction() as c:
        c.execute(insert(Call), calls)
        c.execute(insert(AgentEvent), events)


def _hour(plan: staffing.Staffing, day: dt.date, hour: int) -> staffing.HourPlan:
    (found,) = [h for h in plan.hours if h.day == day and h.hour == hour]
    return found


def test_the_plan_from_two_weeks_at_80_in_20_s(history: Store) -> None:
    plan = staffing.build(history, QueueSettings(service_level_s=20), weeks=2, now=NOW)
    assert (plan.history_first, plan.history_last) == (dt.date(2026, 10, 27), dt.date(2026, 11, 9))
    assert len(plan.hours) == 7 * 24
    assert plan.hours[0].day == dt.date(2026, 11, 11) and plan.hours[-1].day == dt.date(2026, 11, 17)
    monday = _hour(plan, dt.date(2026, 11, 16), 9)
    assert monday.offered == 200.0  # (200 + 200) / 2: the weeks before and today's calls left out
    assert monday.aht_s == 180
    assert monday.erlangs == 10.0
    assert monday.needed == 14
    assert monday.service_level == pytest.approx(0.8884, abs=1e-4)
    assert monday.wait_s == 8  # 7.8 s
    assert monday.occupancy == pytest.approx(0.7143, abs=1e-4)
    # Signed in at Monday 09: week 1, 1001 and 1002 all hour (paused or not); week 2,
    # 1002 until 09:30 and 1001 from 09:00 to 09:45: (3600 + 3600 + 1800 + 2700) / 3600 / 2.
    assert monday.signed_in == pytest.approx(1.6)
    assert monday.short


def test_the_national_15_s_threshold_and_a_higher_goal(history: Store) -> None:
    plan = staffing.build(history, QueueSettings(service_level_goal=0.9), weeks=2, now=NOW)
    assert plan.threshold_s == 15 and plan.goal == 0.9
    monday = _hour(plan, dt.date(2026, 11, 16), 9)
    # 14 agents answer 87.5 % within 15 s; 15 agents 93.3 % (C = 0.1020, e^(-5·15/180)).
    assert monday.needed == 15
    assert monday.service_level == pytest.approx(0.9327, abs=1e-4)


def test_hours_without_answers_and_quiet_hours(history: Store) -> None:
    plan = staffing.build(history, QueueSettings(), weeks=2, now=NOW)
    tuesday = _hour(plan, dt.date(2026, 11, 17), 14)
    assert tuesday.offered == 2.0
    assert tuesday.aht_s == 180  # the history's handling time: no call answered in this hour
    assert tuesday.needed == 1
    # 1002 was signed in (not logged out) through every Tuesday of the history.
    assert tuesday.signed_in == 1.0 and not tuesday.short
    sunday = _hour(plan, dt.date(2026, 11, 15), 3)
    assert (sunday.offered, sunday.needed, sunday.service_level, sunday.occupancy) == (0.0, 0, None, None)
    assert sunday.signed_in == 1.0  # 1002, logged out only on the second Monday
    assert _hour(plan, dt.date(2026, 11, 16), 11).signed_in == 0.5  # 1002, the first week only


def test_an_empty_store_plans_nothing(store: Store) -> None:
    plan = staffing.build(store, QueueSettings(), now=NOW)
    assert plan.weeks == 4
    assert all(h.needed == 0 and h.signed_in == 0 for h in plan.hours)
    assert "(无)" in staffing_render.text(plan)


@pytest.mark.parametrize("weeks", [0, 53])
def test_weeks_out_of_range_are_refused(store: Store, weeks: int) -> None:
    with pytest.raises(staffing.StaffingError, match="1 to 52 weeks"):
        staffing.build(store, QueueSettings(), weeks=weeks, now=NOW)


def _cli(store: Store, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOTLINE_DATABASE_URL": store.url, "HOTLINE_SECURITY_PIN_PEPPER": "p", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "hotline", "report", "staffing", *args]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_cli_in_json_csv_and_text(history: Store) -> None:
    done = _cli(history, "--weeks", "2", "--today", "2026-11-10", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["service_level_seconds"] == 15 and data["service_level_goal"] == 0.8
    assert data["history"] == {"from": "2026-10-27", "to": "2026-11-09"}
    monday = next(h for h in data["hours"] if h["day"] == "2026-11-16" and h["hour"] == 9)
    assert monday["agents_needed"] == 14 and monday["agents_signed_in"] == 1.6 and monday["short"] is True
    assert isinstance(monday["expected_wait_seconds"], int)

    done = _cli(history, "--weeks", "2", "--today", "2026-11-10", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 168
    assert {k: rows[0][k] for k in ("day", "hour", "agents_needed")} == {
        "day": "2026-11-11",
        "hour": "0",
        "agents_needed": "0",
    }

    done = _cli(history, "--weeks", "2", "--today", "2026-11-10", "--lang", "en")
    assert done.returncode == 0, done.stderr
    assert "Staffing by Erlang C" in done.stdout
    assert "80% of calls answered within 15 s" in done.stdout
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("2026-11-16") and " 09:00 " in ln)
    assert "14" in line and "Short" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--weeks", "0"), "1 to 52 weeks"),
        (("--today", "11/10/2026"), "not a date"),
        (("--from", "2026-11-01"), "--from/--to do not apply"),
        (("--format", "pdf"), "choose text, json or csv"),
    ],
)
def test_the_cli_refuses_bad_input_with_a_message(store: Store, args: tuple[str, ...], message: str) -> None:
    done = _cli(store, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""
