"""The report's casework figures (docs/reports.md, "Casework figures") over orders made, answered,
returned and closed through `cases`' own functions, voice messages turned into orders by
its task, follow-ups answered by SMS through the gateway's MO handler, and call records,
on SQLite and PostgreSQL. The period holds National Day 2026 (holidays 10-01..10-07, the
adjusted working days Sunday 09-27 and Saturday 10-10), so working days matter: the hand
figures below count them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from typing import Any

import pytest
from sqlalchemy import insert

from cases import orders as o
from cases.followup import collect_followup_replies, send_due_followups
from cases.tasks import voice_messages_to_orders
from core.business import AuditedReader
from core.db import Store
from core.models import Call, VoiceMessage
from core.sample_port import SampleBusinessPort
from core.settings import QueueSettings, Settings
from reports import render
from reports.period import parse_period
from reports.report import Report, build
from sms.mo import RATED, SIGNATURE, MoHandler
from tests.conftest import PEPPER

BJ = zoneinfo.ZoneInfo("Asia/Shanghai")
PERIOD = parse_period("2026-09-28", "2026-10-11", "Asia/Shanghai")  # Monday .. Sunday, two weeks
NOW = dt.datetime(2026, 10, 12, 10, 0, tzinfo=BJ)  # the report is read on the Monday after
NATIONAL_DAY = QueueSettings(
    holidays=tuple(dt.date(2026, 10, d) for d in range(1, 8)),
    workdays=(dt.date(2026, 9, 27), dt.date(2026, 10, 10)),
)
PENSION, MEDICAL, CARD = "养老保险", "医疗保险", "社保卡"


def at(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=BJ)


@pytest.fixture
def casework(settings: Settings) -> Settings:
    """The holiday calendar; follow-ups an hour after the answer."""
    cases = settings.cases.model_copy(update={"followup_after_hours": 1.0})
    return settings.model_copy(update={"queue": NATIONAL_DAY, "cases": cases})


def _call(cid: str, started: dt.datetime, number: str | None, disposition: str = "agent") -> dict[str, Any]:
    return {
        "id": cid,
        "caller_number": number,
        "started_at": started.astimezone(dt.UTC),
        "ended_at": (started + dt.timedelta(minutes=4)).astimezone(dt.UTC),
        "disposition": disposition,
        "transport": "fastagi",
        "language": "zh",
        "ring_no_answer": 0,
        "source": "ivr",
        "queue_wait_s": 10 if disposition == "agent" else None,
        "talk_s": 180 if disposition == "agent" else None,
        "agent": "1001" if disposition == "agent" else None,
    }


CALLS = [
    _call("c1", at(9, 28, 10), "13800000001"),  # becomes work order B
    _call("c2", at(9, 29, 9), "13800000002"),
    _call("c2-again", at(10, 6, 8, 59), "13800000002", "automated"),  # 6 days 23:59 later: a repeat
    _call("c3", at(9, 29, 10), "13800000003"),
    _call("c3-day8", at(10, 7, 10), "13800000003", "automated"),  # 8 days later: not a repeat
    _call("c4", at(9, 30, 11), "13800000004"),  # nothing after it
    _call("c4-before", at(9, 29, 8), "13800000004", "abandoned"),  # before it: no matter
    _call("c5", at(9, 30, 12), None),  # number withheld: not counted either way
    _call("c6", at(10, 11, 20), "13800000006"),  # the period's last evening...
    _call("c6-again", at(10, 13, 9), "13800000006", "automated"),  # ...called again after the period
    _call("c7", at(9, 27, 16), "13800000007"),  # before the period: not counted
]


def _order(store: Store, settings: Settings, when: dt.datetime, **kw: Any) -> o.Order:
    args: dict[str, Any] = {
        "kind": "call",
        "category": "policy_question",
        "summary": "咨询灵活就业人员养老保险补缴政策",
        "created_by": "console:agent1001",
        "department": PENSION,
    }
    return o.create_order(store, settings, now=when, **(args | kw))


def _answer(store: Store, settings: Settings, order: o.Order, when: dt.datetime) -> None:
    o.answer_order(store, settings, order.id, actor="console:dept", answer="已按政策办理。", reply_via="none", now=when)


@pytest.fixture
def filled(store: Store, casework: Settings) -> Store:
    s = casework
    with store.transaction() as c:
        c.execute(insert(Call), CALLS)
    # F: before the period, due at the close of Monday 09-28 (Sunday 09-27 is a working day).
    f = _order(store, s, at(9, 25, 10), category="account_lookup", caller_number="13900000006")
    _answer(store, s, f, at(9, 28, 16))  # on time; 0.8333 + 1 + 0.8333 working days
    # A: Wednesday before the holiday, due Friday 10-09; answered Thursday 10-08 12:30.
    a = _order(store, s, at(9, 30, 15), caller_number="13900000001")
    _answer(store, s, a, at(10, 8, 12, 30))  # on time; 2.5 h + 4 h of 9-hour days = 0.7222
    # B: a complaint (5 working days) from call c1, due on the adjusted Saturday 10-10; late.
    b = o.order_from_call(
        store, s, call_id="c1", category="complaint", summary="窗口态度差", created_by="console:a", now=at(9, 28, 10)
    )
    assert b.due_at == at(10, 10, 17, 30)  # 5 working days: 09-29, 09-30, 10-08, 10-09, 10-10
    b = o.reassign_order(store, s, b.id, actor="console:sup", department=PENSION, now=at(9, 28, 11))
    _answer(store, s, b, at(10, 11, 9))  # Sunday: late; 0.8333 + 5 working days
    # C: a duplicate, closed without an answer the same day: decided, on time, 0.5 days.
    c_ = _order(store, s, at(9, 29, 9), department=MEDICAL)
    o.close_order(store, c_.id, actor="console:sup", note="重复工单", now=at(9, 29, 13, 30))
    # D: sent back by the department, still waiting past its due time (Saturday 10-10).
    d = _order(store, s, at(10, 8, 10), category="how_to", department=CARD)
    o.return_order(store, d.id, actor="console:card", reason="非本部门业务", now=at(10, 9, 9))
    # Voice messages (after hours Friday, Saturday morning, Sunday), orders at the hotline.
    with store.session() as session:
        for i, left in enumerate((at(10, 9, 18), at(10, 10, 9), at(10, 11, 8)), start=1):
            session.add(
                VoiceMessage(
                    call_id=f"vm-{i}",
                    caller_number=f"1390000010{i}",
                    recording=f"messages/{i}.wav",
                    duration_s=20,
                    created_at=left.astimezone(dt.UTC),
                )
            )
    e1, e2, _e3 = sorted(voice_messages_to_orders(store, s, now=at(10, 11, 9)), key=lambda x: x.id)
    _answer(store, s, e1, at(10, 10, 10))  # 16 h after the message; 1.5 h of Saturday's hours
    _answer(store, s, e2, at(10, 10, 11))  # 2 h after; 2 h of Saturday's hours
    # Follow-ups on Saturday afternoon (a working day): F, A, E1, E2 are asked; A says 1, E1 3.
    assert len(send_due_followups(store, s, now=at(10, 10, 14))) == 4
    mo = MoHandler(store, AuditedReader(store, SampleBusinessPort(store, PEPPER)), settings=s.sms)
    assert mo.answer("13900000001", "1", now=at(10, 10, 14, 30)) == RATED + SIGNATURE
    assert mo.answer("13900000101", "3", now=at(10, 10, 14, 31)) == RATED + SIGNATURE
    assert len(collect_followup_replies(store, now=at(10, 10, 15))) == 2
    return store


def _report(store: Store) -> Report:
    return build(store, PERIOD, NATIONAL_DAY, now=NOW)


def test_orders_on_time_and_handling_time_count_working_days(filled: Store) -> None:
    cases = _report(filled).as_dict()["casework"]
    # Created in the period: A B C D E1 E2 E3, in their state now; D waits past due.
    assert cases["orders_created"] == 7
    assert cases["orders_by_state"] == {"open": 1, "returned": 1, "answered": 4, "closed": 1}
    assert cases["orders_overdue"] == 1
    # Decided in the period: F A B C E1 E2 (F was created before it); B was late.
    assert (cases["orders_decided"], cases["orders_on_time"]) == (6, 5)
    assert cases["on_time_rate"] == pytest.approx(5 / 6)
    # 2.6667 + 0.7222 + 5.8333 + 0.5 + 0.1667 + 0.2222 = 10.1111 working days over 6 orders.
    assert cases["avg_handling_working_days"] == 1.69
    departments = {r["department"]: r for r in cases["by_department"]}
    assert list(departments) == [PENSION, MEDICAL, CARD, None]  # the busiest first, the hotline's own last
    pension = departments[PENSION]
    assert (pension["orders"], pension["answered"], pension["decided"], pension["on_time"]) == (2, 2, 3, 2)
    assert pension["on_time_rate"] == pytest.approx(2 / 3)
    assert pension["avg_handling_working_days"] == 3.07  # (2.6667 + 0.7222 + 5.8333) / 3
    card = departments[CARD]
    assert (card["orders"], card["returned"], card["overdue"], card["decided"]) == (1, 1, 1, 0)
    assert card["on_time_rate"] is None and card["avg_handling_working_days"] is None
    hotline = departments[None]
    assert (hotline["orders"], hotline["open"], hotline["answered"], hotline["on_time"]) == (3, 1, 2, 2)
    categories = {r["category"]: r for r in cases["by_category"]}
    assert categories["account_lookup"]["orders"] == 0 and categories["account_lookup"]["decided"] == 1
    assert categories["complaint"]["on_time_rate"] == 0.0
    assert categories["policy_question"]["orders"] == 5
    assert categories["policy_question"]["avg_handling_working_days"] == 0.4  # 1.6111 / 4


def test_first_call_resolution_voice_messages_and_follow_ups(filled: Store) -> None:
    cases = _report(filled).as_dict()["casework"]
    # c1 became an order; c2 called again within 7 days, c6 too (after the period);
    # c3's next call was on day 8 and c4 had none: 2 of 5 calls with a number resolved.
    assert (cases["fcr_calls"], cases["fcr_with_order"], cases["fcr_repeated"]) == (5, 1, 2)
    assert (cases["fcr_resolved"], cases["fcr_no_number"]) == (2, 1)
    assert cases["first_call_resolution_rate"] == pytest.approx(0.4)
    # Three messages, two answered after 16 h and 2 h: nearest rank, median 2 h, p90 16 h.
    assert (cases["voice_messages_left"], cases["voice_messages_answered"]) == (3, 2)
    assert (cases["voice_answer_median_hours"], cases["voice_answer_p90_hours"]) == (2.0, 16.0)
    # Of the four asked, A answered 1, E1 answered 3; F and E2 have not answered yet.
    assert (cases["followups_asked"], cases["followups_answered"], cases["followups_satisfied"]) == (4, 2, 1)
    assert cases["followup_satisfaction_rate"] == 0.5


def test_the_casework_figures_are_in_every_rendering(filled: Store) -> None:
    report = _report(filled)
    text = render.text(report)
    for line in ("按时办结率", "83.3%", "平均办理时长(工作日)", "1.69", "一次解决率", "40.0%", "回访满意率", "50.0%"):
        assert line in text
    pension = next(row for row in text.splitlines() if row.startswith(PENSION))
    assert "66.7%" in pension and "3.07" in pension
    assert any(row.startswith("热线(未分派)") for row in text.splitlines())
    english = render.text(report, "en")
    assert "On-time closure rate" in english and "Complaint or report" in english
    files = render.csv_tables(report)
    figures = {r["key"]: r["value"] for r in csv.DictReader(io.StringIO(files["casework.csv"]))}
    assert figures["orders_decided"] == "6" and figures["voice_answer_p90_hours"] == "16.0"
    by_department = list(csv.DictReader(io.StringIO(files["orders_by_department.csv"])))
    assert [r["department"] for r in by_department] == [PENSION, MEDICAL, CARD, ""]
    assert by_department[1]["on_time_rate"] == "1.0"
    page = render.as_html(report)
    assert 'class="casework-kpis"' in page and "<b>83.3%</b><span>按时办结率</span>" in page
    assert "工单按承办部门" in page and "投诉举报" in page


def test_no_orders_shows_no_rate_rather_than_zero(store: Store) -> None:
    with store.transaction() as c:
        c.execute(insert(Call), [_call("lonely", at(9, 29, 9), None)])
    report = _report(store)
    cases = report.as_dict()["casework"]
    assert cases["orders_created"] == 0 and cases["orders_decided"] == 0
    for rate in ("on_time_rate", "first_call_resolution_rate", "followup_satisfaction_rate"):
        assert cases[rate] is None
    for average in ("avg_handling_working_days", "voice_answer_median_hours", "voice_answer_p90_hours"):
        assert cases[average] is None
    assert cases["fcr_no_number"] == 1 and cases["by_category"] == [] and cases["by_department"] == []
    lines = render.text(report).splitlines()
    assert any(line.startswith("按时办结率") and line.endswith(" -") for line in lines)
    figures = {r["key"]: r["value"] for r in csv.DictReader(io.StringIO(render.csv_tables(report)["casework.csv"]))}
    assert figures["on_time_rate"] == "" and figures["orders_created"] == "0"


def test_an_overdue_order_counts_against_on_time_when_it_is_decided(filled: Store, casework: Settings) -> None:
    (late,) = o.orders_for(filled, status="overdue", now=NOW)
    assert late.category == "how_to"  # D, sent back, due Saturday 10-10
    o.answer_order(filled, casework, late.id, actor="console:sup", answer="已转窗口办理。", reply_via="none", now=NOW)
    before = build(filled, PERIOD, NATIONAL_DAY, now=NOW).as_dict()["casework"]
    assert before["orders_overdue"] == 0 and before["orders_by_state"]["answered"] == 5
    assert (before["orders_decided"], before["orders_on_time"]) == (6, 5)  # decided after the period
    monday = build(filled, parse_period("2026-10-12", "2026-10-12", "Asia/Shanghai"), NATIONAL_DAY, now=NOW)
    cases = monday.as_dict()["casework"]
    assert (cases["orders_created"], cases["orders_decided"], cases["on_time_rate"]) == (0, 1, 0.0)
    # Thursday 10:00 .. Monday 10:00: 7.5 h + Friday + Saturday (adjusted) + 1.5 h = 3.0 days.
    assert cases["avg_handling_working_days"] == 3.0
