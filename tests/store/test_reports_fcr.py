"""First-call resolution from sealed hourly counts (docs/reports.md, "Casework figures"; kind `fcr`
in reports/sums.py): a period partly sealed, partly counted live, gives the figures the
definition gives counted by hand over the records, on SQLite and PostgreSQL; orders made
from a call after its hour was sealed count; a call imported later unseals the week
before it; a store whose hours were sealed before the first-call counts existed (before
migration 0030) seals them at its next report."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from typing import Any

import pytest
from sqlalchemy import insert, select

from cases import orders as o
from core import rollups
from core.db import Store
from core.models import Call, ReportSealed, WorkOrder
from core.settings import QueueSettings, Settings
from reports import casework, sums
from reports.period import parse_period
from reports.report import build
from tests.store.test_reports_casework import _call

BJ = zoneinfo.ZoneInfo("Asia/Shanghai")
PERIOD = parse_period("2026-10-01", "2026-10-21", "Asia/Shanghai")
QUEUE = QueueSettings()
WEEK = dt.timedelta(days=7)
HOURS = int((PERIOD.end - PERIOD.start) / dt.timedelta(hours=1))
KEYS = ("fcr_calls", "fcr_resolved", "fcr_with_order", "fcr_repeated", "fcr_no_number")


def _traffic() -> list[dict[str, Any]]:
    """600 calls from 300 numbers (and some withheld) from a week before the period to a
    week after it, whole seconds; and repeats on the edge: 7 days less a second (a repeat)
    and exactly 7 days (not one)."""
    rnd = random.Random(12333)
    first = PERIOD.start - WEEK
    span = int((PERIOD.end + WEEK - first).total_seconds())
    numbers = [f"1380000{i:04d}" for i in range(300)]
    calls = []
    for i in range(600):
        number = rnd.choice([None, ""]) if rnd.random() < 0.08 else rnd.choice(numbers)
        disposition = rnd.choice(["agent", "agent", "agent", "automated", "abandoned"])
        calls.append(_call(f"r{i}", first + dt.timedelta(seconds=rnd.randrange(span)), number, disposition))
    edge = PERIOD.start + dt.timedelta(days=5, hours=3)
    calls += [
        _call("edge-1", edge, "13900000001", "agent"),
        _call("edge-1-again", edge + WEEK - dt.timedelta(seconds=1), "13900000001", "automated"),
        _call("edge-2", edge, "13900000002", "agent"),
        _call("edge-2-later", edge + WEEK, "13900000002", "automated"),
    ]
    return calls


def _by_hand(store: Store) -> dict[str, int]:
    """The definition, counted over every call record in Python."""
    with store.transaction() as c:
        calls = c.execute(select(Call.id, Call.caller_number, Call.started_at, Call.disposition)).all()
        ordered = set(c.scalars(select(WorkOrder.call_id).where(WorkOrder.call_id.is_not(None))))
    out = dict.fromkeys(KEYS, 0)
    for cid, number, started, disposition in calls:
        if disposition != "agent" or not PERIOD.start <= started < PERIOD.end:
            continue
        if not number:
            out["fcr_no_number"] += 1
            continue
        again = any(n == number and started < s < started + WEEK for _, n, s, _ in calls)
        out["fcr_calls"] += 1
        out["fcr_with_order"] += cid in ordered
        out["fcr_repeated"] += again
        out["fcr_resolved"] += not (again or cid in ordered)
    return out


def _figures(store: Store) -> dict[str, int]:
    """The report's first-call figures as they stand, sealing nothing."""
    with store.transaction() as c:
        cases = casework.build(c, PERIOD, QUEUE, dt.datetime.now(dt.UTC)).as_dict()
    return {k: cases[k] for k in KEYS}


def _sealed(store: Store) -> set[dt.datetime]:
    with store.transaction() as c:
        return set(c.scalars(select(ReportSealed.hour).where(ReportSealed.kind == "fcr")))


def _order(store: Store, settings: Settings, call_id: str, when: dt.datetime) -> None:
    o.order_from_call(
        store, settings, call_id=call_id, category="policy_question", summary="咨询", created_by="console:a", now=when
    )


@pytest.fixture
def traffic(store: Store, settings: Settings) -> Store:
    calls = _traffic()
    with store.transaction() as c:
        c.execute(insert(Call), calls)
    taken = [c for c in calls if c["disposition"] == "agent" and c["caller_number"] and c["id"].startswith("r")]
    for call in [c for c in taken if PERIOD.start <= c["started_at"] < PERIOD.end][:40:4]:
        _order(store, settings, call["id"], call["started_at"] + dt.timedelta(minutes=5))
    return store


