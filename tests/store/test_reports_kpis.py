"""The national KPIs in the report (reports/kpis.py), on SQLite and PostgreSQL: the service
level at 15 s (GB/T 33358) or a chosen 20 s, the connection rate (接通率) without the short
abandons, the goals, and the hours of the day that missed them, in JSON, text and CSV."""

from __future__ import annotations

import csv
import doctest
import io
import re
import zoneinfo

import pytest
from sqlalchemy import insert

from core.db import Store
from core.models import Call
from core.settings import QueueSettings
from reports import kpis, render
from reports.period import parse_period
from reports.report import build
from tests.store.test_staffing import at, call_row

BJ = zoneinfo.ZoneInfo("Asia/Shanghai")
PERIOD = parse_period("2026-11-02", "2026-11-03", "Asia/Shanghai")


def test_the_doctests() -> None:
    assert doctest.testmod(kpis).failed == 0


@pytest.fixture
def monday(store: Store) -> Store:
    def answered(tag: str, hour: int, n: int, wait_s: int) -> list[dict[str, object]]:
        return [
            call_row(f"{tag}-{i}", at(11, 2, hour, i), "agent", queue_wait_s=wait_s, talk_s=100, agent="1001")
            for i in range(n)
        ]

    calls = [
        *answered("nine", 9, 20, wait_s=10),  # 09: all in time, all connected
        *answered("ten-slow", 10, 5, wait_s=18),  # 10: within 20 s but not 15 s
        *answered("ten-fast", 10, 5, wait_s=5),
        call_row("ten-misdial", at(11, 2, 10, 30), "abandoned", queue_wait_s=3),  # short: left out
        *answered("eleven", 11, 9, wait_s=5),  # 11: 9 of 10 connected
        call_row("eleven-gave-up", at(11, 2, 11, 30), "abandoned", queue_wait_s=40),
    ]
    with store.transaction() as c:
        c.execute(insert(Call), calls)
    return store


def _missed(data: dict[str, object]) -> list[tuple[int, list[str]]]:
    return [(h["hour"], h["missed"]) for h in data["hours_missed"]]  # type: ignore[attr-defined,index]


def test_the_national_goals_at_15_s(monday: Store) -> None:
    data = build(monday, PERIOD, QueueSettings()).as_dict()
    assert data["goals"] == {
        "service_level_seconds": 15,
        "service_level": 0.8,
        "connection_rate": 0.95,
        "short_abandon_seconds": 5,
    }
    assert data["service_level"] == 34 / 39  # (20 + 5 + 9) answered within 15 s / 39 answered
    assert data["short_abandoned_calls"] == 1
    assert data["connection_rate"] == 39 / 40  # 39 answered / (41 offered - 1 short abandon)
    assert data["goals_missed"] == []  # over the period both goals are met
    assert _missed(data) == [(10, ["service_level"]), (11, ["connection_rate"])]
    eleven = data["hours_missed"][1]
    assert (eleven["connection_rate"], eleven["service_level"], eleven["agent_calls"]) == (0.9, 1.0, 9)
    hours = {h["hour"]: h for h in data["per_hour"]}
    assert hours[10]["connection_rate"] == 1.0 and hours[10]["short_abandoned_calls"] == 1


def test_20_s_remains_selectable(monday: Store) -> None:
    data = build(monday, PERIOD, QueueSettings(service_level_s=20)).as_dict()
    assert data["service_level_seconds"] == 20 and data["service_level"] == 1.0
    assert _missed(data) == [(11, ["connection_rate"])]


def test_the_short_abandon_setting_and_a_stricter_goal(monday: Store) -> None:
    every_abandon = build(monday, PERIOD, QueueSettings(short_abandon_s=0)).as_dict()
    assert every_abandon["connection_rate"] == 39 / 41 and every_abandon["short_abandoned_calls"] == 0
    assert _missed(every_abandon)[0] == (10, ["connection_rate", "service_level"])  # 10 of 11
    strict = build(monday, PERIOD, QueueSettings(connection_rate_goal=0.98)).as_dict()
    assert strict["goals_missed"] == ["connection_rate"]


def test_the_exports_show_the_goals_and_the_hours(monday: Store) -> None:
    report = build(monday, PERIOD, QueueSettings())
    text = render.text(report, "zh")
    assert re.search(r"接通率目标\s+95.0%", text) and re.search(r"期间结果\s+达标", text)
    missed = text.split("[未达标时段]")[1]
    assert "10:00" in missed and "服务水平未达标" in missed and "接通率未达标" in missed
    english = render.text(report, "en")
    assert "Connection rate goal" in english and "connection rate below goal" in english
    files = render.csv_tables(report)
    rows = list(csv.DictReader(io.StringIO(files["hours_missed.csv"])))
    assert [(r["hour"], r["missed"]) for r in rows] == [("10", "service_level"), ("11", "connection_rate")]
    goals = {r["key"]: r["value"] for r in csv.DictReader(io.StringIO(files["goals.csv"]))}
    assert goals == {
        "goal_service_level_seconds": "15",
        "goal_service_level": "0.8",
        "goal_connection_rate": "0.95",
        "goal_short_abandon_seconds": "5",
        "goals_missed": "",
    }
    assert "接通率" in render.html_body(report, "zh")
