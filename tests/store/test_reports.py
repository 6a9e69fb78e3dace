"""The report's figures against a small hand-made store whose answers are worked out by
hand (docs/reports.md, "Report figures"), on SQLite and PostgreSQL; its outputs; bad periods."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import threading
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from core import rollups
from core.db import Store
from core.models import Agent, AgentEvent, Call, Callback, CallStep, ReportSealed, SmsMessage
from core.settings import QueueSettings
from ivr.asterisk_logs import CallFacts
from ivr.records import ImportReport, import_facts
from reports import render, sums
from reports.period import PeriodError, parse_period
from reports.report import build, half_up

ROOT = Path(__file__).resolve().parents[2]
BJ = zoneinfo.ZoneInfo("Asia/Shanghai")
PERIOD = parse_period("2026-11-02", "2026-11-03", "Asia/Shanghai")  # a Monday and a Tuesday
QUEUE = QueueSettings()  # 15 s service level (GB/T 33358), Monday to Friday


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=BJ).astimezone(dt.UTC)


def _call(cid: str, started: dt.datetime, disposition: str, **kw: Any) -> dict[str, Any]:
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


def _message(mid: int, category: str, status: str, created: dt.datetime, latency_s: int | None) -> dict[str, Any]:
    final = created + dt.timedelta(seconds=latency_s) if latency_s is not None else None
    return {
        "event_type": "x",
        "category": category,
        "recipient": f"1390000{mid:04d}",
        "text": "t",
        "priority": 1,
        "status": status,
        "attempts": 1,
        "next_attempt_at": created,
        "segments": 1,
        "created_at": created,
        "submitted_at": created if status != "queued" else None,
        "final_at": final,
        "duplicate_suspect": False,
    }


def _step(call_id: str, seq: int, when: dt.datetime, kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"call_id": call_id, "seq": seq, "at": when, "kind": kind, "node": "q", "detail": detail}


def _callback(call_id: str, when: dt.datetime, reason: str, status: str) -> dict[str, Any]:
    return {"call_id": call_id, "number": "1", "queue": "q", "reason": reason, "requested_at": when, "status": status}


@pytest.fixture
def filled(store: Store) -> Store:
    calls = [
        _call("auto-1", at(2, 9, 5), "automated"),
        _call("auto-2", at(2, 9, 40), "automated"),
        _call("ag-1", at(2, 10), "agent", queue_wait_s=10, talk_s=100, agent="1001", survey=1),
        _call("ag-2", at(3, 10, 30), "agent", queue_wait_s=30, talk_s=200, agent="1001", survey=3),
        _call("ag-3", at(3, 14), "agent", queue_wait_s=5, talk_s=301, agent="坐席1002"),
        _call("ab-1", at(3, 14, 10), "abandoned", queue_wait_s=40),
        _call("ab-2", at(3, 14, 20), "abandoned", queue_wait_s=8),
        _call("to-1", at(2, 16), "timeout", queue_wait_s=60),
        _call("cb-1", at(2, 16, 30), "callback", queue_wait_s=25),
        # Outside the period (a minute before it, and its first minute after): not counted.
        _call("before", at(1, 23, 59), "agent", queue_wait_s=1, talk_s=999, agent="1001"),
        _call("after", at(4, 0, 0), "automated"),
        # Still in progress (no disposition yet): not counted.
        _call("live", at(3, 15), None),
    ]
    steps = [
        _step("auto-1", 1, at(2, 9, 5), "query", {"query": "pension", "status": "ok"}),
        _step("auto-2", 1, at(2, 9, 40), "query", {"query": "pension", "status": "not_found"}),
        _step("ag-1", 1, at(2, 10), "query", {"query": "medical", "status": "ok"}),
        _step("ag-1", 2, at(2, 10), "node", {}),
    ]
    agent_events = [
        {"agent_id": "1002", "at": at(1, 8), "kind": "login", "reason": None},  # before, never out
        {"agent_id": "1001", "at": at(2, 9), "kind": "login", "reason": None},
        {"agent_id": "1001", "at": at(2, 11), "kind": "pause", "reason": "meal"},
        {"agent_id": "1001", "at": at(2, 11, 30), "kind": "unpause", "reason": None},
        {"agent_id": "1001", "at": at(2, 13), "kind": "logout", "reason": None},
    ]
    messages = [
        _message(1, "statement", "delivered", at(2, 9), 10),
        _message(2, "statement", "delivered", at(2, 9), 20),
        _message(3, "statement", "delivered", at(3, 9), 30),
        _message(4, "statement", "undelivered", at(3, 9), 50),
        _message(5, "pension", "delivered", at(3, 12), 5),
        _message(6, "pension", "queued", at(3, 12), None),
        _message(7, "pension", "delivered", at(4, 1), 5),  # outside
    ]
    with store.transaction() as c:
        c.execute(insert(Call), calls)
        c.execute(insert(CallStep), steps)
        c.execute(insert(AgentEvent), agent_events)
        c.execute(insert(SmsMessage), messages)
        c.execute(
            insert(Agent),
            [
                {"id": "1001", "name": "坐席1001", "interface": "Local/1001", "queues": "", "state": "logged_out"},
                {"id": "1002", "name": "坐席1002", "interface": "Local/1002", "queues": "", "state": "available"},
            ],
        )
        c.execute(
            insert(Callback),
            [
                _callback("cb-1", at(2, 16, 30), "long_wait", "done"),
                _callback("cb-x", at(3, 20), "after_hours", "open"),
            ],
        )
    return store


def test_every_figure_follows_its_definition(filled: Store) -> None:
    data = build(filled, PERIOD, QUEUE).as_dict()
    assert data["period"] == {"from": "2026-11-02", "to": "2026-11-03", "timezone": "Asia/Shanghai"}
    expected = {
        "calls": 9,
        "automated_calls": 2,
        "agent_calls": 3,
        "abandoned_calls": 2,
        "timeout_calls": 1,
        "callback_calls": 1,
        "agent_talk_seconds": 601,
        "agent_talk_minutes": 10,  # 10.02
        "avg_agent_talk_seconds": 200,  # 200.33
        "avg_wait_seconds": 15,  # (10 + 30 + 5) / 3: the mean wait of answered calls
        "avg_abandoned_wait_seconds": 24,  # (40 + 8) / 2
        "service_level_seconds": 15,
        "service_level": 2 / 3,  # answered within 15 s / answered (Asterisk's ServicelevelPerf)
        "service_level_with_abandoned": 3 / 5,  # (2 answered + 1 abandoned within 15 s) / (3 + 2)
        "connection_rate": 3 / 7,  # answered / reached the queue (none abandoned within 5 s)
        "short_abandoned_calls": 0,
        "abandonment_rate": 2 / 7,  # abandoned / reached the queue (3 + 2 + 1 + 1)
        "satisfaction_rate": 1 / 2,  # rated 1 or 2 / rated
        "rated_calls": 2,
        "ivr_resolved_calls": 1,
    }
    assert {k: data[k] for k in expected} == expected
    assert data["callbacks"] == {"requested": 2, "completed": 1, "failed": 0}
    agents = {a["agent"]: a for a in data["per_agent"]}
    assert agents["1001"] | {"occupancy": None} == {
        "agent": "1001",
        "name": "坐席1001",
        "calls": 2,
        "talk_seconds": 300,
        "avg_handle_seconds": 150,
        "paused_seconds": 1800,
        "logged_in_seconds": 4 * 3600,
        "occupancy": None,
        "quality_scores": 0,
        "avg_quality_score": None,
    }
    assert agents["1001"]["occupancy"] == pytest.approx(300 / (4 * 3600 - 1800))
    # Known by its queue member name; logged in since before the period, all of it.
    assert agents["1002"]["calls"] == 1 and agents["1002"]["logged_in_seconds"] == 2 * 86400
    assert data["menu_usage"] == [
        {"query": "pension", "uses": 2, "succeeded": 1},
        {"query": "medical", "uses": 1, "succeeded": 1},
    ]
    hours = {h["hour"]: h["calls"] for h in data["per_hour"]}
    assert len(hours) == 24 and hours[9] == 2 and hours[10] == 2 and hours[14] == 3 and hours[16] == 2
    assert [d["calls"] for d in data["per_weekday"]] == [5, 4, 0, 0, 0, 0, 0]
    assert [(d["day"], d["calls"]) for d in data["by_day"]] == [("2026-11-02", 5), ("2026-11-03", 4)]
    assert [(w["week_of"], w["calls"]) for w in data["by_week"]] == [("2026-11-02", 9)]
    assert [(m["month"], m["agent_calls"]) for m in data["by_month"]] == [("2026-11", 3)]
    sms = data["sms"]
    assert (sms["messages"], sms["sent"], sms["delivered"], sms["failed"]) == (6, 5, 4, 1)
    assert sms["avg_delivery_seconds"] == 16  # (10 + 20 + 30 + 5) / 4 = 16.25
    assert sms["by_category"]["statement"] | {"states": {}} == {
        "messages": 4,
        "sent": 4,
        "delivered": 3,
        "failed": 1,
        "avg_delivery_seconds": 20,
        "states": {},
    }
    assert sms["by_category"]["pension"]["states"] == {"delivered": 1, "queued": 1}


def test_a_period_without_calls_is_a_report_of_zeros(store: Store) -> None:
    data = build(store, parse_period("2020-01-01", "2020-01-07", "Asia/Shanghai"), QUEUE).as_dict()
    assert data["calls"] == data["agent_calls"] == data["automated_calls"] == data["agent_talk_minutes"] == 0
    assert data["avg_agent_talk_seconds"] == 0 and data["service_level"] is None
    assert data["connection_rate"] is None and data["goals_missed"] == [] and data["hours_missed"] == []
    assert data["satisfaction_rate"] is None and data["abandonment_rate"] is None
    assert len(data["per_hour"]) == 24 and len(data["per_weekday"]) == 7
    assert data["by_day"] == [] and data["per_agent"] == [] and data["menu_usage"] == []
    assert data["sms"]["messages"] == 0 and data["sms"]["avg_delivery_seconds"] is None
    assert "人工服务量" in render.text(build(store, parse_period("2020-01-01", "2020-01-01", "Asia/Shanghai"), QUEUE))


def test_rounding_is_half_up() -> None:
    assert [half_up(x) for x in (195.5, 196.5, 0.5, 195.49, 17481.0)] == [196, 197, 1, 195, 17481]


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("2013-12-31", "2013-07-01", "ends (2013-07-01) before it starts (2013-12-31)"),
        ("2013-13-01", "2013-12-31", "--from '2013-13-01': not a date; write it as YYYY-MM-DD"),
        ("yesterday", "2013-12-31", "--from 'yesterday': not a date"),
        ("2013-07-01", "2013/12/31", "--to '2013/12/31': not a date"),
        ("2013-07-01", "2103-07-01", "longer than 3660 days"),
    ],
)
def test_a_bad_period_is_refused_with_what_to_change(first: str, last: str, message: str) -> None:
    with pytest.raises(PeriodError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_period(first, last, "Asia/Shanghai")


def test_the_cli_refuses_a_bad_period_and_writes_nothing(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "r.pdf"
    env = {"HOTLINE_DATABASE_URL": store.url, "HOTLINE_SECURITY_PIN_PEPPER": "p", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "hotline", "report", "--from", "2026-11-30", "--to", "2026-11-01"]
    done = subprocess.run([*argv, "--output", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "report: the period ends (2026-11-01) before it starts (2026-11-30); swap --from and --to" in done.stderr
    assert not out.exists()
    pdf = subprocess.run(
        [sys.executable, "-m", "hotline", "report", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "pdf"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pdf.returncode == 2 and "a PDF needs --output FILE.pdf" in pdf.stderr


def test_outputs_csv_tables_html_and_english(filled: Store) -> None:
    report = build(filled, PERIOD, QUEUE)
    files = render.csv_tables(report)
    assert list(files) == [
        f"{t}.csv"
        for t in (
            "summary",
            "goals",
            "hours_missed",
            "by_month",
            "by_week",
            "by_day",
            "per_hour",
            "per_weekday",
            "per_agent",
            "menu_usage",
            "sms",
            "notices",
            "notice_totals",
            "casework",
            "orders_by_category",
            "orders_by_department",
        )
    ]
    summary = {r["key"]: r["value"] for r in csv.DictReader(io.StringIO(files["summary.csv"]))}
    assert summary["agent_calls"] == "3" and summary["agent_talk_minutes"] == "10"
    hours = list(csv.DictReader(io.StringIO(files["per_hour.csv"])))
    assert len(hours) == 24 and hours[14]["calls"] == "3"
    page = render.as_html(report, "zh")
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 4
    for outside in ("http://", "https://", "<link", "<script", "src=", "@import", "url("):
        assert outside not in page  # self-contained: nothing fetched when it is opened
    assert "人工服务量" in page and "平均通话时长(秒)" in page
    english = render.text(report, "en")
    assert "Agent calls" in english and "Average talk time (s)" in english and "人工" not in english
    assert json.loads(render.as_json(report))["agent_calls"] == 3


def test_a_pdf_prints_from_chromium(filled: Store) -> None:
    pdf = render.as_pdf(build(filled, PERIOD, QUEUE), "zh")
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    assert b"/FontFile" in pdf or b"/FontFile2" in pdf  # the CJK font travels inside the file


def test_reading_a_report_never_holds_up_call_recording(filled: Store) -> None:
    """A report reads in one transaction; while it is open, the IVR still records calls
    (SQLite in WAL mode, PostgreSQL's MVCC): the write commits while the read is open."""
    committed = threading.Event()
    failure: list[BaseException] = []

    def record_a_call() -> None:
        try:
            with filled.transaction() as c:
                c.execute(insert(Call), [_call("during", at(3, 16), "automated")])
            committed.set()
        except BaseException as exc:
            failure.append(exc)

    with filled.transaction() as c:
        c.execute(select(Call.id).where(Call.started_at >= PERIOD.start)).all()  # the read has begun
        writer = threading.Thread(target=record_a_call)
        writer.start()
        writer.join(timeout=30)
        assert committed.is_set(), failure  # committed while the report's transaction is open
    assert build(filled, PERIOD, QUEUE).as_dict()["automated_calls"] == 3


def test_simulated_traffic_is_marked_replaced_and_cleared(filled: Store) -> None:
    from hotline import simulate

    traffic = simulate.Traffic(calls_per_day=80, messages_per_day=50)
    first = simulate.simulate(filled, dt.date(2026, 11, 2), dt.date(2026, 11, 8), "Asia/Shanghai", traffic)
    assert first["calls"] > 300 and first["messages"] > 200 and first["agent_events"] == 5 * 4 * 4
    again = simulate.simulate(filled, dt.date(2026, 11, 2), dt.date(2026, 11, 8), "Asia/Shanghai", traffic)
    assert again == first  # the same days again: replaced, not added
    week = parse_period("2026-11-02", "2026-11-08", "Asia/Shanghai")
    report = build(filled, week, QUEUE)
    data = report.as_dict()
    assert data["simulated_calls"] == first["calls"] and data["calls"] == first["calls"] + 10  # with "after"
    hours = {h["hour"]: h["calls"] for h in data["per_hour"]}
    assert hours[10] > hours[13] and hours[3] <= 1  # the morning peak; nights are quiet
    weekdays = [d["calls"] for d in data["per_weekday"]]
    assert min(weekdays[:5]) > 2 * max(weekdays[5:])
    assert "含 " in render.text(report) and "simulated calls" in render.as_html(report, "en")
    assert simulate.clear(filled) == first["calls"]
    assert build(filled, PERIOD, QUEUE).as_dict()["calls"] == 9  # the real records are all still there
    with filled.transaction() as c:
        assert c.execute(select(SmsMessage.id).where(SmsMessage.event_type == "simulated")).first() is None


# --- hourly sums of closed hours ---------------------------------------------------------------


def _sealed(store: Store, kind: str) -> int:
    with store.transaction() as c:
        return len(c.execute(select(ReportSealed.hour).where(ReportSealed.kind == kind)).all())


def test_closed_hours_are_summed_once_and_read_back_the_same(filled: Store) -> None:
    first = build(filled, PERIOD, QUEUE).as_dict()
    assert _sealed(filled, "calls") == _sealed(filled, "menu") == 48  # two closed days
    assert _sealed(filled, "sms") == 47  # one hour still has a queued message: not sealed
    again = build(filled, PERIOD, QUEUE).as_dict()
    assert {k: v for k, v in again.items() if k != "generated_at"} == {
        k: v for k, v in first.items() if k != "generated_at"
    }
    # The queued message is delivered later: its hour was left open, so the report follows.
    with filled.transaction() as c:
        c.execute(
            update(SmsMessage)
            .where(SmsMessage.status == "queued")
            .values(status="delivered", submitted_at=at(3, 12), final_at=at(3, 12) + dt.timedelta(seconds=9))
        )
    sms = build(filled, PERIOD, QUEUE).as_dict()["sms"]
    assert sms["by_category"]["pension"]["states"] == {"delivered": 2} and sms["delivered"] == 5
    assert _sealed(filled, "sms") == 48


def test_an_import_into_a_closed_hour_unseals_it(filled: Store) -> None:
    assert build(filled, PERIOD, QUEUE).as_dict()["abandoned_calls"] == 2
    with filled.transaction() as c:  # a call Asterisk's files will speak of
        c.execute(update(Call).where(Call.id == "auto-2").values(asterisk_uniqueid="1762047600.7"))
    facts = {"1762047600.7": CallFacts("1762047600.7", at(2, 9, 40), at(2, 9, 45), queue="hotline-12333")}
    facts["1762047600.7"].queue_entered_at, facts["1762047600.7"].queue_wait_s = at(2, 9, 41), 50
    facts["1762047600.7"].disposition = "abandoned"
    import_facts(filled, facts, ImportReport())
    data = build(filled, PERIOD, QUEUE).as_dict()
    assert (data["abandoned_calls"], data["automated_calls"]) == (3, 1)


def test_open_hours_are_read_live(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    today = now.astimezone(BJ).date()
    period = parse_period(today.isoformat(), today.isoformat(), "Asia/Shanghai")
    assert build(store, period, QUEUE).as_dict()["calls"] == 0
    with store.transaction() as c:
        c.execute(insert(Call), [_call("now-1", now - dt.timedelta(minutes=1), "automated")])
    assert build(store, period, QUEUE).as_dict()["automated_calls"] == 1
    assert _sealed(store, "calls") == 0  # nothing of today is closed


def test_another_service_level_threshold_sums_again(filled: Store) -> None:
    twenty = QueueSettings(service_level_s=20)  # the older 80/20, still selectable
    assert build(filled, PERIOD, twenty).as_dict()["service_level"] == 2 / 3
    assert build(filled, PERIOD, twenty).as_dict()["service_level_seconds"] == 20
    assert (
        build(filled, PERIOD, QueueSettings(service_level_s=5)).as_dict()["service_level"] == 1 / 3
    )  # 5 s answered within 5
    assert build(filled, PERIOD, twenty).as_dict()["service_level"] == 2 / 3


def test_sums_read_before_an_unseal_are_not_kept(filled: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A report summing closed hours while an import unseals them keeps nothing it read:
    the next report sums again and sees what the import wrote."""
    compute = sums.COMPUTE["calls"]

    def unsealed_meanwhile(c: Any, start: dt.datetime, end: dt.datetime, sl: int) -> list[dict[str, Any]]:
        rows = compute(c, start, end, sl)
        with filled.transaction() as other:
            rollups.unseal(other, [at(2, 10)])
        return rows

    monkeypatch.setitem(sums.COMPUTE, "calls", unsealed_meanwhile)
    assert sums.seal(filled, "calls", PERIOD.start, PERIOD.end, 20, dt.datetime.now(dt.UTC)) == 0
    assert _sealed(filled, "calls") == 0
