"""The supervisor's and a department's order lists in pages, over real HTTP on SQLite and
PostgreSQL: past 500 orders the newest is on page 1 of "all", a department with 150 open
orders reaches the last 50 on page 2, and the category filter cuts the list before the page."""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path
from typing import Any

from sqlalchemy import event

from cases import orders as cases_orders
from core.db import Store
from core.settings import Settings
from tests.conftest import make_settings
from tests.protocol.test_console import SUP_PW, _client, _console, _sign_in
from tests.protocol.test_console_orders_flow import DEPT_PW, add_department_users
from tests.protocol.test_console_supervision import listed

START = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)  # a Monday morning in Beijing
MINUTE = dt.timedelta(minutes=1)


def _add(store: Store, settings: Settings, n: int, *, first: int, department: str, category: str) -> list[int]:
    """`n` open orders, one a minute from minute `first` after START; their ids, oldest first."""
    rows = []
    for i in range(first, first + n):
        created = START + i * MINUTE
        rows.append(cases_orders.order_values(settings, "call", category, f"工单{i}", "test", department, created))
    with store.transaction() as c:
        made = c.execute(cases_orders.ORDERS.insert().returning(cases_orders.ORDERS.c.id), rows).scalars().all()
    return sorted(made)


def _pager(page: str) -> tuple[str, str, str]:
    """What the pager says, and where its previous and next links go ("" if absent)."""
    said = re.search(r'<nav id="orders-pager".*?</nav>', page, re.S)
    assert said is not None, page
    nav = said.group(0)
    links = {k: html.unescape(v) for k, v in re.findall(r'id="page-(previous|next)" href="([^"]+)"', nav)}
    text = re.sub(r"<[^>]+>|\s+", " ", nav).strip()
    return text, links.get("previous", ""), links.get("next", "")


async def test_past_500_orders_the_newest_is_on_page_1_and_every_page_is_reachable(
    store: Store, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, store.url)
    async with _console(store, tmp_path) as (base, store, _):
        older = _add(store, settings, 500, first=0, department="就业", category="how_to")
        newest = _add(store, settings, 5, first=600, department="医疗保险", category="how_to")
        async with _client() as sup:
            await _sign_in(sup, base, "sup", SUP_PW)
            page = await (await sup.get(f"{base}/orders")).text()
            assert listed(page)[:5] == newest[::-1]  # newest first
            assert len(listed(page)) == 100
            said, previous, following = _pager(page)
            assert "第 1–100 条，共 505 条" in said and "第 1 / 6 页" in said
            assert (previous, following) == ("", "/orders?page=2")
            seen: list[int] = []
            url = "/orders"
            for _ in range(10):  # six pages; bounded
                page = await (await sup.get(f"{base}{url}")).text()
                seen += listed(page)
                url = _pager(page)[2]
                if not url:
                    break
            assert sorted(seen) == sorted(older + newest) and len(seen) == 505
            assert "第 501–505 条，共 505 条" in _pager(page)[0] and _pager(page)[1] == "/orders?page=5"
            # The waiting list: soonest due first, so the oldest head it; also in pages.
            page = await (await sup.get(f"{base}/orders?status=open&page=6")).text()
            assert listed(page) == newest and _pager(page)[1] == "/orders?status=open&page=5"
            beyond = await (await sup.get(f"{base}/orders?page=7")).text()
            assert listed(beyond) == [] and "没有工单" in beyond and _pager(beyond)[1] == "/orders?page=6"
            for bad in ("0", "x", "-1"):
                r = await sup.get(f"{base}/orders?page={bad}")
                assert r.status == 400 and "a whole number from 1" in html.unescape(await r.text()), bad


async def test_a_department_with_150_open_orders_sees_page_2(store: Store, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store.url)
    async with _console(store, tmp_path) as (base, store, _):
        add_department_users(store)
        mine = _add(store, settings, 150, first=0, department="养老保险", category="policy_question")
        _add(store, settings, 30, first=200, department="医疗保险", category="policy_question")
        async with _client() as pension:
            await _sign_in(pension, base, "pension", DEPT_PW)
            first = await (await pension.get(f"{base}/orders")).text()
            assert listed(first) == mine[:100]  # soonest due first
            said, previous, following = _pager(first)
            assert "共 150 条" in said and (previous, following) == ("", "/orders?page=2")
            second = await (await pension.get(f"{base}{following}")).text()
            assert listed(second) == mine[100:]
            said, previous, following = _pager(second)
            assert "第 101–150 条，共 150 条" in said and (previous, following) == ("/orders?page=1", "")
            # A department's filters are fixed: asking for another's orders pages its own.
            asked = await (await pension.get(f"{base}/orders?department=医疗保险&page=2")).text()
            assert listed(asked) == mine[100:]


async def test_the_category_filter_applies_before_the_page(store: Store, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store.url)
    async with _console(store, tmp_path) as (base, store, _):
        policy = _add(store, settings, 3, first=0, department="就业", category="policy_question")
        how_to = _add(store, settings, 130, first=10, department="就业", category="how_to")
        async with _client() as sup:
            await _sign_in(sup, base, "sup", SUP_PW)
            page = await (await sup.get(f"{base}/orders")).text()
            assert not set(policy) & set(listed(page))  # the oldest: not on page 1 of all
            page = await (await sup.get(f"{base}/orders?category=policy_question")).text()
            assert listed(page) == policy[::-1]
            said, previous, following = _pager(page)
            assert "第 1–3 条，共 3 条" in said and (previous, following) == ("", "")
            page = await (await sup.get(f"{base}/orders?status=open&category=how_to")).text()
            assert listed(page) == how_to[:100]
            following = _pager(page)[2]
            assert following == "/orders?status=open&category=how_to&page=2"
            page = await (await sup.get(f"{base}{following}")).text()
            assert listed(page) == how_to[100:] and "共 130 条" in _pager(page)[0]


def test_a_page_is_one_query_for_its_orders_and_one_count(store: Store, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store.url)
    _add(store, settings, 120, first=0, department="就业", category="how_to")
    _add(store, settings, 7, first=200, department="就业", category="policy_question")
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        found = cases_orders.page_of_orders(store, category="how_to", page=2, per_page=100)
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert (found.total, len(found.orders), found.pages, found.has_next) == (120, 20, 2, False)
    assert {o.category for o in found.orders} == {"how_to"}
    assert len(statements) == 2 and sum("count(*)" in s.lower() for s in statements) == 1
