"""The agent's wrap-up with "needs follow-up" over real HTTP, on SQLite and PostgreSQL: a
note the wrap-up refuses leaves no work order behind; saving again (as the desk allows, and
two saves at once) keeps the one order of the call, and the desk shows its number each time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from sqlalchemy import func, select

from console.work import MAX_NOTE
from core.db import Store
from core.models import WorkOrder, WorkOrderEvent, Wrapup
from tests.protocol.test_console import AGENT_PW, Waiting, _call_on, _client, _console, _sign_in

ORDER = {"category": "policy_question", "department": "养老保险", "summary": "补缴养老保险咨询"}


@pytest.fixture
async def console(store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Store, Waiting]]:
    async with _console(store, tmp_path) as c:
        yield c


def _orders(store: Store) -> list[tuple[int, str, str]]:
    with store.session() as s:
        return [tuple(r) for r in s.execute(select(WorkOrder.id, WorkOrder.call_id, WorkOrder.summary))]  # type: ignore[misc]


async def _desk_order(http: ClientSession, base: str) -> Any:
    """The order number the desk shows for the last call: its live stream's first snapshot."""
    async with http.get(f"{base}/agent/stream") as stream:
        line = await asyncio.wait_for(stream.content.readline(), timeout=10)
    assert line.startswith(b"data: "), line
    return json.loads(line[6:])["last_call"]["order_id"]


async def test_a_refused_note_leaves_no_order(console: Any, sample_data: Any) -> None:
    base, store, _ = console
    _call_on(store, "call-long", "1001", sample_data[1][0].id, current=True)
    async with _client() as agent:
        h = {"X-CSRF-Token": await _sign_in(agent, base, "a1001", AGENT_PW)}
        wrap = {"call_id": "call-long", "code": "follow_up", "note": "记" * (MAX_NOTE + 1), "order": ORDER}
        r = await agent.post(f"{base}/api/wrapup", json=wrap, headers=h)
        assert r.status == 400 and f"at most {MAX_NOTE}" in await r.text()
        bad_order = {**wrap, "note": "", "order": {**ORDER, "category": "gossip"}}
        assert (await agent.post(f"{base}/api/wrapup", json=bad_order, headers=h)).status == 400
        assert (
            await agent.post(f"{base}/api/wrapup", json={**wrap, "note": "", "order": "x"}, headers=h)
        ).status == 400
        assert _orders(store) == []
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Wrapup)) == 0  # nor half a wrap-up
            assert s.scalar(select(func.count()).select_from(WorkOrderEvent)) == 0
        assert await _desk_order(agent, base) is None
        # Corrected, it saves both.
        r = await agent.post(f"{base}/api/wrapup", json={**wrap, "note": "记" * MAX_NOTE}, headers=h)
        assert r.status == 200, await r.text()
        assert [o[1] for o in _orders(store)] == ["call-long"]


async def test_saving_again_keeps_the_calls_one_order_and_the_desk_shows_it(console: Any, sample_data: Any) -> None:
    base, store, _ = console
    _call_on(store, "call-twice", "1001", sample_data[1][0].id, current=False)
    async with _client() as agent:
        h = {"X-CSRF-Token": await _sign_in(agent, base, "a1001", AGENT_PW)}
        wrap = {"call_id": "call-twice", "code": "follow_up", "note": "先记一笔", "order": ORDER}
        first = await agent.post(f"{base}/api/wrapup", json=wrap, headers=h)
        assert first.status == 200, await first.text()
        made = await first.json()
        assert made["order_new"] is True and isinstance(made["order_id"], int)
        assert await _desk_order(agent, base) == made["order_id"]
        # Saved again with follow-up (a corrected note, another summary): the same order.
        again = {**wrap, "note": "补充：已核对缴费记录", "order": {**ORDER, "summary": "另一种说法"}}
        second = await agent.post(f"{base}/api/wrapup", json=again, headers=h)
        assert second.status == 200, await second.text()
        assert await second.json() == {"saved": "call-twice", "order_id": made["order_id"], "order_new": False}
        assert await _desk_order(agent, base) == made["order_id"]
        # Saved as resolved after all: the wrap-up changes, the order stays and is named.
        third = await agent.post(f"{base}/api/wrapup", json={**wrap, "code": "resolved", "note": "已解决"}, headers=h)
        assert (await third.json())["order_id"] == made["order_id"]
        assert await _desk_order(agent, base) == made["order_id"]
    assert _orders(store) == [(made["order_id"], "call-twice", ORDER["summary"])]
    with store.session() as s:
        wrapup = s.get_one(Wrapup, "call-twice")
        assert (wrapup.code, wrapup.note) == ("resolved", "已解决")  # the last save replaced the others
        events = s.scalars(select(WorkOrderEvent.action).where(WorkOrderEvent.order_id == made["order_id"])).all()
        assert events == ["created"]


async def test_two_saves_at_once_make_one_order(console: Any, sample_data: Any) -> None:
    base, store, _ = console
    _call_on(store, "call-race", "1001", sample_data[1][0].id, current=True)
    async with _client() as one, _client() as two:
        h1 = {"X-CSRF-Token": await _sign_in(one, base, "a1001", AGENT_PW)}
        h2 = {"X-CSRF-Token": await _sign_in(two, base, "a1001", AGENT_PW)}
        wrap = {"call_id": "call-race", "code": "follow_up", "note": "", "order": ORDER}
        answers = await asyncio.gather(
            *(http.post(f"{base}/api/wrapup", json=wrap, headers=h) for http, h in ((one, h1), (two, h2)) * 3)
        )
        assert [r.status for r in answers] == [200] * 6
        said = [await r.json() for r in answers]
    [(order_id, _, _)] = _orders(store)
    assert {s["order_id"] for s in said} == {order_id}
    assert sorted(s["order_new"] for s in said) == [False] * 5 + [True]
