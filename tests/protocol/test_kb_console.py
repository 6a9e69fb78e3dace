"""The knowledge base in the console over real HTTP and in chromium: the desk's panel for
agents (published articles only, "used on this call" only for their own call), the
editors' pages for supervisors (CSRF, versions, publish, retire), and search input that
is only text."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cases import kb, kb_sample
from core.db import Store
from core.models import KbArticle, KbUse
from tests.browser import chromium, sign_in
from tests.protocol.test_console import AGENT_PW, SUP_PW, _call_on, _client, _console, _sign_in

PENSION = "养老保险补缴怎么办理（示例内容）"


@pytest.fixture
async def console(store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Store, Any]]:
    async with _console(store, tmp_path) as c:
        yield c


def _article_id(store: Any, title: str) -> int:
    with store.session() as s:
        return int(s.scalars(select(KbArticle.id).where(KbArticle.title == title)).one())


async def test_supervisors_edit_publish_and_retire_and_agents_see_only_published(console: Any) -> None:
    base, store, _ = console
    kb_sample.seed(store)
    async with _client() as sup, _client() as agent:
        csrf = await _sign_in(sup, base, "sup", SUP_PW)
        agent_csrf = await _sign_in(agent, base, "a1001", AGENT_PW)
        assert (await agent.get(f"{base}/kb")).status == 403
        assert (await agent.get(f"{base}/kb/new")).status == 403
        form = {"title": "补缴新规", "category": "养老保险", "tags": "补缴", "effective_date": "2025-03-01"}
        form["body"] = "## 办理\n- 带身份证 <script>alert(1)</script>"
        r = await agent.post(f"{base}/kb/new", data={**form, "csrf": agent_csrf}, allow_redirects=False)
        assert r.status == 403  # an agent may not write
        assert (await sup.post(f"{base}/kb/new", data=form, allow_redirects=False)).status == 403  # no CSRF token
        r = await sup.post(f"{base}/kb/new", data={**form, "csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        new_id = int(r.headers["Location"].rsplit("/", 1)[1])
        page = await (await sup.get(f"{base}/kb/{new_id}")).text()
        assert "草稿" in page and "&lt;script&gt;" in page and "<script>alert" not in page
        # The draft is the editors' alone.
        hits = (await (await agent.get(f"{base}/api/kb/search", params={"q": "补缴"})).json())["results"]
        assert PENSION in [h["title"] for h in hits] and "补缴新规" not in [h["title"] for h in hits]
        assert (await agent.get(f"{base}/api/kb/articles/{new_id}")).status == 404
        assert "补缴新规" in await (await sup.get(f"{base}/kb", params={"q": "补缴"})).text()
        # Each save a new version, history shown; a save from a stale page is refused.
        edited = {**form, "body": "## 办理\n- 带身份证和社保卡", "version": "1", "csrf": csrf}
        assert (await sup.post(f"{base}/kb/{new_id}", data=edited, allow_redirects=False)).status == 303
        r = await sup.post(f"{base}/kb/{new_id}", data={**edited, "body": "旧页面"}, allow_redirects=False)
        assert r.status == 409 and "version 2" in await r.text()
        bad = {**edited, "version": "2", "effective_date": "2025-02-30"}
        r = await sup.post(f"{base}/kb/{new_id}", data=bad, allow_redirects=False)
        assert r.status == 400 and "is not a date" in await r.text()
        page = await (await sup.get(f"{base}/kb/{new_id}")).text()
        assert re.search(r"<td>2</td><td>补缴新规</td><td>sup · \d{4}-\d\d-\d\d \d\d:\d\d", page)
        assert "<td>1</td><td>补缴新规</td>" in page
        data = {"status": "published", "csrf": csrf}
        assert (await sup.post(f"{base}/kb/{new_id}/status", data=data, allow_redirects=False)).status == 303
        article = await (await agent.get(f"{base}/api/kb/articles/{new_id}")).json()
        assert article["version"] == 2 and "社保卡" in article["html"] and "<li>" in article["html"]
        r = await sup.post(f"{base}/kb/{new_id}/status", data={"status": "gone", "csrf": csrf})
        assert r.status == 400
        data = {"status": "retired", "csrf": csrf}
        assert (await sup.post(f"{base}/kb/{new_id}/status", data=data, allow_redirects=False)).status == 303
        assert (await agent.get(f"{base}/api/kb/articles/{new_id}")).status == 404
        assert (await sup.get(f"{base}/kb/99999")).status == 404
        assert (await sup.get(f"{base}/kb/..%2F..%2Fetc")).status in (400, 404)
    assert [v.version for v in kb.versions(store, new_id)] == [2, 1]


async def test_the_desk_marks_an_article_used_only_on_the_agents_own_call(console: Any) -> None:
    base, store, _ = console
    kb_sample.seed(store)
    pension = _article_id(store, PENSION)
    draft = kb.create(store, kb.checked("草稿", "未发布。", "其他", "", "2025-01-01"), "sup").id
    _call_on(store, "call-1", "1001", None, current=True)
    _call_on(store, "call-2", "1002", None, current=True)
    async with _client() as http:
        h = {"X-CSRF-Token": await _sign_in(http, base, "a1001", AGENT_PW)}
        url = f"{base}/api/kb/articles/{pension}/used"
        assert (await http.post(url, json={})).status == 403  # no CSRF token
        assert (await http.post(url, json={"call_id": "call-2"}, headers=h)).status == 403  # someone else's call
        assert (await http.post(url, json={"call_id": "no-such-call"}, headers=h)).status == 403
        assert (await http.post(f"{base}/api/kb/articles/{draft}/used", json={}, headers=h)).status == 404
        assert (await http.post(f"{base}/api/kb/articles/abc/used", json={}, headers=h)).status == 400
        r = await http.post(url, json={}, headers=h)  # the agent's current call
        assert r.status == 200 and await r.json() == {"call_id": "call-1", "article_id": pension, "version": 1}
        assert (await (await http.get(f"{base}/api/kb/articles/{pension}")).json())["used"] is True
        # Search input: length-limited, and FTS5 or LIKE syntax is only text.
        for q in ('"补缴', "NEAR(养老 补缴)", "补缴*", "-补缴", "%", "a OR b"):
            r = await http.get(f"{base}/api/kb/search", params={"q": q})
            assert r.status == 200, q
        assert (await http.get(f"{base}/api/kb/search", params={"q": "长" * 101})).status == 400
        assert (await http.get(f"{base}/api/kb/search", params={"q": " "})).status == 400
    async with _client() as other:
        await _sign_in(other, base, "a1002", AGENT_PW)
        assert (await (await other.get(f"{base}/api/kb/articles/{pension}")).json())["used"] is False
    with store.session() as s:
        assert [(u.call_id, u.agent, u.version) for u in s.scalars(select(KbUse))] == [("call-1", "1001", 1)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_agent_searches_opens_and_marks_an_article_in_chromium(console: Any) -> None:
    base, store, _ = console
    kb_sample.seed(store)
    _call_on(store, "call-kb", "1001", None, current=True)
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await sign_in(page, base, "a1001", AGENT_PW, lands_on="agent")
        await page.fill("#kb-q", "补缴")
        await page.click("#kb-search")
        first = page.locator("#kb-results .kb-hit").first
        await first.wait_for()
        assert await first.locator(".kb-hit-title").inner_text() == PENSION
        assert "补缴" in await first.locator("mark").first.inner_text()
        await first.locator(".kb-hit-title").click()
        await page.locator("#kb-article-title").filter(has_text=PENSION).wait_for()
        assert "所需材料" in await page.locator("#kb-article-body h4").all_inner_texts()
        assert "示例内容" in await page.locator("#kb-article-meta").inner_text()
        await page.click("#kb-used")
        await page.locator("#kb-used-done").wait_for(state="visible")
    with store.session() as s:
        used = s.scalars(select(KbUse)).one()
        assert (used.call_id, used.article_id, used.agent) == ("call-kb", _article_id(store, PENSION), "1001")
