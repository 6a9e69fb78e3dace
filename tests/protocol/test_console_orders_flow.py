"""A work order's whole way in Chromium, on SQLite and PostgreSQL: an agent opens it from a
call's wrap-up ("needs follow-up"), the department (养老保险) sees only its own orders and
answers by SMS (the resident's message is queued as a business event), and an order past
its due date, once the casework has escalated it, heads the supervisor's list marked 督办."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cases import orders as cases_orders
from cases.tasks import run_once
from console import accounts
from core.db import Store
from core.models import AuditEntry, BusinessEvent, WorkOrder, utcnow
from core.settings import CasesSettings, Settings
from sms.templates import render
from tests.browser import chromium, sign_in
from tests.conftest import make_settings
from tests.protocol.test_console import AGENT_PW, SUP_PW, _call_on, _console

DEPT_PW = "department-password-1"
DEPARTMENTS = CasesSettings().departments
ANSWER = "符合条件的可在参保地窗口办理补缴，请携带身份证。"
LONG_AGO = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)  # a Monday: due that Wednesday, long overdue


def add_department_users(store: Store) -> None:
    """pension (养老保险) and medical (医疗保险), as `hotline users add --role department` makes them."""
    for name, dept in (("pension", "养老保险"), ("medical", "医疗保险")):
        accounts.add_user(store, name, DEPT_PW, "department", f"{dept}经办", department=dept, departments=DEPARTMENTS)


def row_ids(texts: list[str]) -> list[int]:
    return [int(t.split()[0]) for t in texts]


async def test_an_order_from_the_wrap_up_is_answered_by_its_department_and_an_overdue_one_escalated(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    settings: Settings = make_settings(tmp_path, store.url)
    async with _console(store, tmp_path) as (base, store, _):
        add_department_users(store)
        resident = sample_data[1][0]
        _call_on(store, "call-flow", "1001", resident.id, current=False)  # the agent's last call
        other = cases_orders.create_order(
            store, settings, kind="call", category="how_to", summary="医保转移接续", created_by="test",
            department="医疗保险", caller_number="13900001111",
        )  # fmt: skip
        async with chromium() as browser:
            # The agent: the wrap-up of the last call, "needs follow-up", to 养老保险.
            desk = await (await browser.new_context()).new_page()
            desk.set_default_timeout(10_000)
            await sign_in(desk, base, "a1001", AGENT_PW)
            await desk.locator("#wrapup-form").wait_for(state="visible")
            assert "138****5678" in await desk.locator("#wrapup-call").inner_text()
            assert await desk.locator("#order-fields").is_hidden()
            await desk.select_option("#wrapup-code", "follow_up")
            await desk.locator("#order-fields").wait_for(state="visible")
            await desk.select_option("#order-category", "policy_question")
            await desk.select_option("#order-department", "养老保险")
            await desk.fill("#order-summary", "来电人询问补缴养老保险的条件，请核实后答复")
            await desk.click("#wrapup-save")
            await desk.locator("#order-created").wait_for(state="visible")
            shown_id = await desk.locator("#order-id").inner_text()
            assert re.fullmatch(r"#\d+", shown_id)
            order_id = int(shown_id[1:])
            assert await desk.locator("#order-fields").is_hidden()  # once per call

            # The department: only its own orders; it opens this one and answers by SMS.
            dept = await (await browser.new_context()).new_page()
            dept.set_default_timeout(10_000)
            await sign_in(dept, base, "pension", DEPT_PW)
            assert "本部门待办工单 · 养老保险" in await dept.locator("#orders-card h2").inner_text()
            rows = await dept.locator("#orders tbody tr").all_inner_texts()
            assert row_ids(rows) == [order_id] and "政策咨询" in rows[0] and "补缴养老保险" in rows[0]
            assert "医保转移接续" not in await dept.locator("main").inner_text()
            await dept.click(f"#order-{order_id} a.open-order")
            await dept.wait_for_url(f"{base}/orders/{order_id}")
            assert await dept.locator("#order-caller").inner_text() == "138****5678"
            assert await dept.locator("#order-status").inner_text() == "待办"
            await dept.fill("#answer-text", ANSWER)
            await dept.select_option("#answer-reply", "sms")
            await dept.click("#answer-send")
            await dept.wait_for_url(f"{base}/orders")
            assert await dept.locator("#no-orders").inner_text() == "没有工单"  # nothing waits any more
            await dept.goto(f"{base}/orders/{order_id}")
            assert await dept.locator("#order-status").inner_text() == "已答复"
            assert "请携带身份证" in await dept.locator("#order-answer").inner_text()
            history = await dept.locator("#order-history").inner_text()
            assert "建立" in history and "答复" in history and "短信告知" in history

            # An order past due; the casework's round (with its clock) escalates it.
            late = cases_orders.create_order(
                store, settings, kind="call", category="policy_question", summary="养老金待遇核定超期未复",
                created_by="test", department="就业", caller_number="13900002222", now=LONG_AGO,
            )  # fmt: skip
            done = run_once(store, settings, now=utcnow())
            assert [o.id for o in done.escalated] == [late.id]
            board = await (await browser.new_context()).new_page()
            board.set_default_timeout(10_000)
            await sign_in(board, base, "sup", SUP_PW)
            await board.click("#nav-orders")
            await board.wait_for_url(f"{base}/orders")
            first = board.locator("#orders tbody tr").first
            assert await first.get_attribute("id") == f"order-{late.id}"
            assert await first.get_attribute("data-urgency") == "overdue"
            first_text = await first.inner_text()
            assert "督办" in first_text and "已超期" in first_text and "就业" in first_text
            listed = row_ids(await board.locator("#orders tbody tr").all_inner_texts())
            assert sorted(listed) == sorted([late.id, order_id, other.id])
            assert "督办" not in await board.locator(f"#order-{order_id}").inner_text()

    with store.session() as s:
        made = s.get_one(WorkOrder, order_id)
        assert (made.call_id, made.department, made.status) == ("call-flow", "养老保险", "answered")
        assert (made.resident_id, made.answered_by) == (resident.id, "console:pension")
        [event] = s.scalars(select(BusinessEvent).where(BusinessEvent.event_type == "order_answered")).all()
        assert (event.subject_kind, event.subject_id) == ("phone", "13812345678")  # the caller's number
        assert event.payload == {"order_no": str(order_id), "answer": ANSWER}
        assert event.idempotency_key == f"order:{order_id}:answer"
        sms = render(event.event_type, event.payload)  # what the gateway will send the resident
        assert f"工单号{order_id}" in sms and ANSWER in sms
        viewed = s.scalars(select(AuditEntry.actor).where(AuditEntry.action == "read:order")).all()
    assert "console:pension" in viewed  # opening the resident's order was audited
