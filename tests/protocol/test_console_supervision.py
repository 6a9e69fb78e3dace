"""The supervisor's work-order page over real HTTP and in Chromium, on SQLite and PostgreSQL:
filters by status and department, escalated (督办) orders first, reassigning to another
department and closing, CSRF refusals, and who is refused what (another department's
order looks like none at all, and opening it records no view of the resident)."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cases import orders as cases_orders
from cases.tasks import escalate_overdue
from core.db import Store
from core.models import AuditEntry, utcnow
from core.settings import Settings
from tests.browser import chromium, sign_in
from tests.conftest import make_settings
from tests.protocol.test_console import AGENT_PW, SUP_PW, _client, _console, _sign_in
from tests.protocol.test_console_orders_flow import DEPT_PW, LONG_AGO, add_department_users

DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Orders:
    answered_early: int  # 养老保险, answered: due first of all
    late: int  # 就业, overdue and escalated
    pension: int  # 养老保险, open, in time
    medical: int  # 医疗保险, open, in time
    resident: int


@dataclass(frozen=True)
class Desk:
    base: str
    store: Store
    orders: Orders


def _orders(store: Store, settings: Settings, resident: int) -> Orders:
    def new(department: str, summary: str, now: dt.datetime | None = None) -> int:
        made = cases_orders.create_order(
            store, settings, kind="call", category="policy_question", summary=summary, created_by="test",
            department=department, caller_number="13812345678", resident_id=resident, now=now,
        )  # fmt: skip
        return made.id

    early = new("养老保险", "缴费年限查询", LONG_AGO - DAY)
    cases_orders.answer_order(
        store, settings, early, actor="console:pension", answer="已电话告知。", reply_via="none", now=LONG_AGO
    )
    late = new("就业", "失业金申领进度", LONG_AGO)
    pension, medical = new("养老保险", "补缴养老保险咨询"), new("医疗保险", "医保转移接续")
    assert [o.id for o in escalate_overdue(store, settings, now=utcnow())] == [late]
    return Orders(early, late, pension, medical, resident)


@pytest.fixture
async def desk(store: Store, tmp_path: Path, sample_data: Any) -> AsyncIterator[Desk]:
    async with _console(store, tmp_path) as (base, store, _):
        add_department_users(store)
        yield Desk(base, store, _orders(store, make_settings(tmp_path, store.url), sample_data[1][0].id))


def listed(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="order-(\d+)"', page)]


async def test_filters_and_escalated_orders_first(desk: Desk) -> None:
    base, o = desk.base, desk.orders
    async with _client() as http:
        await _sign_in(http, base, "sup", SUP_PW)
        page = await (await http.get(f"{base}/orders")).text()
        # The escalated one heads the list of all orders, then the newest first.
        assert listed(page) == [o.late, o.medical, o.pension, o.answered_early]
        assert re.search(rf'<tr id="order-{o.late}"[^>]*>.*?督办', page, re.S)
        cases = {
            "status=overdue": [o.late],
            "status=answered": [o.answered_early],
            "status=open": [o.late, o.pension, o.medical],
            "department=养老保险": [o.pension, o.answered_early],
            "status=open&department=养老保险": [o.pension],
            "status=closed": [],
        }
        for query, expected in cases.items():
            r = await http.get(f"{base}/orders?{query}")
            assert r.status == 200, query
            shown = await r.text()
            assert listed(shown) == expected, query
            if not expected:
                assert "没有工单" in shown
        for query, said in (("status=lost", "unknown status"), ("department=财务", "unknown department '财务'")):
            r = await http.get(f"{base}/orders?{query}")
            assert r.status == 400 and said in html.unescape(await r.text()), query
        assert "known: 养老保险, 医疗保险" in await (await http.get(f"{base}/orders?department=财务")).text()


async def test_reassigning_and_closing_with_the_token_only(desk: Desk) -> None:
    base, store, o = desk.base, desk.store, desk.orders
    async with _client() as sup:
        csrf = await _sign_in(sup, base, "sup", SUP_PW)
        move = {"department": "养老保险"}
        # Without the token (or with a forged one) nothing changes.
        r = await sup.post(f"{base}/orders/{o.medical}/reassign", data=move, allow_redirects=False)
        assert r.status == 403 and "CSRF" in await r.text()
        r = await sup.post(f"{base}/orders/{o.medical}/reassign", data={**move, "csrf": "forged"})
        assert r.status == 403
        r = await sup.post(f"{base}/orders/{o.late}/close", data={"note": "重复工单"}, allow_redirects=False)
        assert r.status == 403
        assert _order(store, o.medical).department == "医疗保险"
        assert _order(store, o.late).status == "open"
        # With it: reassigned to 养老保险, back to the order's page, the history says so.
        r = await sup.post(f"{base}/orders/{o.medical}/reassign", data={**move, "csrf": csrf}, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (303, f"/orders/{o.medical}")
        page = await (await sup.get(f"{base}/orders/{o.medical}")).text()
        assert re.search(r'id="order-department">养老保险<', page)
        assert re.search(r"分派</td><td>医疗保险 · 养老保险", page)
        r = await sup.post(f"{base}/orders/{o.medical}/reassign", data={"department": "财务", "csrf": csrf})
        assert r.status == 400 and "unknown department '财务'" in html.unescape(await r.text())
        # Closing: an answered order needs no note; a waiting one does (withdrawn, a duplicate).
        r = await sup.post(f"{base}/orders/{o.answered_early}/close", data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        r = await sup.post(f"{base}/orders/{o.late}/close", data={"csrf": csrf, "note": ""})
        assert r.status == 400 and "needs a note" in await r.text()
        r = await sup.post(f"{base}/orders/{o.late}/close", data={"csrf": csrf, "note": "重复工单，已并入其他工单"})
        assert r.status == 200  # followed to the order's page
        shown = await r.text()
        assert re.search(r'id="order-status">已办结<', shown) and "重复工单，已并入其他工单" in shown
        assert 'id="close-form"' not in shown  # a closed order offers nothing more
        assert listed(await (await sup.get(f"{base}/orders?status=overdue")).text()) == []
        closed = listed(await (await sup.get(f"{base}/orders?status=closed")).text())
        assert sorted(closed) == sorted([o.answered_early, o.late])
    async with _client() as pension, _client() as medical:
        await _sign_in(pension, base, "pension", DEPT_PW)
        await _sign_in(medical, base, "medical", DEPT_PW)
        assert listed(await (await pension.get(f"{base}/orders")).text()) == [o.pension, o.medical]
        assert listed(await (await medical.get(f"{base}/orders")).text()) == []
        assert (await medical.get(f"{base}/orders/{o.medical}")).status == 404  # no longer theirs


async def test_another_departments_order_looks_like_none_and_is_not_recorded_as_seen(desk: Desk) -> None:
    base, store, o = desk.base, desk.store, desk.orders
    async with _client() as medical:
        csrf = await _sign_in(medical, base, "medical", DEPT_PW)
        r = await medical.get(f"{base}/orders/{o.pension}")
        assert r.status == 404
        page = await r.text()
        assert "未找到" in page and "没有这个工单，或它不归本部门办理" in page
        assert "补缴养老保险咨询" not in page and "138****5678" not in page
        missing = await medical.get(f"{base}/orders/999999")
        assert missing.status == 404 and "没有这个工单，或它不归本部门办理" in await missing.text()
        assert (await medical.get(f"{base}/orders/12abc")).status == 404
        # Answering or sending it back is refused the same way, and changes nothing.
        answer = {"answer": "不是我们的", "reply": "none", "csrf": csrf}
        assert (await medical.post(f"{base}/orders/{o.pension}/answer", data=answer)).status == 404
        back = {"reason": "不是我们的", "csrf": csrf}
        assert (await medical.post(f"{base}/orders/{o.pension}/return", data=back)).status == 404
        # A department does not reassign or close, not even its own orders.
        r = await medical.post(f"{base}/orders/{o.medical}/reassign", data={"department": "就业", "csrf": csrf})
        assert r.status == 403
        assert (await medical.post(f"{base}/orders/{o.medical}/close", data={"csrf": csrf, "note": "x"})).status == 403
        # Its own order opens, and that view is audited.
        assert (await medical.get(f"{base}/orders/{o.medical}")).status == 200
    assert _order(store, o.pension).status == "open"
    assert _order(store, o.medical).department == "医疗保险"
    with store.session() as s:
        seen = s.execute(
            select(AuditEntry.action, AuditEntry.detail).where(AuditEntry.actor == "console:medical")
        ).all()
    assert [tuple(r) for r in seen] == [("read:order", f"work order {o.medical}")]


async def test_a_supervisor_records_a_follow_up_by_phone(desk: Desk) -> None:
    base, store, o = desk.base, desk.store, desk.orders
    async with _client() as pension:
        csrf = await _sign_in(pension, base, "pension", DEPT_PW)
        r = await pension.post(f"{base}/orders/{o.answered_early}/followup", data={"satisfaction": "1", "csrf": csrf})
        assert r.status == 403  # the hotline follows up, not the department that answered
    async with _client() as sup:
        csrf = await _sign_in(sup, base, "sup", SUP_PW)
        waiting = await (await sup.get(f"{base}/orders/{o.pension}")).text()
        assert 'id="followup-form"' not in waiting  # not answered yet
        page = await (await sup.get(f"{base}/orders/{o.answered_early}")).text()
        assert 'id="followup-form"' in page and "电话回访：居民满意度" in page
        r = await sup.post(f"{base}/orders/{o.answered_early}/followup", data={"satisfaction": "2"})
        assert r.status == 403  # no token
        r = await sup.post(f"{base}/orders/{o.answered_early}/followup", data={"satisfaction": "9", "csrf": csrf})
        assert r.status == 400 and "1 satisfied" in await r.text()
        r = await sup.post(f"{base}/orders/{o.answered_early}/followup", data={"satisfaction": "2", "csrf": csrf})
        shown = await r.text()
        assert r.status == 200 and re.search(r'id="order-followup">已回访 · 基本满意<', shown)
        assert re.search(r"回访答复</td><td>[^<]*</td>", shown) and "基本满意 · 电话回访" in shown
        assert 'id="followup-form"' not in shown  # once
        r = await sup.post(f"{base}/orders/{o.answered_early}/followup", data={"satisfaction": "1", "csrf": csrf})
        assert r.status == 400 and "followed up already" in await r.text()
    assert (_order(store, o.answered_early).satisfaction, _order(store, o.pension).satisfaction) == (2, None)


async def test_agents_and_departments_are_refused_the_supervisors_page(desk: Desk) -> None:
    base, o = desk.base, desk.orders
    async with _client() as agent:
        csrf = await _sign_in(agent, base, "a1001", AGENT_PW)
        for path in ("/orders", f"/orders/{o.pension}", "/orders?status=overdue"):
            r = await agent.get(f"{base}{path}")
            assert r.status == 403, path
            page = await r.text()
            assert "无权访问" in page and "补缴养老保险咨询" not in page
        assert 'id="nav-orders"' not in await (await agent.get(f"{base}/agent")).text()
        r = await agent.post(f"{base}/orders/{o.pension}/close", data={"csrf": csrf, "note": "x"})
        assert r.status == 403
    async with _client() as pension:
        await _sign_in(pension, base, "pension", DEPT_PW)
        # The filters are the supervisor's: a department sees what waits for it, whatever it asks.
        page = await (await pension.get(f"{base}/orders?status=answered&department=就业")).text()
        assert listed(page) == [o.pension] and 'id="order-filter"' not in page


async def test_a_supervisor_filters_in_chromium(desk: Desk) -> None:
    base, o = desk.base, desk.orders
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await sign_in(page, base, "sup", SUP_PW)
        await page.click("#nav-orders")
        await page.wait_for_url(f"{base}/orders")
        await page.select_option("#filter-status", "open")
        await page.select_option("#filter-department", "养老保险")
        await page.click("#filter-show")
        await page.wait_for_url(re.compile(r".*/orders\?status=open&department=.*"))
        rows = page.locator("#orders tbody tr")
        assert [await r.get_attribute("id") for r in await rows.all()] == [f"order-{o.pension}"]
        assert await page.locator("#filter-status").input_value() == "open"
        await page.select_option("#filter-status", "overdue")
        await page.select_option("#filter-department", "")
        await page.click("#filter-show")
        await page.wait_for_url(re.compile(r".*/orders\?status=overdue.*"))
        assert "督办" in await page.locator(f"#order-{o.late}").inner_text()
        await page.click(f"#order-{o.late} a.open-order")
        await page.wait_for_url(f"{base}/orders/{o.late}")
        await page.select_option("#reassign-department", "劳动监察")
        await page.click("#reassign-send")
        await page.wait_for_url(f"{base}/orders/{o.late}")
        assert await page.locator("#order-department").inner_text() == "劳动监察"
        # Reassigned, still overdue and escalated: the deadline stays.
        assert "督办" in await page.locator("#order-card h2").inner_text()


def _order(store: Store, order_id: int) -> cases_orders.Order:
    return cases_orders.get_order(store, order_id, actor="test").order


async def test_supervisors_see_the_overdue_count_in_the_nav_and_live_on_the_wallboard(
    desk: Desk, tmp_path: Path
) -> None:
    base, store, o = desk.base, desk.store, desk.orders
    settings = make_settings(tmp_path, store.url)
    async with _client() as sup, _client() as pension:
        await _sign_in(sup, base, "sup", SUP_PW)
        for path in ("/orders", "/reports", f"/orders/{o.pension}"):
            page = await (await sup.get(f"{base}{path}")).text()
            assert re.search(r'id="nav-overdue" class="badge" title="超期督办工单">1</b>', page), path
        await _sign_in(pension, base, "pension", DEPT_PW)
        assert 'id="nav-overdue"' not in await (await pension.get(f"{base}/orders")).text()
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await sign_in(page, base, "sup", SUP_PW)
        await page.wait_for_url(f"{base}/wallboard")
        await page.locator("#wb-overdue").filter(has_text="1").wait_for()
        assert await page.locator("#nav-overdue").inner_text() == "1"
        await page.evaluate("window.notReloaded = true")
        # Another order runs past its deadline, then the department answers the first: the
        # board follows without a reload, and the nav badge with it.
        card = cases_orders.create_order(
            store, settings, kind="call", category="how_to", summary="社保卡补办", created_by="test",
            department="社保卡", now=LONG_AGO,
        )  # fmt: skip
        await page.locator("#wb-overdue").filter(has_text="2").wait_for()
        assert await page.locator("#nav-overdue").inner_text() == "2"
        for order_id in (o.late, card.id):
            cases_orders.close_order(store, order_id, actor="console:sup", note="重复工单")
        await page.locator("#wb-overdue").filter(has_text="0").wait_for()
        assert await page.locator("#nav-overdue").is_hidden()
        assert await page.evaluate("window.notReloaded") is True
        await page.click("#wb-overdue")
        await page.wait_for_url(f"{base}/orders?status=overdue")
        assert await page.locator("#no-orders").inner_text() == "没有工单"
