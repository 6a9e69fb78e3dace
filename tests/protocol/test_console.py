"""The web console over real HTTP on localhost, and in Debian's chromium: sign-in, roles,
CSRF, the agent's data rules, wrap-ups, callbacks, and a wallboard that updates live."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import re
import zipfile
import zoneinfo
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar, TCPConnector
from aiohttp.test_utils import TestServer
from sqlalchemy import insert, select

from console import accounts
from console.app import ConsoleDeps, make_app
from console.errors import BadCredentials
from console.limits import Limits
from core.db import Store
from core.errors import SettingsError
from core.models import (
    Agent,
    AuditEntry,
    Call,
    Callback,
    ConsoleSession,
    ConsoleSignInAddress,
    ConsoleUser,
    Wrapup,
    utcnow,
)
from core.sample_port import SampleBusinessPort
from core.settings import Settings
from ivr.agents import AgentControl
from tests.browser import chromium, sign_in
from tests.conftest import PEPPER, load_sample, make_settings
from tests.store.test_staffing import call_row as staffing_call

AGENT_PW = "agent-password-1"
SUP_PW = "supervisor-password-1"
HOUR = dt.timedelta(hours=1)


@dataclass
class Waiting:
    """Stands in for the AMI monitor's list of waiting callers (the real one is tested
    against Asterisk in tests/real/test_console.py)."""

    callers: list[tuple[str, dt.datetime]] = field(default_factory=list)

    def waiting(self) -> list[tuple[str, dt.datetime]]:
        return list(self.callers)


def _users(store: Store) -> None:
    accounts.add_user(store, "sup", SUP_PW, "supervisor", "主管")
    for n in ("1001", "1002"):
        accounts.add_user(store, f"a{n}", AGENT_PW, "agent", f"坐席{n}", n, f"Local/{n}-1-4@hotline-agents/n")


@asynccontextmanager
async def _console(store: Store, tmp_path: Path, **env: str) -> AsyncIterator[tuple[str, Store, Waiting]]:
    settings: Settings = make_settings(tmp_path, store.url, **env)
    load_sample(store)
    _users(store)
    waiting = Waiting()
    deps = ConsoleDeps(settings, store, SampleBusinessPort(store, PEPPER), AgentControl(settings, store), waiting)
    server = TestServer(make_app(deps), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), store, waiting
    finally:
        await server.close()


@pytest.fixture
async def console(store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Store, Waiting]]:
    async with _console(store, tmp_path) as c:
        yield c


def _client(source: str | None = None) -> ClientSession:
    """`source`: the address to connect from (any of 127.0.0.0/8), as another machine would."""
    # unsafe=True: keep cookies of an IP-address host (127.0.0.1), as a browser does.
    connector = TCPConnector(local_addr=(source, 0)) if source else None
    return ClientSession(cookie_jar=CookieJar(unsafe=True), connector=connector)


async def _sign_in(http: ClientSession, base: str, user: str, password: str) -> str:
    """Sign in like the browser's form does; return the page's CSRF token."""
    page = await (await http.get(f"{base}/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    r = await http.post(
        f"{base}/login", data={"csrf": token.group(1), "username": user, "password": password}, allow_redirects=False
    )
    assert r.status == 303, await r.text()
    session_cookie = next(c for c in r.headers.getall("Set-Cookie") if c.startswith("hotline_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Strict" in session_cookie
    home = await (await http.get(f"{base}/")).text()
    csrf = re.search(r'<meta name="csrf" content="([^"]+)"', home)
    assert csrf is not None
    return csrf.group(1)


def _call_on(store: Store, call_id: str, agent_id: str, resident_id: int | None, *, current: bool) -> None:
    with store.session() as s:
        s.add(Call(id=call_id, started_at=utcnow(), resident_id=resident_id, caller_number="13812345678"))
        s.merge(
            Agent(
                id=agent_id,
                name=f"坐席{agent_id}",
                interface=f"Local/{agent_id}-1-4@hotline-agents/n",
                queues="hotline-12333",
                state="available",
                current_call_id=call_id if current else None,
                last_call_id=call_id,
            )
        )


# --- accounts ---------------------------------------------------------------------------------


def test_passwords_are_hashed_and_sessions_expire(store: Store) -> None:
    _users(store)
    with store.session() as s:
        stored = s.get(ConsoleUser, "sup")
        assert stored is not None and SUP_PW not in stored.password_hash
        assert stored.password_hash.startswith("scrypt$16384$8$")
    with pytest.raises(BadCredentials):
        accounts.sign_in(store, "sup", "wrong-password", HOUR)
    with pytest.raises(BadCredentials):
        accounts.sign_in(store, "nobody", SUP_PW, HOUR)
    signed = accounts.sign_in(store, "sup", SUP_PW, HOUR)
    assert accounts.session_user(store, signed.token, HOUR) == (signed.user, signed.csrf_token)
    with store.session() as s:
        assert s.get(ConsoleSession, signed.token) is None  # only the token's hash is kept
    expired = accounts.sign_in(store, "sup", SUP_PW, dt.timedelta(seconds=-1))
    assert accounts.session_user(store, expired.token, HOUR) is None
    # A new password signs the account out everywhere.
    accounts.add_user(store, "sup", "another-password", "supervisor")
    assert accounts.session_user(store, signed.token, HOUR) is None


# --- HTTP: roles, CSRF, the data rules ------------------------------------------------------


async def test_signed_out_requests_go_to_the_sign_in_page(console: Any) -> None:
    base, _, _ = console
    async with _client() as http:
        r = await http.get(f"{base}/agent", allow_redirects=False)
        assert (r.status, r.headers["Location"]) == (303, "/login")
        assert (await http.get(f"{base}/api/calls/x/screenpop")).status == 401
        # The sign-in form itself needs its CSRF cookie and field.
        r = await http.post(f"{base}/login", data={"username": "sup", "password": SUP_PW}, allow_redirects=False)
        assert r.status == 403


async def test_csrf_and_roles(console: Any) -> None:
    base, _, _ = console
    async with _client() as http:
        csrf = await _sign_in(http, base, "a1001", AGENT_PW)
        r = await http.get(f"{base}/agent")
        assert r.status == 200 and "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert (await http.get(f"{base}/wallboard")).status == 403  # an agent is not a supervisor
        body = {"action": "bogus"}
        assert (await http.post(f"{base}/api/agent/state", json=body)).status == 403  # no token
        r = await http.post(f"{base}/api/agent/state", json=body, headers={"X-CSRF-Token": "forged"})
        assert r.status == 403
        headers = {"X-CSRF-Token": csrf, "Origin": "http://evil.example"}
        assert (await http.post(f"{base}/api/agent/state", json=body, headers=headers)).status == 403
        r = await http.post(f"{base}/api/agent/state", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status == 400 and "action must be" in (await r.json())["error"]
        # Pausing before joining the queues is refused with a reason, not a crash.
        r = await http.post(
            f"{base}/api/agent/state", json={"action": "pause", "reason": "meal"}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status == 409 and "log in first" in (await r.json())["error"]
        # Signing out ends the session on the server too.
        r = await http.post(f"{base}/logout", data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        assert (await http.get(f"{base}/api/calls/x/screenpop")).status == 401


async def test_only_the_agent_on_the_call_sees_the_caller(console: Any, sample_data: Any) -> None:
    base, store, _ = console
    resident = sample_data[1][0]
    _call_on(store, "call-1", "1001", resident.id, current=True)
    _call_on(store, "call-2", "1002", resident.id, current=True)
    async with _client() as http:
        csrf = await _sign_in(http, base, "a1001", AGENT_PW)
        r = await http.get(f"{base}/api/calls/call-1/screenpop")
        pop = await r.json()
        assert r.status == 200 and pop["verified"] and pop["name"] == resident.name
        assert pop["id_number"] == resident.id_number[:6] + "********" + resident.id_number[-4:]
        assert (await http.get(f"{base}/api/calls/call-2/screenpop")).status == 403
        # Wrap-ups: for my call yes, for someone else's no, and an unknown code is refused.
        save = {"call_id": "call-1", "code": "follow_up", "note": "需回访：医保转移"}
        h = {"X-CSRF-Token": csrf}
        assert (await http.post(f"{base}/api/wrapup", json=save, headers=h)).status == 200
        assert (await http.post(f"{base}/api/wrapup", json={**save, "call_id": "call-2"}, headers=h)).status == 403
        assert (await http.post(f"{base}/api/wrapup", json={**save, "code": "??"}, headers=h)).status == 400
        assert (await http.post(f"{base}/api/wrapup", data="{", headers=h)).status == 400
    with store.session() as s:
        wrap = s.get(Wrapup, "call-1")
        assert wrap is not None and (wrap.agent_id, wrap.code) == ("1001", "follow_up")
        audit = [(a.actor, a.action, a.call_id) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert ("console:1001", "view:screen_pop", "call-1") in audit
    assert ("console:1001", "denied:screen_pop", "call-2") in audit


async def test_a_callback_is_taken_by_one_agent_and_finished(console: Any) -> None:
    base, store, _ = console
    _call_on(store, "call-cb", "1002", None, current=False)
    with store.session() as s:
        s.add(Callback(call_id="call-cb", number="13912345678", queue="hotline-12333", reason="long_wait"))
    async with _client() as one, _client() as two:
        h1 = {"X-CSRF-Token": await _sign_in(one, base, "a1001", AGENT_PW)}
        h2 = {"X-CSRF-Token": await _sign_in(two, base, "a1002", AGENT_PW)}
        with store.session() as s:
            cb_id = s.scalars(select(Callback.id)).one()
        r = await one.post(f"{base}/api/callbacks/{cb_id}/take", headers=h1)
        # No trunk is marked outbound here: taken, shown for dialing by hand, and told why.
        taken = await r.json()
        assert r.status == 200 and (taken["number"], taken["dialing"]) == ("13912345678", False)
        assert "no outbound trunk" in taken["error"]
        assert (await two.post(f"{base}/api/callbacks/{cb_id}/take", headers=h2)).status == 403
        r = await two.post(f"{base}/api/callbacks/{cb_id}/finish", json={"outcome": "done"}, headers=h2)
        assert r.status == 403
        r = await one.post(
            f"{base}/api/callbacks/{cb_id}/finish", json={"outcome": "done", "note": "已答复"}, headers=h1
        )
        assert r.status == 200
    with store.session() as s:
        cb = s.scalars(select(Callback)).one()
        assert (cb.status, cb.agent_id, cb.note) == ("done", "1001", "已答复")
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.call_id == "call-cb")).all() == [
            "view:callback_number"
        ]


# --- in the browser ---------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_wallboard_updates_live_in_chromium(console: Any) -> None:
    base, store, waiting = console
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await page.goto(f"{base}/wallboard")
        assert page.url.endswith("/login")
        assert await page.locator("#login-submit").inner_text() == "登录"
        await page.fill("#username", "sup")
        await page.fill("#password", "not-the-password")
        await page.click("#login-submit")
        assert await page.locator("#login-message").inner_text() == "用户名或密码错误"
        await page.fill("#username", "sup")
        await page.fill("#password", SUP_PW)
        await page.click("#login-submit")
        await page.wait_for_url(f"{base}/wallboard")
        await page.locator("#wb-waiting").filter(has_text="0").wait_for()
        await page.evaluate("window.notReloaded = true")
        # A caller joins the queue, an agent signs in and a call is answered: the board follows.
        waiting.callers.append(("hotline-12333", utcnow() - dt.timedelta(seconds=42)))
        _call_on(store, "call-wb", "1001", None, current=True)
        with store.session() as s:
            call = s.get(Call, "call-wb")
            assert call is not None
            call.disposition, call.queue_wait_s, call.talk_s, call.survey = "agent", 12, 95, 1
        await page.locator("#wb-waiting").filter(has_text="1").wait_for(timeout=5000)
        assert int((await page.locator("#wb-longest").inner_text()).split()[0]) >= 42
        await page.locator("#wb-state-on_call").filter(has_text="1").wait_for(timeout=5000)
        await page.locator("#wb-answered").filter(has_text="1").wait_for(timeout=5000)
        assert await page.locator("#wb-sl").inner_text() == "100%"
        assert await page.locator("#wb-connection").inner_text() == "100%"
        assert await page.locator("#wb-hours-missed").inner_text() == "无"
        assert await page.locator("#wb-avg-talk").inner_text() == "95 秒"
        # One caller gives up after 30 s, another after 3 s (within queue.short_abandon_s: not
        # counted): 1 of 2 calls connected, under the 95 % goal, and this hour is listed.
        started = utcnow()
        with store.transaction() as c:
            c.execute(
                insert(Call),
                [
                    staffing_call("gave-up", started, "abandoned", queue_wait_s=30),
                    staffing_call("misdial", started, "abandoned", queue_wait_s=3),
                ],
            )
        await page.locator("#wb-connection").filter(has_text="50%").wait_for(timeout=5000)
        assert "missed" in (await page.locator("#wb-connection").get_attribute("class") or "")
        hour = started.astimezone(zoneinfo.ZoneInfo("Asia/Shanghai")).hour
        assert f"{hour:02d}:00 接通率未达标" in await page.locator("#wb-hours-missed").inner_text()
        assert await page.evaluate("window.notReloaded") is True
        # The English switch keeps the page and the user.
        await page.click("#switch-lang")
        await page.wait_for_url(f"{base}/wallboard")
        await page.locator("#wb-avg-talk").filter(has_text="95 s").wait_for(timeout=5000)
        assert "Callers waiting" in await page.locator("main").inner_text()


# What a translation key or a raw UTC timestamp looks like on a page.
KEY = re.compile(r"\b(?:state|reason|cb\.reason|code|btn)\.[a-z_]+|\b[a-z_]+\.[a-z_]+\b")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d|[+-]00:00\b")


async def _page_text(page: Any, url: str, wait_for: str) -> str:
    await page.goto(url)
    await page.locator(wait_for).first.wait_for()
    return str(await page.locator("body").inner_text())


async def test_no_page_shows_a_translation_key_or_a_utc_timestamp(console: Any) -> None:
    base, store, _ = console
    at = dt.datetime(2026, 11, 26, 5, 56, 4, tzinfo=dt.UTC)  # 13:56:04 in Asia/Shanghai
    _call_on(store, "call-i18n", "1001", None, current=False)
    with store.session() as s:
        s.get_one(Call, "call-i18n").started_at = at
        s.add(
            Callback(call_id="sim-1", number="13812345678", queue="hotline-12333", reason="simulated", requested_at=at)
        )
        s.add(Callback(call_id="c-2", number="13812345679", queue="hotline-12333", reason="long_wait", requested_at=at))
        s.get_one(Agent, "1001").state, s.get_one(Agent, "1001").pause_reason = "paused", "simulated"
        s.add(Agent(id="1002", name="坐席1002", interface="PJSIP/1002", queues="hotline-12333", state="paused"))
        s.get_one(Agent, "1002").pause_reason = "wrap-up"  # typed at the command line
    pages = {
        "a1001": [("/agent", "#callbacks tbody tr >> nth=1"), ("/agent", "#wrapup-call:not(:empty)")],
        "sup": [("/wallboard", "#wb-agents tbody tr >> nth=1"), ("/reports", "main")],
    }
    async with chromium() as browser:
        for username, urls in pages.items():
            for language in ("zh", "en"):
                context = await browser.new_context()
                await context.add_cookies([{"name": "hotline_lang", "value": language, "url": base}])
                page = await context.new_page()
                page.set_default_timeout(10_000)
                shown = [await _page_text(page, f"{base}/login", "#login-form")]
                await page.fill("#username", username)
                await page.fill("#password", SUP_PW if username == "sup" else AGENT_PW)
                await page.click("#login-submit")
                await page.wait_for_load_state()
                shown += [await _page_text(page, f"{base}{url}", wait) for url, wait in urls]
                await context.close()
                for text in shown:
                    assert not KEY.findall(text), (username, language, KEY.findall(text), text)
                    assert not ISO_TIME.findall(text), (username, language, text)
                if username == "a1001":
                    desk = shown[1]
                    assert "2026-11-26 13:56:04" in desk  # the call and the callbacks, in local time
                    assert ("模拟数据" if language == "zh" else "Simulated") in desk
                else:
                    assert "wrap-up" in shown[1]


def test_five_wrong_passwords_lock_the_account_for_a_while(store: Store) -> None:
    _users(store)
    for _ in range(accounts.MAX_FAILURES):
        with pytest.raises(BadCredentials):
            accounts.sign_in(store, "sup", "wrong-password", HOUR)
    with pytest.raises(BadCredentials):  # the right password while locked
        accounts.sign_in(store, "sup", SUP_PW, HOUR)
    with store.session() as s:
        user = s.get_one(ConsoleUser, "sup")
        assert user.locked_until is not None
        user.locked_until = utcnow() - dt.timedelta(seconds=1)  # the lock runs out
    assert accounts.sign_in(store, "sup", SUP_PW, HOUR).user.username == "sup"
    # A right password resets the count: four more wrong ones do not lock.
    for _ in range(accounts.MAX_FAILURES - 1):
        with pytest.raises(BadCredentials):
            accounts.sign_in(store, "sup", "wrong-password", HOUR)
    assert accounts.sign_in(store, "sup", SUP_PW, HOUR).user.username == "sup"


async def _try(
    http: ClientSession, base: str, user: str, password: str, lang: str = "en", forwarded_for: str | None = None
) -> tuple[int, str]:
    """One sign-in as the form sends it; the status and the page's message."""
    http.cookie_jar.update_cookies({"hotline_lang": lang})
    page = await (await http.get(f"{base}/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    form = {"csrf": token.group(1), "username": user, "password": password}
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with http.post(f"{base}/login", data=form, allow_redirects=False, headers=headers) as r:
        found = re.search(r'id="login-message">([^<]*)<', await r.text())
        return r.status, found.group(1) if found else ""


def _failures(store: Store, username: str) -> tuple[int, dt.datetime | None]:
    with store.session() as s:
        u = s.get_one(ConsoleUser, username)
        return u.failed_logins, u.locked_until


async def test_an_address_with_too_many_failures_is_refused_and_moves_no_account_lock(
    store: Store, tmp_path: Path
) -> None:
    env = {"HOTLINE_WEB_SIGN_IN_FAILURES_PER_ADDRESS": "3", "HOTLINE_QUEUE_TIMEZONE": "Asia/Shanghai"}
    async with _console(store, tmp_path, **env) as (base, _, _), _client() as http:
        for name in ("a1001", "a1002", "sup"):  # one password tried on several accounts
            assert await _try(http, base, name, "summer-2026-pw") == (401, "Wrong user name or password")
        status, message = await _try(http, base, "sup", SUP_PW)  # even the right password
        assert status == 429 and message.startswith("Too many failed sign-ins from your address; try again after ")
        until = dt.datetime.strptime(message.rsplit("after ", 1)[1], "%Y-%m-%d %H:%M:%S")
        shanghai_now = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
        assert dt.timedelta(minutes=29) < until - shanghai_now <= dt.timedelta(minutes=30)  # local time, 30 min
        status, message = await _try(http, base, "sup", SUP_PW, lang="zh")
        assert status == 429 and message.startswith("此地址登录失败次数过多")
        for _ in range(10):  # guessing on from the blocked address locks nobody
            assert (await _try(http, base, "a1001", "wrong-password"))[0] == 429
        assert _failures(store, "a1001") == (1, None) and _failures(store, "sup") == (1, None)
        async with _client("127.0.0.2") as elsewhere:  # another address is not affected
            await _sign_in(elsewhere, base, "a1001", AGENT_PW)


async def test_parallel_attempts_from_one_address_do_not_pass_its_limit(store: Store, tmp_path: Path) -> None:
    env = {
        "HOTLINE_WEB_SIGN_IN_FAILURES_PER_ADDRESS": "5",
        "HOTLINE_WEB_SIGN_INS_PER_ADDRESS_AT_ONCE": "100",
        "HOTLINE_WEB_SIGN_INS_PER_USER_AT_ONCE": "100",
    }
    async with _console(store, tmp_path, **env) as (base, _, _):
        clients = [_client() for _ in range(30)]
        try:  # a password spray: one password on thirty names at the same moment
            answers = await asyncio.gather(
                *(_try(c, base, f"user{i}", "summer-2026-pw") for i, c in enumerate(clients))
            )
        finally:
            await asyncio.gather(*(c.close() for c in clients))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [401] * 5 + [429] * 25
    with store.session() as s:
        row = s.get_one(ConsoleSignInAddress, "127.0.0.1")
        assert row.attempts == 5 and row.blocked_until is not None


async def test_behind_a_trusted_proxy_the_forwarded_address_is_limited(store: Store, tmp_path: Path) -> None:
    # A network, as a site writes it (found in review: entries were compared as strings, so
    # `127.0.0.0/8` never matched and every client counted as the proxy's one address).
    env = {"HOTLINE_WEB_SIGN_IN_FAILURES_PER_ADDRESS": "2", "HOTLINE_WEB_TRUSTED_PROXIES": "127.0.0.0/8"}
    async with _console(store, tmp_path, **env) as (base, _, _), _client() as http:
        for _ in range(2):  # the proxy adds the client's address to what the client sent
            assert (await _try(http, base, "sup", "wrong-password", forwarded_for="10.9.9.9, 203.0.113.5"))[0] == 401
        assert (await _try(http, base, "sup", SUP_PW, forwarded_for="203.0.113.5"))[0] == 429
        assert (await _try(http, base, "sup", SUP_PW, forwarded_for="203.0.113.6"))[0] == 303  # everyone else


async def test_a_forwarded_address_from_anyone_else_is_ignored(store: Store, tmp_path: Path) -> None:
    env = {"HOTLINE_WEB_SIGN_IN_FAILURES_PER_ADDRESS": "2"}
    async with _console(store, tmp_path, **env) as (base, _, _), _client() as http:
        for n in range(2):
            assert (await _try(http, base, "sup", "wrong-password", forwarded_for=f"203.0.113.{n}"))[0] == 401
        assert (await _try(http, base, "sup", SUP_PW, forwarded_for="203.0.113.9"))[0] == 429


async def test_sign_ins_at_once_per_user_are_bounded(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checking, release = asyncio.Event(), asyncio.Event()
    check = Limits.check_password

    async def held(self: Limits, fn: Any, *args: object) -> Any:
        checking.set()
        await release.wait()  # the first sign-in's password check is under way meanwhile
        return await check(self, fn, *args)

    monkeypatch.setattr(Limits, "check_password", held)
    async with _console(store, tmp_path, HOTLINE_WEB_SIGN_INS_PER_USER_AT_ONCE="1") as (base, _, _):
        clients = [_client() for _ in range(4)]
        try:
            first = asyncio.create_task(_try(clients[0], base, "sup", "wrong-password"))
            await asyncio.wait_for(checking.wait(), 10)
            others = await asyncio.gather(*(_try(c, base, "sup", "wrong-password") for c in clients[1:]))
            release.set()
            assert await asyncio.wait_for(first, 10) == (401, "Wrong user name or password")
            assert others == [(429, "Too many sign-ins at once; please try again shortly")] * 3
            assert await _try(clients[1], base, "sup", SUP_PW) == (303, "")  # one at a time is fine
        finally:
            await asyncio.gather(*(c.close() for c in clients))
    assert _failures(store, "sup") == (0, None)  # the refused ones were never checked


async def test_live_pages_are_capped_per_user(store: Store, tmp_path: Path) -> None:
    async with _console(store, tmp_path, HOTLINE_WEB_STREAMS_PER_USER="2") as (base, _, _), _client() as http:
        await _sign_in(http, base, "sup", SUP_PW)
        async with http.get(f"{base}/wallboard/stream") as one, http.get(f"{base}/wallboard/stream") as two:
            assert one.status == two.status == 200
            assert (await one.content.readline()).startswith(b"data: ")
            assert (await two.content.readline()).startswith(b"data: ")
            async with http.get(f"{base}/wallboard/stream") as three:
                assert three.status == 429
                assert (await three.json())["error"] == (
                    "too many live pages open for sup at once (at most 2): close one or try again shortly"
                )
        async with _client() as other:  # another user is not affected
            await _sign_in(other, base, "a1001", AGENT_PW)
            async with other.get(f"{base}/agent/stream") as mine:
                assert mine.status == 200


async def test_a_live_page_does_not_outlive_its_session(console: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    base, store, _ = console
    monkeypatch.setattr("console.sse.SSE_SESSION_CHECK_S", 1.0)
    async with _client() as http:
        await _sign_in(http, base, "sup", SUP_PW)
        async with http.get(f"{base}/wallboard/stream") as stream:
            assert stream.headers["Content-Type"] == "text/event-stream"
            first = await stream.content.readline()
            assert first.startswith(b"data: {") and b'"waiting": 0' in first
            with store.session() as s:  # signed out elsewhere (or expired)
                s.query(ConsoleSession).delete()
            rest = await asyncio.wait_for(stream.content.read(), timeout=10)
    assert b"event: signed-out" in rest


# --- reports ---------------------------------------------------------------------------------


def _two_answered_calls(store: Store) -> None:
    bj = dt.timezone(dt.timedelta(hours=8))
    with store.session() as s:
        for n, (talk, wait) in enumerate(((100, 10), (201, 30))):
            started = dt.datetime(2026, 11, 2, 9 + n, tzinfo=bj).astimezone(dt.UTC)
            s.add(
                Call(
                    id=f"rep-{n}", started_at=started, disposition="agent", talk_s=talk, queue_wait_s=wait, agent="1001"
                )
            )


async def test_reports_are_for_supervisors_with_a_period_and_downloads(console: Any) -> None:
    base, store, _ = console
    _two_answered_calls(store)
    period = "from=2026-11-02&to=2026-11-03"
    async with _client() as http:
        await _sign_in(http, base, "a1001", AGENT_PW)
        assert (await http.get(f"{base}/reports?{period}")).status == 403
        assert (await http.get(f"{base}/reports/download?{period}&format=json")).status == 403
    async with _client() as http:
        await _sign_in(http, base, "sup", SUP_PW)
        page = await http.get(f"{base}/reports?{period}")
        assert page.status == 200
        text = await page.text()
        assert 'value="2026-11-02"' in text and "人工服务量" in text and "<svg" in text
        assert "<style" not in text  # the console's CSS, under its Content Security Policy
        bad = await http.get(f"{base}/reports?from=2026-11-30&to=2026-11-01")
        assert bad.status == 400 and "swap" in await bad.text()
        junk = await http.get(f"{base}/reports/download?{period}&format=docx")
        assert junk.status == 400
        data = await (await http.get(f"{base}/reports/download?{period}&format=json")).json(content_type=None)
        assert (data["agent_calls"], data["agent_talk_seconds"], data["avg_agent_talk_seconds"]) == (2, 301, 151)
        zipped = await http.get(f"{base}/reports/download?{period}&format=csv")
        assert zipped.headers["Content-Disposition"] == (
            'attachment; filename="hotline-report-2026-11-02-2026-11-03-csv.zip"'
        )
        with zipfile.ZipFile(io.BytesIO(await zipped.read())) as z:
            names = z.namelist()
            assert len(names) == 16 and "hotline-report-2026-11-02-2026-11-03/summary.csv" in names
            assert "hotline-report-2026-11-02-2026-11-03/hours_missed.csv" in names  # the national KPIs
            assert "hotline-report-2026-11-02-2026-11-03/notices.csv" in names  # notices by channel
            assert "agent_calls,2" in z.read("hotline-report-2026-11-02-2026-11-03/summary.csv").decode()
            casework = z.read("hotline-report-2026-11-02-2026-11-03/casework.csv").decode()
            assert "fcr_no_number,2" in casework and "on_time_rate,\n" in casework  # no orders: no rate
        html_file = await (await http.get(f"{base}/reports/download?{period}&format=html")).text()
        assert html_file.startswith("<!doctype html>") and "<style>" in html_file
        pdf = await http.get(f"{base}/reports/download?{period}&format=pdf")
        assert pdf.content_type == "application/pdf" and (await pdf.read()).startswith(b"%PDF-")


async def test_a_supervisor_picks_a_period_and_downloads_in_chromium(console: Any, tmp_path: Path) -> None:
    base, store, _ = console
    _two_answered_calls(store)
    async with chromium() as browser:
        page = await browser.new_page(accept_downloads=True)
        page.set_default_timeout(15_000)
        await sign_in(page, base, "sup", SUP_PW, lands_on="wallboard")
        await page.click("#nav-reports")
        await page.wait_for_url(re.compile(r".*/reports$"))
        await page.fill("#from", "2026-11-02")
        await page.fill("#to", "2026-11-03")
        await page.click("#show")
        await page.wait_for_url(re.compile(r".*/reports\?from=2026-11-02&to=2026-11-03$"))
        headline = await page.locator("#report .kpis").inner_text()
        assert "151" in headline and "人工通话总时长(分钟)" in headline
        casework = await page.locator("#report .casework-kpis").inner_text()
        assert "按时办结率" in casework and "一次解决率" in casework
        assert await page.locator("#report svg").count() >= 3
        async with page.expect_download() as got:
            await page.click("#download-json")
        download = await got.value
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        assert json.loads(saved.read_text(encoding="utf-8"))["agent_calls"] == 2


def test_a_trusted_proxy_that_is_no_address_is_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="trusted_proxies"):
        make_settings(tmp_path, "sqlite:///x.db", HOTLINE_WEB_TRUSTED_PROXIES="proxy.example.org")
