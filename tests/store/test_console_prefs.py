"""通知设置 in the console over real HTTP (and once in Debian's chromium): an agent opens a
resident's notification settings from the screen pop, changes the '*' choice and clears it,
every view and change audited; auditors and department users are refused; a choice the
preferences cannot keep re-shows the form saying why."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from console import accounts
from core.models import AuditEntry, NoticePreference
from core.preferences import parse, save
from tests.browser import chromium, sign_in
from tests.protocol.test_console import AGENT_PW, SUP_PW, _call_on, _client, _console, _sign_in

OTHER_PW = "other-role-password-1"


def _url(base: str, resident_id: int) -> str:
    return f"{base}/residents/{resident_id}/notices"


def _entries(store: Any, resident_id: int) -> list[tuple[str, str, str]]:
    with store.session() as s:
        rows = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.resident_id == resident_id, AuditEntry.action.like("%preferences"))
            .order_by(AuditEntry.id)
        )
        return [(e.actor, e.action, e.channel) for e in rows]


def _rows(store: Any) -> dict[str, NoticePreference]:
    with store.session() as s:
        return {p.category: p for p in s.scalars(select(NoticePreference))}


async def test_an_agent_sees_and_changes_the_choice_from_the_screen_pop(
    store: Any, tmp_path: Any, sample_data: Any
) -> None:
    async with _console(store, tmp_path) as (base, store, _):
        r = sample_data[1][0]
        with store.session() as s:
            save(s, "person", r.id_number, "*", parse("voice,sms", voice_number="13900001111"))
            save(s, "person", r.id_number, "medical", parse("wechat"))
        _call_on(store, "call-p1", "1001", r.id, current=True)
        async with _client() as agent:
            csrf = await _sign_in(agent, base, "a1001", AGENT_PW)
            pop = await (await agent.get(f"{base}/api/calls/call-p1/screenpop")).json()
            assert pop["notices_url"] == f"/residents/{r.id}/notices"
            page = await (await agent.get(base + pop["notices_url"])).text()
            assert "通知设置" in page and r.name in page
            assert r.id_number not in page and r.phone not in page and "13900001111" not in page
            assert re.search(r'id="prefs-row-medical">\s*<td>[^<]+</td><td>wechat · zh</td><td>本类别设置', page)
            assert re.search(r'id="prefs-row-policy">\s*<td>[^<]+</td><td>voice, sms · zh · call 139\*\*\*\*1111', page)
            assert f"{r.phone[:3]}****{r.phone[-4:]} · 登记号码 · 可语音通知" in page
            form = {"csrf": csrf, "channel0": "sms", "channel1": "voice", "channel2": "", "language": "en"}
            form |= {"quiet_start": "21:30", "quiet_end": "07:00"}
            r1 = await agent.post(_url(base, r.id), data=form, allow_redirects=False)
            assert (r1.status, r1.headers["Location"]) == (303, f"/residents/{r.id}/notices?done=saved")
            shown = await (await agent.get(base + r1.headers["Location"])).text()
            assert "已保存" in shown and "sms, voice · en · quiet 21:30-07:00" in shown
        star = _rows(store)["*"]
        assert (star.channels, star.language, star.quiet_start, star.quiet_end, star.voice_number) == (
            "sms,voice",
            "en",
            "21:30",
            "07:00",
            "13900001111",  # the form does not show the number to call: it stays
        )
        assert star.source == "console:1001"
        assert _entries(store, r.id) == [
            ("console:1001", "read:preferences", "console"),
            ("console:1001", "change:preferences", "console"),
            ("console:1001", "read:preferences", "console"),
        ]


async def test_clearing_a_category_and_every_row_is_audited(store: Any, tmp_path: Any, sample_data: Any) -> None:
    async with _console(store, tmp_path) as (base, store, _):
        r = sample_data[1][1]
        with store.session() as s:
            save(s, "person", r.id_number, "*", parse("voice"))
            save(s, "person", r.id_number, "policy", parse("wechat"))
        async with _client() as sup:
            csrf = await _sign_in(sup, base, "sup", SUP_PW)
            one = await sup.post(
                _url(base, r.id) + "/clear", data={"csrf": csrf, "category": "policy"}, allow_redirects=False
            )
            assert one.status == 303 and set(_rows(store)) == {"*"}
            bad = await sup.post(_url(base, r.id) + "/clear", data={"csrf": csrf, "category": "weather"})
            assert bad.status == 400 and "unknown notice category" in await bad.text()
            every = await sup.post(_url(base, r.id) + "/clear", data={"csrf": csrf}, allow_redirects=False)
            assert every.status == 303 and _rows(store) == {}
            page = await (await sup.get(base + every.headers["Location"])).text()
            assert "已清除" in page and "未设置：短信" in page
        actions = [(a, act) for a, act, _ in _entries(store, r.id)]
        assert actions[:2] == [("console:sup", "clear:preferences"), ("console:sup", "read:preferences")]
        assert actions[2:] == [("console:sup", "clear:preferences"), ("console:sup", "read:preferences")]


async def test_auditors_and_departments_are_refused(store: Any, tmp_path: Any, sample_data: Any) -> None:
    async with _console(store, tmp_path) as (base, store, _):
        accounts.add_user(store, "aud", OTHER_PW, "auditor")
        accounts.add_user(store, "dept", OTHER_PW, "department", department="养老保险", departments=("养老保险",))
        r = sample_data[1][0]
        for username in ("aud", "dept"):
            async with _client() as http:
                csrf = await _sign_in(http, base, username, OTHER_PW)
                got = await http.get(_url(base, r.id))
                page = await got.text()
                assert got.status == 403 and "通知设置仅限坐席和班长" in page and r.name not in page
                posted = await http.post(_url(base, r.id), data={"csrf": csrf, "channel0": "voice"})
                assert posted.status == 403
                cleared = await http.post(_url(base, r.id) + "/clear", data={"csrf": csrf})
                assert cleared.status == 403
        assert _rows(store) == {} and _entries(store, r.id) == []


async def test_a_bad_choice_re_shows_the_form_with_the_refusal(store: Any, tmp_path: Any, sample_data: Any) -> None:
    async with _console(store, tmp_path) as (base, store, _):
        r = sample_data[1][0]
        _call_on(store, "call-p3", "1001", r.id, current=False)  # the agent's last call
        async with _client() as agent:
            csrf = await _sign_in(agent, base, "a1001", AGENT_PW)
            cases = [
                ({"channel0": "fax"}, "unknown channel &#39;fax&#39;: the channels are sms, voice, wechat"),
                ({"channel0": "voice", "channel1": "voice"}, "channel voice is named twice"),
                ({}, "no channel given: the channels are sms, voice, wechat"),
                ({"channel0": "sms", "language": "fr"}, "the languages are zh, en"),
                ({"channel0": "sms", "quiet_start": "21:00"}, "quiet hours need both a start and an end"),
            ]
            for fields, said in cases:
                got = await agent.post(_url(base, r.id), data={"csrf": csrf, **fields})
                page = await got.text()
                assert got.status == 400 and said in page and 'id="prefs-form"' in page, (fields, page)
            unsigned = await agent.post(_url(base, r.id), data={"channel0": "voice"})
            assert unsigned.status == 403  # no CSRF token
            assert (await agent.get(_url(base, 999999))).status == 404
        assert _rows(store) == {}
        assert {act for _, act, _ in _entries(store, r.id)} == {"read:preferences"}  # each re-shown form


async def test_an_agent_opens_only_the_caller_of_their_current_or_last_call(
    store: Any, tmp_path: Any, sample_data: Any
) -> None:
    async with _console(store, tmp_path) as (base, store, _):
        caller, other = sample_data[1][0], sample_data[1][1]
        _call_on(store, "call-p5", "1001", caller.id, current=True)
        async with _client() as agent:
            csrf = await _sign_in(agent, base, "a1002", AGENT_PW)  # not on that call
            got = await agent.get(_url(base, caller.id))
            assert got.status == 403 and "当前或上一通电话" in await got.text()
        async with _client() as agent:
            csrf = await _sign_in(agent, base, "a1001", AGENT_PW)
            assert (await agent.get(_url(base, caller.id))).status == 200
            got = await agent.get(_url(base, other.id))
            assert got.status == 403 and other.name not in await got.text()
            posted = await agent.post(_url(base, other.id), data={"csrf": csrf, "channel0": "voice"})
            assert posted.status == 403
        assert _rows(store) == {}
        with store.session() as s:
            denied = s.scalars(select(AuditEntry).where(AuditEntry.action == "denied:preferences")).all()
            assert [(e.actor, e.resident_id) for e in denied] == [
                ("console:1002", caller.id),
                ("console:1001", other.id),
                ("console:1001", other.id),
            ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_an_agent_changes_the_choice_in_chromium(store: Any, tmp_path: Any, sample_data: Any) -> None:
    async with _console(store, tmp_path) as (base, store, _):
        r = sample_data[1][2]
        _call_on(store, "call-p4", "1001", r.id, current=True)
        async with chromium() as browser:
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            await sign_in(page, base, "a1001", AGENT_PW, lands_on="agent")
            await page.goto(_url(base, r.id))
            await page.select_option("#prefs-channel0", "voice")
            await page.select_option("#prefs-channel1", "wechat")
            await page.select_option("#prefs-language", "en")
            await page.fill("#prefs-quiet-start", "22:00")
            await page.fill("#prefs-quiet-end", "07:30")
            await page.click("#prefs-save")
            await page.locator("#prefs-done").wait_for()
            assert "voice, wechat · en · quiet 22:00-07:30" in await page.locator("#prefs-row-star").inner_text()
        star = _rows(store)["*"]
        assert (star.channels, star.language, star.quiet_start, star.quiet_end) == (
            "voice,wechat",
            "en",
            "22:00",
            "07:30",
        )
