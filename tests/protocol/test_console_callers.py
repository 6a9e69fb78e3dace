"""The supervisors' nuisance-list page (骚扰号码) over real HTTP and in chromium: roles, CSRF,
a block and its lifting audited, and every refusal re-showing the form with nothing changed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import blocked_callers as bc
from core.db import Store
from core.models import AuditEntry, BlockedCaller, utcnow
from tests.browser import chromium, sign_in
from tests.protocol.test_console import AGENT_PW, ISO_TIME, KEY, SUP_PW, Waiting, _call_on, _client, _console, _sign_in


@pytest.fixture
async def console(store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Store, Waiting]]:
    async with _console(store, tmp_path) as c:
        yield c


def _actions(store: Any) -> list[tuple[str, str, str]]:
    with store.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action.like("callers:%")).order_by(AuditEntry.seq))
        return [(e.action, e.actor, e.channel) for e in rows]


def _listed(store: Any) -> list[str]:
    with store.session() as s:
        return [b.number for b in s.scalars(select(BlockedCaller))]


async def test_only_supervisors_and_only_with_the_token(console: Any) -> None:
    base, store, _ = console
    async with _client() as http:
        csrf = await _sign_in(http, base, "a1001", AGENT_PW)
        assert (await http.get(f"{base}/callers")).status == 403
        form = {"csrf": csrf, "number": "13812345678", "reason": "x", "until": "30d"}
        assert (await http.post(f"{base}/callers/block", data=form, allow_redirects=False)).status == 403
    async with _client() as http:
        csrf = await _sign_in(http, base, "sup", SUP_PW)
        page = await http.get(f"{base}/callers")
        assert page.status == 200 and 'id="nav-callers"' in await page.text()
        form = {"number": "13812345678", "reason": "x", "until": "30d"}
        assert (await http.post(f"{base}/callers/block", data=form, allow_redirects=False)).status == 403
    assert _listed(store) == [] and _actions(store) == []


async def test_a_supervisor_blocks_and_unblocks_audited(console: Any) -> None:
    base, store, _ = console
    async with _client() as http:
        csrf = await _sign_in(http, base, "sup", SUP_PW)
        form = {"csrf": csrf, "number": "+86 138-1234-5678", "reason": "辱骂坐席", "until": "2099-01-31"}
        r = await http.post(f"{base}/callers/block", data=form, allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (303, "/callers?done=blocked")
        page = await (await http.get(f"{base}/callers?done=blocked")).text()
        assert 'id="callers-row-13812345678"' in page and "辱骂坐席" in page and "2099-02-01 00:00" in page
        assert "已加入名单" in page
        assert bc.blocked(store, "13812345678", utcnow()) is not None
        r = await http.post(
            f"{base}/callers/unblock", data={"csrf": csrf, "number": "13812345678"}, allow_redirects=False
        )
        assert (r.status, r.headers["Location"]) == (303, "/callers?done=unblocked")
        page = await (await http.get(f"{base}/callers")).text()
        assert "callers-row-13812345678" not in page and 'id="callers-none"' in page
    assert _listed(store) == []
    assert _actions(store) == [
        ("callers:block", "console:sup", "console"),
        ("callers:unblock", "console:sup", "console"),
    ]


async def test_refusals_reshow_the_form_and_change_nothing(console: Any) -> None:
    base, store, _ = console
    async with _client() as http:
        csrf = await _sign_in(http, base, "sup", SUP_PW)
        for number, until, words in (
            ("anonymous", "30d", "withheld caller id"),
            ("", "30d", "withheld caller id"),
            ("12345", "30d", "not a phone number"),
            ("13812345678", "2020-01-01", "not in the future"),
            ("13812345678", "soon", "an expiry is a date"),
        ):
            form = {"csrf": csrf, "number": number, "reason": "反复骚扰", "until": until}
            r = await http.post(f"{base}/callers/block", data=form, allow_redirects=False)
            page = await r.text()
            assert r.status == 400, (number, until)
            message = re.search(r'id="callers-message">([^<]*)<', page)
            assert message is not None and words in message.group(1), (number, until, page)
            assert 'value="反复骚扰"' in page  # what was typed is kept
        r = await http.post(f"{base}/callers/unblock", data={"csrf": csrf, "number": "13812345678"})
        assert r.status == 400 and "138****5678 is not on the list" in await r.text()
    assert _listed(store) == [] and _actions(store) == []


async def test_a_supervisor_uses_the_page_in_chromium(console: Any) -> None:
    base, store, _ = console
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await sign_in(page, base, "sup", SUP_PW)
        await page.click("#nav-callers")
        await page.wait_for_url(f"{base}/callers")
        await page.fill("#callers-number", "0571-8765-4321")
        await page.fill("#callers-reason", "prank calls at night")
        await page.fill("#callers-until", "7d")
        await page.click("#callers-submit")
        await page.locator("#callers-row-057187654321").wait_for()
        assert await page.locator("#callers-done").inner_text() == "已加入名单"
        shown = await page.locator("body").inner_text()
        assert not KEY.findall(shown) and not ISO_TIME.findall(shown), shown
        await page.fill("#callers-number", "unknown")
        await page.fill("#callers-reason", "x")
        await page.fill("#callers-until", "7d")
        await page.click("#callers-submit")
        assert "withheld" in await page.locator("#callers-message").inner_text()
        await page.locator("#callers-row-057187654321 .callers-unblock").click()
        await page.locator("#callers-none").wait_for()
    assert _actions(store) == [
        ("callers:block", "console:sup", "console"),
        ("callers:unblock", "console:sup", "console"),
    ]


async def test_an_agent_flags_an_abusive_caller_and_a_supervisor_lists_it(console: Any) -> None:
    base, store, _ = console
    _call_on(store, "call-abuse", "1001", None, current=True)  # from 13812345678
    async with _client() as http:
        csrf = await _sign_in(http, base, "a1001", AGENT_PW)
        save = {"call_id": "call-abuse", "code": "abusive", "note": "辱骂坐席"}
        assert (await http.post(f"{base}/api/wrapup", json=save, headers={"X-CSRF-Token": csrf})).status == 200
    assert _listed(store) == []  # flagged is proposed, not listed
    async with _client() as http:
        csrf = await _sign_in(http, base, "sup", SUP_PW)
        page = await (await http.get(f"{base}/callers")).text()
        assert 'id="callers-proposed-13812345678"' in page
        form = {"csrf": csrf, "number": "13812345678", "reason": "坐席标记骚扰 1", "until": "30d"}
        r = await http.post(f"{base}/callers/block", data=form, allow_redirects=False)
        assert r.status == 303
        page = await (await http.get(f"{base}/callers")).text()
        assert "callers-proposed-13812345678" not in page and 'id="callers-row-13812345678"' in page
    assert _listed(store) == ["13812345678"]
    assert _actions(store) == [("callers:block", "console:sup", "console")]