def test_sealed_and_live_hours_give_the_definitions_figures(traffic: Store, settings: Settings) -> None:
    expected = _by_hand(traffic)
    assert expected["fcr_calls"] > 100 and expected["fcr_repeated"] > 10 and expected["fcr_with_order"] == 10
    assert expected["fcr_no_number"] > 0
    assert _figures(traffic) == expected  # nothing sealed: every hour counted live
    # Read 3 days after the period: the hours up to 8 days before that are sealed, the
    # period's last 5 days are still live.
    then = PERIOD.end + dt.timedelta(days=3)
    sums.seal_all(traffic, PERIOD.start, PERIOD.end, 20, now=then)
    sealed = _sealed(traffic)
    assert sealed and max(sealed) == rollups.hour_of(then - dt.timedelta(days=8)) - dt.timedelta(hours=1)
    assert _figures(traffic) == expected
    # An order made now from a call in a sealed hour (a callback that could not be settled).
    with traffic.transaction() as c:
        done = set(c.scalars(select(WorkOrder.call_id)))
        early = c.scalars(
            select(Call.id)
            .where(Call.disposition == "agent", Call.caller_number.like("138%"), Call.started_at < max(sealed))
            .where(Call.started_at >= PERIOD.start, Call.id.not_in(done))
            .order_by(Call.started_at)
        ).first()
    assert early is not None
    _order(traffic, settings, early, dt.datetime.now(dt.UTC))
    assert _by_hand(traffic)["fcr_with_order"] == 11
    assert _figures(traffic) == _by_hand(traffic)
    # Everything sealed (read now, weeks later): the same.
    build(traffic, PERIOD, QUEUE)
    assert len(_sealed(traffic)) == HOURS
    assert _figures(traffic) == _by_hand(traffic)


def test_a_call_imported_later_unseals_the_week_before_it(traffic: Store) -> None:
    build(traffic, PERIOD, QUEUE)
    before = _by_hand(traffic)
    # A call from a number that called once in the period, six days after it: a repeat.
    with traffic.transaction() as c:
        lone = c.execute(
            select(Call.caller_number, Call.started_at).where(
                Call.disposition == "agent", Call.caller_number == "13900000002"
            )
        ).one()
        late = lone.started_at + dt.timedelta(days=6)
        c.execute(insert(Call), [_call("imported", late, lone.caller_number, "abandoned")])
        assert rollups.unseal(c, [late]) == 1  # as ivr.records does
    sealed, hour = _sealed(traffic), rollups.hour_of(late)
    assert rollups.hour_of(lone.started_at) not in sealed
    assert not {h for h in sealed if hour - WEEK <= h <= hour}  # the week it may repeat
    assert {hour - WEEK - dt.timedelta(hours=1), hour + dt.timedelta(hours=1)} <= sealed  # no more
    after = _by_hand(traffic)
    assert after["fcr_repeated"] == before["fcr_repeated"] + 1
    assert _figures(traffic) == after
    assert build(traffic, PERIOD, QUEUE).as_dict()["casework"]["fcr_repeated"] == after["fcr_repeated"]
    assert rollups.hour_of(lone.started_at) in _sealed(traffic)


def test_hours_sealed_before_the_first_call_counts_get_them_at_the_next_report(traffic: Store) -> None:
    """A store upgraded to 0030 has its calls, menu and SMS hours sealed and no `fcr` hour."""
    for kind in ("calls", "menu", "sms"):
        sums.seal(traffic, kind, PERIOD.start, PERIOD.end, 20, dt.datetime.now(dt.UTC))
    assert _sealed(traffic) == set()
    expected = _by_hand(traffic)
    assert _figures(traffic) == expected
    data = build(traffic, PERIOD, QUEUE).as_dict()["casework"]
    assert {k: data[k] for k in KEYS} == expected
    assert len(_sealed(traffic)) == HOURS


def test_clearing_simulated_days_unseals_the_week_before_them(traffic: Store) -> None:
    build(traffic, PERIOD, QUEUE)
    day = PERIOD.start + dt.timedelta(days=10)
    with traffic.transaction() as c:  # as `hotline simulate` does before it writes the days
        rollups.unseal_range(c, day, day + dt.timedelta(days=1), ("calls", "menu", "sms"))
    sealed = _sealed(traffic)
    assert len(sealed) == HOURS - 8 * 24
    assert not {h for h in sealed if day - WEEK <= h < day + dt.timedelta(days=1)}
    assert _figures(traffic) == _by_hand(traffic)
