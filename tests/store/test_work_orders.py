"""Work orders in the store (SQLite and PostgreSQL): the state machine, departments,
deadlines and escalation, voice messages claimed once, answers sent once."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import pytest
from sqlalchemy import event, func, select
from sqlalchemy import text as sql

from cases import orders as o
from cases.errors import BadOrderInput, NoReplyNumber, OrderNotFound, OrderStateError, UnknownDepartment
from cases.followup import collect_followup_replies, record_call_followup, send_due_followups
from cases.tasks import casework_loop, escalate_overdue, voice_messages_to_orders
from core.business import AuditedReader
from core.db import Store
from core.models import AuditEntry, BusinessEvent, Call, Callback, SmsSurvey, VoiceMessage, WorkOrder, WorkOrderEvent
from core.sample_port import SampleBusinessPort
from core.settings import Settings
from sms.intake import intake
from sms.mo import HELP, RATED, SIGNATURE, MoHandler, keyword_of
from sms.templates import render
from tests.conftest import PEPPER, postgres_only
from tests.waiting import until

BEIJING = dt.timezone(dt.timedelta(hours=8))
MONDAY = dt.datetime(2026, 11, 30, 10, 0, tzinfo=BEIJING)  # created: due Wednesday 17:30
NUMBER = "13812345678"


def _count(store: Store) -> int:
    with store.transaction() as c:
        return int(c.execute(select(func.count()).select_from(o.ORDERS)).scalar_one())


def _new(store: Store, settings: Settings, **kw: object) -> o.Order:
    args: dict[str, object] = {
        "kind": "call",
        "category": "policy_question",
        "summary": "咨询灵活就业人员养老保险补缴政策",
        "created_by": "console:agent1001",
        "department": "养老保险",
        "caller_number": NUMBER,
        "call_id": f"call-{_count(store) + 1}",  # one order per call (uq_work_orders_call)
        "now": MONDAY,
    }
    return o.create_order(store, settings, **(args | kw))  # type: ignore[arg-type]


def _actions(store: Store, order_id: int) -> list[str]:
    with store.session() as s:
        query = select(WorkOrderEvent.action).where(WorkOrderEvent.order_id == order_id).order_by(WorkOrderEvent.id)
        return list(s.scalars(query))


def test_an_order_is_due_on_the_calendar_and_walks_the_state_machine(store: Store, settings: Settings) -> None:
    order = _new(store, settings)
    assert order.status == "open"
    assert order.due_at == dt.datetime(2026, 12, 2, 17, 30, tzinfo=BEIJING)
    complaint = _new(store, settings, category="complaint")
    assert complaint.due_at == dt.datetime(2026, 12, 7, 17, 30, tzinfo=BEIJING)  # five working days
    returned = o.return_order(store, order.id, actor="console:yl", reason="属医保业务", now=MONDAY)
    assert returned.status == "returned"
    with pytest.raises(OrderStateError) as err:
        o.return_order(store, order.id, actor="console:yl", reason="again")
    assert err.value.state == "returned" and "returned: it cannot be returned" in str(err.value)
    moved = o.reassign_order(store, settings, order.id, actor="console:supervisor", department="医疗保险")
    assert (moved.status, moved.department, moved.due_at) == ("open", "医疗保险", order.due_at)
    answered = o.answer_order(
        store, settings, order.id, actor="console:yb", answer="可在线办理。", reply_via="none", now=MONDAY
    )
    assert (answered.status, answered.answered_by, answered.answer) == ("answered", "console:yb", "可在线办理。")
    for step in (
        lambda: o.answer_order(store, settings, order.id, actor="x", answer="again", reply_via="none"),
        lambda: o.return_order(store, order.id, actor="x", reason="late"),
        lambda: o.reassign_order(store, settings, order.id, actor="x", department="就业"),
    ):
        with pytest.raises(OrderStateError) as err:
            step()
        assert err.value.state == "answered"
    closed = o.close_order(store, order.id, actor="console:supervisor")
    assert closed.status == "closed" and closed.closed_at is not None
    with pytest.raises(OrderStateError) as err:
        o.close_order(store, order.id, actor="console:supervisor", note="twice")
    assert err.value.state == "closed"
    assert _actions(store, order.id) == ["created", "returned", "assigned", "answered", "closed"]


def test_bad_input_is_refused_by_name(store: Store, settings: Settings) -> None:
    with pytest.raises(UnknownDepartment, match="财务"):
        _new(store, settings, department="财务")
    with pytest.raises(BadOrderInput, match="summary is empty"):
        _new(store, settings, summary="  ")
    with pytest.raises(BadOrderInput, match="unknown kind"):
        _new(store, settings, kind="email")
    order = _new(store, settings)
    with pytest.raises(BadOrderInput, match="at most 300"):
        o.answer_order(store, settings, order.id, actor="x", answer="长" * 301, reply_via="none")
    with pytest.raises(BadOrderInput, match="reply_via"):
        o.answer_order(store, settings, order.id, actor="x", answer="好", reply_via="fax")
    with pytest.raises(BadOrderInput, match="full ID number"):
        o.answer_order(
            store, settings, order.id, actor="x", answer="您的身份证330523199001011234已登记", reply_via="sms"
        )
    with pytest.raises(BadOrderInput, match="control characters"):
        o.answer_order(store, settings, order.id, actor="x", answer="好\x00", reply_via="sms")
    with pytest.raises(BadOrderInput, match="needs a note"):
        o.close_order(store, order.id, actor="x")
    with pytest.raises(BadOrderInput, match="full ID number"):
        o.close_order(store, order.id, actor="x", note="重复 11010519491231002X")
    with pytest.raises(BadOrderInput, match="control characters"):
        o.close_order(store, order.id, actor="x", note="重复\x1b[31m")
    with pytest.raises(OrderNotFound):
        o.get_order(store, 10**9, actor="cli:root")
    with pytest.raises(BadOrderInput, match="unknown status"):
        o.orders_for(store, status="lost")
    assert o.close_order(store, order.id, actor="x", note="重复工单").status == "closed"


def test_a_department_sees_and_answers_only_its_own_orders(store: Store, settings: Settings) -> None:
    pension = _new(store, settings)
    jobs = _new(store, settings, department="就业")
    assert [x.id for x in o.orders_for(store, department="就业")] == [jobs.id]
    assert {x.id for x in o.orders_for(store, status="open")} == {pension.id, jobs.id}
    with pytest.raises(OrderNotFound):
        o.get_order(store, pension.id, actor="console:jy", department="就业")
    for step in (
        lambda: o.answer_order(
            store, settings, pension.id, actor="console:jy", answer="好", reply_via="none", department="就业"
        ),
        lambda: o.return_order(store, pension.id, actor="console:jy", reason="不是我们的", department="就业"),
    ):
        with pytest.raises(OrderNotFound):  # not "it is open": another's order looks like none
            step()
    assert o.get_order(store, pension.id, actor="cli:root").order.status == "open"


def test_reading_an_order_is_audited_with_its_history_named_resident_or_not(store: Store, settings: Settings) -> None:
    order = _new(store, settings, resident_id=7, id_number_masked="330523********123X")
    anonymous = _new(store, settings)
    detail = o.get_order(store, order.id, actor="console:agent1001")
    assert [e.action for e in detail.events] == ["created"] and detail.events[0].actor == "console:agent1001"
    assert detail.as_json()["history"][0]["detail"]["due_at"] == order.due_at.isoformat()
    o.get_order(store, anonymous.id, actor="console:agent1001")
    with store.session() as s:
        audits = [(a.actor, a.action, a.resident_id, a.call_id) for a in s.scalars(select(AuditEntry))]
    # An order of a caller who named nobody still holds their number and what they said.
    assert audits == [
        ("console:agent1001", "read:order", 7, order.call_id),
        ("console:agent1001", "read:order", None, anonymous.call_id),
    ]


def test_overdue_orders_are_escalated_once(store: Store, settings: Settings) -> None:
    late = _new(store, settings)
    fresh = _new(store, settings, now=MONDAY + dt.timedelta(days=2))
    answered = _new(store, settings)
    o.answer_order(store, settings, answered.id, actor="x", answer="已答复。", reply_via="none", now=MONDAY)
    thursday = dt.datetime(2026, 12, 3, 9, 0, tzinfo=BEIJING)
    assert [x.id for x in o.orders_for(store, status="overdue", now=thursday)] == [late.id]
    assert not late.overdue(MONDAY) and o.get_order(store, late.id, actor="t").order.overdue(thursday)
    assert fresh.near_deadline(dt.datetime(2026, 12, 4, 10, 0, tzinfo=BEIJING), 8)
    escalated = escalate_overdue(store, settings, now=thursday)
    assert [x.id for x in escalated] == [late.id] and escalated[0].escalated_at == thursday
    assert escalate_overdue(store, settings, now=thursday + dt.timedelta(hours=1)) == []
    assert _actions(store, late.id) == ["created", "escalated"]
    assert _actions(store, fresh.id) == ["created"]


def test_the_overdue_count_is_one_count_past_the_lists_limit(store: Store, settings: Settings) -> None:
    thursday = dt.datetime(2026, 12, 3, 9, 0, tzinfo=BEIJING)
    created = MONDAY.astimezone(dt.UTC)
    late = o.order_values(settings, "call", "policy_question", "到账时间", "test", "养老保险", created)
    rows = [late] * 510 + [late | {"department": "就业"}] * 3
    rows += [late | {"status": "answered"}] * 4 + [late | {"due_at": thursday + dt.timedelta(days=1)}] * 2
    with store.transaction() as c:
        c.execute(o.ORDERS.insert(), rows)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        assert o.overdue_count(store, now=thursday) == 513  # the list stops at 500
        assert o.overdue_count(store, department="就业", now=thursday) == 3
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert len(statements) == 2 and all("count(*)" in x.lower() for x in statements)
    assert len(o.orders_for(store, status="overdue", now=thursday)) == 500
    assert o.overdue_count(store, now=MONDAY) == 0


def test_voice_messages_become_orders_once_whoever_claims_them(store: Store, settings: Settings) -> None:
    friday = dt.datetime(2026, 4, 3, 15, 0, tzinfo=BEIJING)  # before the Qingming holiday
    with store.session() as s:
        for n in range(6):
            s.add(
                VoiceMessage(
                    call_id=f"vm-{n}",
                    caller_number=NUMBER,
                    resident_id=n if n % 2 else None,
                    id_number_masked="330523********123X" if n % 2 else None,
                    recording=f"messages/2026-04-03/{n:032x}.wav",
                    duration_s=20 + n,
                    created_at=friday,
                )
            )
    holiday = settings.model_copy(
        update={"queue": settings.queue.model_copy(update={"holidays": (dt.date(2026, 4, 6),)})}
    )
    stores = [Store(store.url), Store(store.url)]
    made: list[list[o.Order]] = [[], []]
    start = threading.Barrier(2)

    def claim(i: int) -> None:
        start.wait(timeout=10)
        made[i] = voice_messages_to_orders(stores[i], holiday)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.dispose()
    assert sorted(x.voice_message_id or 0 for x in made[0] + made[1]) == [1, 2, 3, 4, 5, 6]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WorkOrder)) == 6
        linked = {m.id: m.order_id for m in s.scalars(select(VoiceMessage))}
    order = o.get_order(store, linked[2], actor="cli:root")
    assert order.order.voice_message_id == 2 and order.order.kind == "voice_message"
    assert order.recording == "messages/2026-04-03/" + f"{1:032x}.wav" and order.recording_s == 21
    assert order.order.due_at == dt.datetime(2026, 4, 8, 17, 30, tzinfo=BEIJING)  # Tue, Wed (Monday a holiday)
    assert order.order.department is None and order.order.category == "policy_question"
    assert voice_messages_to_orders(store, settings) == []


def test_an_sms_answer_is_one_business_event_the_gateway_can_send(store: Store, settings: Settings) -> None:
    order = _new(store, settings, caller_number="+86 138 1234 5678")
    answer = "灵活就业人员可在户籍地社保经办机构补缴，详见浙江政务服务网。"
    o.answer_order(store, settings, order.id, actor="console:yl", answer=answer, reply_via="sms", now=MONDAY)
    with pytest.raises(OrderStateError):  # a retried answer
        o.answer_order(store, settings, order.id, actor="console:yl", answer=answer, reply_via="sms")
    with store.session() as s:
        events = s.scalars(select(BusinessEvent)).all()
    assert len(events) == 1
    event = events[0]
    assert (event.event_type, event.subject_kind, event.subject_id) == ("order_answered", "phone", NUMBER)
    assert event.idempotency_key == f"order:{order.id}:answer"
    text = render(event.event_type, event.payload)
    assert f"工单号{order.id}" in text and answer in text
    report = intake(store, SampleBusinessPort(store, PEPPER), settings.sms, settings.queue.timezone)
    assert (report.queued, report.messages, report.failed) == (1, 1, 0)


def test_a_callback_answer_books_a_callback_for_the_caller(store: Store, settings: Settings) -> None:
    order = _new(store, settings)
    o.answer_order(store, settings, order.id, actor="console:yl", answer="请等待电话。", reply_via="callback")
    with store.session() as s:
        cb = s.scalars(select(Callback)).one()
    assert (cb.number, cb.queue, cb.reason, cb.status) == (NUMBER, "hotline-12333", "work_order", "open")
    withheld = _new(store, settings, caller_number=None)
    for via in ("sms", "callback"):
        with pytest.raises(NoReplyNumber):
            o.answer_order(store, settings, withheld.id, actor="console:yl", answer="好", reply_via=via)
    assert o.get_order(store, withheld.id, actor="t").order.status == "open"  # nothing half-done


def test_a_follow_up_asks_by_sms_once_and_stores_the_residents_digit(store: Store, settings: Settings) -> None:

    order = _new(store, settings)
    other = _new(store, settings, caller_number=None)
    for x in (order, other):
        o.answer_order(store, settings, x.id, actor="console:yl", answer="已办理。", reply_via="none", now=MONDAY)
    assert send_due_followups(store, settings, now=MONDAY + dt.timedelta(hours=23)) == []  # not yet due
    night = dt.datetime(2026, 12, 1, 22, 0, tzinfo=BEIJING)
    assert send_due_followups(store, settings, now=night) == []  # nobody is texted at night
    tuesday = dt.datetime(2026, 12, 1, 11, 0, tzinfo=BEIJING)
    assert [x.id for x in send_due_followups(store, settings, now=tuesday)] == [order.id]
    assert send_due_followups(store, settings, now=tuesday + dt.timedelta(hours=1)) == []
    with store.session() as s:
        events = s.scalars(select(BusinessEvent).where(BusinessEvent.event_type == "order_followup")).all()
        survey = s.scalars(select(SmsSurvey)).one()
    assert [(e.subject_id, e.idempotency_key) for e in events] == [(NUMBER, f"order:{order.id}:followup")]
    assert "满意请回复1，基本满意回复2，不满意回复3" in render("order_followup", events[0].payload)
    assert (survey.key, survey.phone, survey.answer) == (f"order:{order.id}:followup", NUMBER, None)
    assert o.get_order(store, other.id, actor="t").order.followup_state == "no_number"

    ratings = [keyword_of(t) for t in ("1", " 3 ", "4", "12")]
    assert ratings == [("RATE", "1"), ("RATE", "3"), ("OTHER", None), ("OTHER", None)]
    mo = MoHandler(store, AuditedReader(store, SampleBusinessPort(store, PEPPER)), settings=settings.sms)
    replied = tuesday + dt.timedelta(hours=2)
    assert mo.answer("13900001111", "2", now=replied) == HELP + SIGNATURE  # no survey open for that number
    assert mo.answer("+8613812345678", " 2 ", now=replied) == RATED + SIGNATURE
    assert mo.answer(NUMBER, "3", now=replied) == HELP + SIGNATURE  # answered already: the first digit counts
    assert [x.id for x in collect_followup_replies(store, now=replied)] == [order.id]
    assert collect_followup_replies(store, now=replied) == []
    done = o.get_order(store, order.id, actor="t")
    assert (done.order.satisfaction, done.order.followup_state) == (2, "answered")
    assert [e.action for e in done.events][-2:] == ["followup_sent", "followup_reply"]


def test_a_follow_up_nobody_answers_ends_without_a_reply(store: Store, settings: Settings) -> None:

    order = _new(store, settings)
    o.answer_order(store, settings, order.id, actor="x", answer="已办理。", reply_via="none", now=MONDAY)
    tuesday = dt.datetime(2026, 12, 1, 11, 0, tzinfo=BEIJING)
    send_due_followups(store, settings, now=tuesday)
    assert collect_followup_replies(store, now=tuesday + dt.timedelta(hours=71)) == []
    assert [x.id for x in collect_followup_replies(store, now=tuesday + dt.timedelta(hours=73))] == [order.id]
    assert o.get_order(store, order.id, actor="t").order.followup_state == "no_reply"


def test_a_follow_up_by_call_settles_the_open_sms_survey(store: Store, settings: Settings) -> None:
    order = _new(store, settings, department="养老保险")
    with pytest.raises(OrderStateError, match="before it is answered"):
        record_call_followup(store, order.id, 1, actor="console:zg")
    o.answer_order(store, settings, order.id, actor="console:yl", answer="已办理。", reply_via="none", now=MONDAY)
    tuesday = dt.datetime(2026, 12, 1, 11, 0, tzinfo=BEIJING)
    assert [x.id for x in send_due_followups(store, settings, now=tuesday)] == [order.id]
    for bad in (0, 4):
        with pytest.raises(BadOrderInput, match="1 satisfied"):
            record_call_followup(store, order.id, bad, actor="console:zg")
    with pytest.raises(OrderNotFound):
        record_call_followup(store, order.id, 1, actor="console:yb", department="医疗保险")
    done = record_call_followup(store, order.id, 1, actor="console:zg", now=tuesday + dt.timedelta(hours=2))
    assert (done.followup_state, done.satisfaction) == ("answered", 1)
    with pytest.raises(OrderStateError, match="followed up already"):
        record_call_followup(store, order.id, 3, actor="console:zg")
    mo = MoHandler(store, AuditedReader(store, SampleBusinessPort(store, PEPPER)), settings=settings.sms)
    closed = tuesday + dt.timedelta(hours=2, minutes=30)
    assert mo.answer(NUMBER, "3", now=closed) == HELP + SIGNATURE  # the call closed the SMS survey: nothing to rate
    assert collect_followup_replies(store, now=closed) == []
    # The number's next order is followed up at once, not after the closed survey's 72 hours.
    following = _new(store, settings)
    o.answer_order(store, settings, following.id, actor="console:yl", answer="已办理。", reply_via="none", now=MONDAY)
    later = tuesday + dt.timedelta(hours=3)
    assert [x.id for x in send_due_followups(store, settings, now=later)] == [following.id]
    detail = o.get_order(store, order.id, actor="t")
    assert detail.order.satisfaction == 1
    assert (detail.events[-1].action, detail.events[-1].actor) == ("followup_reply", "console:zg")
    assert detail.events[-1].detail == {"satisfaction": 1, "via": "call"}


def _surveys(store: Store) -> list[tuple[str, int | None]]:
    with store.session() as s:
        return [(x.key, x.answer) for x in s.scalars(select(SmsSurvey).order_by(SmsSurvey.asked_at))]


def test_two_orders_of_one_number_are_followed_up_one_after_the_other(store: Store, settings: Settings) -> None:
    # A reply is only a digit: with two surveys open it could not say which order it rates.
    first, second = _new(store, settings), _new(store, settings, call_id="call-2")
    for i, x in enumerate((first, second)):
        when = MONDAY + dt.timedelta(minutes=i)
        o.answer_order(store, settings, x.id, actor="console:yl", answer="已办理。", reply_via="none", now=when)
    tuesday = dt.datetime(2026, 12, 1, 11, 0, tzinfo=BEIJING)
    assert [x.id for x in send_due_followups(store, settings, now=tuesday)] == [first.id]
    assert send_due_followups(store, settings, now=tuesday + dt.timedelta(minutes=5)) == []  # still open
    assert _surveys(store) == [(f"order:{first.id}:followup", None)]
    assert o.get_order(store, second.id, actor="t").order.followup_state is None  # waiting, not lost
    mo = MoHandler(store, AuditedReader(store, SampleBusinessPort(store, PEPPER)), settings=settings.sms)
    assert mo.answer(NUMBER, "1", now=tuesday + dt.timedelta(minutes=8)) == RATED + SIGNATURE
    assert [x.id for x in collect_followup_replies(store, now=tuesday + dt.timedelta(minutes=10))] == [first.id]
    # Answered: the next round asks about the other order, and the next digit rates that one.
    later = tuesday + dt.timedelta(minutes=15)
    assert [x.id for x in send_due_followups(store, settings, now=later)] == [second.id]
    assert mo.answer(NUMBER, "3", now=later) == RATED + SIGNATURE
    assert [x.id for x in collect_followup_replies(store, now=later)] == [second.id]
    rated = [o.get_order(store, x.id, actor="t").order for x in (first, second)]
    assert [(x.followup_state, x.satisfaction) for x in rated] == [("answered", 1), ("answered", 3)]
    with store.session() as s:
        events = s.scalars(select(BusinessEvent.idempotency_key).order_by(BusinessEvent.id)).all()
    assert events == [f"order:{first.id}:followup", f"order:{second.id}:followup"]


def test_the_waiting_order_is_asked_once_the_first_survey_expires(store: Store, settings: Settings) -> None:
    first, second = _new(store, settings), _new(store, settings, call_id="call-2")
    for x in (first, second):
        o.answer_order(store, settings, x.id, actor="console:yl", answer="已办理。", reply_via="none", now=MONDAY)
    tuesday = dt.datetime(2026, 12, 1, 11, 0, tzinfo=BEIJING)
    [asked] = send_due_followups(store, settings, now=tuesday)
    waiting = second if asked.id == first.id else first
    expired = tuesday + dt.timedelta(hours=settings.cases.followup_reply_hours, minutes=1)  # Friday 11:01
    assert send_due_followups(store, settings, now=expired - dt.timedelta(minutes=2)) == []
    assert [x.id for x in send_due_followups(store, settings, now=expired)] == [waiting.id]
    mo = MoHandler(store, AuditedReader(store, SampleBusinessPort(store, PEPPER)), settings=settings.sms)
    assert mo.answer(NUMBER, "2", now=expired + dt.timedelta(minutes=1)) == RATED + SIGNATURE  # the waiting order's
    done = {x.id: x for x in collect_followup_replies(store, now=expired + dt.timedelta(minutes=2))}
    assert (done[asked.id].followup_state, done[asked.id].satisfaction) == ("no_reply", None)
    assert (done[waiting.id].followup_state, done[waiting.id].satisfaction) == ("answered", 2)


async def test_the_serve_task_makes_orders_of_voice_messages_each_round(store: Store, settings: Settings) -> None:
    with store.session() as s:
        s.add(VoiceMessage(call_id="vm-1", caller_number=NUMBER, recording="messages/x.wav", duration_s=9))
    stop = asyncio.Event()
    task = asyncio.create_task(casework_loop(store, settings, stop))
    try:
        await until(lambda: o.orders_for(store), "a work order opened by the casework loop", 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert [x.kind for x in o.orders_for(store)] == ["voice_message"]


def test_two_processes_escalating_at_once_escalate_each_order_once(store: Store, settings: Settings) -> None:
    late = [_new(store, settings).id for _ in range(5)]
    thursday = dt.datetime(2026, 12, 3, 9, 0, tzinfo=BEIJING)
    stores = [Store(store.url), Store(store.url)]
    got: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def escalate(i: int) -> None:
        start.wait(timeout=10)
        got[i] = [x.id for x in escalate_overdue(stores[i], settings, now=thursday)]

    threads = [threading.Thread(target=escalate, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.dispose()
    assert sorted(got[0] + got[1]) == late
    assert all(_actions(store, i) == ["created", "escalated"] for i in late)


def test_an_order_from_a_call_takes_the_callers_number_and_resident(store: Store, settings: Settings) -> None:
    with store.session() as s:
        s.add(Call(id="call-9", caller_number=NUMBER, resident_id=12, disposition="agent"))
    order = o.order_from_call(
        store, settings, call_id="call-9", category="complaint", summary="窗口态度差", created_by="console:agent1001"
    )
    assert (order.caller_number, order.resident_id, order.call_id, order.kind) == (NUMBER, 12, "call-9", "call")
    with pytest.raises(BadOrderInput, match="no call"):
        o.order_from_call(store, settings, call_id="forged", category="how_to", summary="x", created_by="t")
    # One order of kind 'call' per call: asked again, the same one; a callback's may be more.
    again = o.order_from_call(store, settings, call_id="call-9", category="how_to", summary="再问", created_by="t")
    assert (again.id, again.summary) == (order.id, "窗口态度差")
    with pytest.raises(BadOrderInput, match=f"has work order {order.id} already"):
        _new(store, settings, call_id="call-9")
    callbacks = [
        o.order_from_call(
            store, settings, call_id="call-9", category="how_to", summary="回拨", created_by="t", kind="callback"
        )
        for _ in range(2)
    ]
    assert len({x.id for x in callbacks} | {order.id}) == 3


@postgres_only  # SQLite has one writer at a time
def test_two_saves_at_once_meet_at_the_index_and_share_one_order(store: Store, settings: Settings) -> None:
    with store.session() as s:
        s.add(Call(id="call-r", caller_number=NUMBER, disposition="agent"))
    asked = {"call_id": "call-r", "category": "how_to", "summary": "同时保存", "created_by": "t"}
    got: list[object] = []

    def second() -> None:
        try:
            got.append(o.order_from_call(store, settings, **asked))  # type: ignore[arg-type]
        except Exception as exc:  # handed to the test's thread, which asserts on it
            got.append(exc)

    with store.transaction() as c:
        first, new = o.call_order(c, settings, **asked)  # type: ignore[arg-type]
        other = threading.Thread(target=second)
        other.start()
        waiting = 0
        for _ in range(400):  # until the other insert waits on this uncommitted order
            with store.engine.connect() as watch:
                waiting = watch.execute(
                    sql(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                ).scalar_one()
            if waiting or not other.is_alive():
                break
            time.sleep(0.05)
        assert new and waiting == 1
    other.join(timeout=30)
    assert [getattr(x, "id", x) for x in got] == [first.id]
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WorkOrder)) == 1
