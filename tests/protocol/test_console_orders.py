"""Work orders in the console over real HTTP: the department role sees its own orders
only (404 for another's), answers one by SMS (a business event is queued), and is refused
every other page; the agent opens an order from the wrap-up of their own call only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from cases import orders as cases_orders
from console import accounts
from core.models import BusinessEvent, WorkOrder
from core.settings import CASE_CATEGORIES
from tests.protocol.test_console import AGENT_PW, _call_on, _client, _console, _sign_in

DEPT_PW = "department-password-1"
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _departments(store: Any) -> None:
    for name, dept in (("pension", "养老保险"), ("medical", "医疗保险")):
        accounts.add_user(
            store, name, DEPT_PW, "department", name, department=dept, departments=("养老保险", "医疗保险")
        )


async def test_department_users_see_only_their_orders(store: Any, tmp_path: Any, sample_data: Any) -> None:
    async with _console(store, tmp_path) as (base, store, _):
        _departments(store)
        resident = sample_data[1][0]
        _call_on(store, "call-o1", "1001", resident.id, current=True)
        _call_on(store, "call-o2", "1002", resident.id, current=True)
        async with _client() as agent:
            h = {"X-CSRF-Token": await _sign_in(agent, base, "a1001", AGENT_PW)}
            wrap = {"call_id": "call-o1", "code": "follow_up", "note": ""}
            order = {"category": CASE_CATEGORIES[0], "department": "养老保险", "summary": "补缴养老保险咨询"}
            forged = await agent.post(
                f"{base}/api/wrapup", json={**wrap, "call_id": "call-o2", "order": order}, headers=h
            )
            assert forged.status == 403  # someone else's call
            r = await agent.post(f"{base}/api/wrapup", json={**wrap, "order": order}, headers=h)
            assert r.status == 200, await r.text()
            order_id = (await r.json())["order_id"]
            assert (await agent.get(f"{base}/orders")).status == 403
        with store.session() as s:
            made = s.get_one(WorkOrder, order_id)
            assert (made.caller_number, made.resident_id) == ("13812345678", resident.id)
        async with _client() as other:
            await _sign_in(other, base, "medical", DEPT_PW)
            assert (await other.get(f"{base}/orders/{order_id}")).status == 404
            assert (await other.get(f"{base}/orders/999999")).status == 404
        async with _client() as dept:
            csrf = await _sign_in(dept, base, "pension", DEPT_PW)
            for path in ("/agent", "/wallboard", "/reports", "/api/calls/call-o1/screenpop", "/api/softphone"):
                assert (await dept.get(f"{base}{path}", allow_redirects=False)).status == 403, path
            page = await (await dept.get(f"{base}/orders")).text()
            assert f'id="order-{order_id}"' in page
            form = {"answer": "您可在窗口办理补缴。", "reply": "sms"}
            r = await dept.post(f"{base}/orders/{order_id}/answer", data=form, allow_redirects=False)
            assert r.status == 403  # no CSRF token
            r = await dept.post(f"{base}/orders/{order_id}/answer", data={**form, "csrf": csrf}, allow_redirects=False)
            assert r.status == 303, await r.text()
            shown = await (await dept.get(f"{base}/orders/{order_id}")).text()
            assert re.search("已答复", shown)
        with store.session() as s:
            event = s.scalars(select(BusinessEvent).where(BusinessEvent.event_type == "order_answered")).one()
            assert event.payload["order_no"] == str(order_id)
        assert cases_orders.orders_for(store, status="answered")[0].id == order_id
