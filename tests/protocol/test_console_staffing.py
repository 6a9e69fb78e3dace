"""The supervisors' staffing page (console/staffing_views.py) in Chromium and over HTTP, on
SQLite and PostgreSQL: the week's grid of agents needed against agents signed in, another
history chosen in the form, the downloads, who may see it and bad input."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.db import Store
from tests.browser import chromium, sign_in
from tests.protocol.test_console import AGENT_PW, SUP_PW, _client, _console, _sign_in
from tests.store.test_staffing import fill_history


@pytest.fixture
async def base(store: Store, tmp_path: Path) -> AsyncIterator[str]:
    async with _console(store, tmp_path) as (url, store, _):
        fill_history(store)
        yield url


async def test_a_supervisor_reads_the_week_in_chromium(base: str) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await sign_in(page, base, "sup", SUP_PW)
        await page.click("#nav-staffing")
        await page.wait_for_url(f"{base}/reports/staffing")
        # The week after a chosen day, from two weeks of history.
        await page.fill("#weeks", "2")
        await page.fill("#today", "2026-11-10")
        await page.click("#show")
        await page.wait_for_url(re.compile(r".*/reports/staffing\?weeks=2&today=2026-11-10$"))
        monday_nine = page.locator("#slot-2026-11-16-09")
        assert await monday_nine.inner_text() == "14 / 1.6"  # 10 erlangs at 80 % in 15 s
        assert await monday_nine.get_attribute("class") == "missed"
        assert "80% 的来电在 15 秒内接通" in await page.locator("#staffing-basis").inner_text()
        assert "2026-10-27" in await page.locator("#staffing-basis").inner_text()
        # Sunday 03:00: no calls, one agent signed in on both Sundays: not short.
        sunday = page.locator("#slot-2026-11-15-03")
        assert await sunday.inner_text() == "0 / 1.0"
        assert await sunday.get_attribute("class") == ""
        assert await page.locator("#staffing-hours tbody tr.missed").count() >= 1
        # One week earlier, one week of history: Monday 11-02 had both agents all hour.
        await page.fill("#weeks", "1")
        await page.fill("#today", "2026-11-03")
        await page.click("#show")
        await page.wait_for_url(re.compile(r".*weeks=1&today=2026-11-03$"))
        assert await page.locator("#slot-2026-11-09-09").inner_text() == "14 / 2.0"
        assert await page.locator("#download-csv").get_attribute("href") == (
            "/reports/staffing/download?weeks=1&today=2026-11-03&format=csv"
        )


async def test_downloads_roles_and_bad_input(base: str) -> None:
    async with _client() as sup:
        await _sign_in(sup, base, "sup", SUP_PW)
        r = await sup.get(f"{base}/reports/staffing/download?weeks=2&today=2026-11-10&format=csv")
        assert r.status == 200 and "hotline-staffing-2026-11-11.csv" in r.headers["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(await r.text())))
        monday = next(row for row in rows if row["day"] == "2026-11-16" and row["hour"] == "9")
        assert (monday["agents_needed"], monday["agents_signed_in"], monday["short"]) == ("14", "1.6", "True")
        r = await sup.get(f"{base}/reports/staffing/download?weeks=2&today=2026-11-10&format=json")
        assert (await r.json())["service_level_seconds"] == 15
        for query, message in (
            ("weeks=0", "1 to 52 weeks"),
            ("weeks=two", "whole number of weeks"),
            ("today=10/11/2026", "not a date"),
        ):
            r = await sup.get(f"{base}/reports/staffing?{query}")
            assert r.status == 400
            assert message in await r.text()
        r = await sup.get(f"{base}/reports/staffing/download?format=pdf")
        assert r.status == 400
    async with _client() as agent:
        await _sign_in(agent, base, "a1001", AGENT_PW)
        assert (await agent.get(f"{base}/reports/staffing")).status == 403
        assert (await agent.get(f"{base}/reports/staffing/download")).status == 403
