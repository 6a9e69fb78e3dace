"""A callback taken on the agent desk dials out through the trunk to the test carrier (SIPp
as the answering side): the agent's phone (a scripted Local agent) rings first, then the
resident's number leaves over real SIP in the carrier's form with the hotline's caller ID.
The outcome (answered, busy, lines full) is recorded on the callback and shown on the desk."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar

from console import accounts
from core.models import Callback
from ivr.asterisk import LocalAsterisk
from ivr.dialplan import GLOBAL_OUTBOUND_LIMIT, QUEUE_GENERAL
from tests.browser import chromium
from tests.real.serving import Ivr
from tests.real.sip_setup import CARRIER_UAS_PORT
from tests.sip_peers.sipp import CarrierUas, UasMode

pytestmark = pytest.mark.real
PASSWORD = "callback-test-password"
RESIDENT = "+86 138-0013-8001"  # stored as typed by a clerk; the carrier wants 13800138001
CARRIER_FORM = "13800138001"


def _agent(ivr: Ivr, agent: str, talk_s: int) -> str:
    """A desk account whose phone is a scripted agent: answers at once, talks `talk_s`."""
    accounts.add_user(
        ivr.store, f"cb{agent}", PASSWORD, "agent", f"坐席{agent}", agent, f"Local/{agent}-0-{talk_s}@hotline-agents/n"
    )
    return f"cb{agent}"


def _callback(ivr: Ivr) -> int:
    with ivr.store.session() as s:
        cb = Callback(call_id=str(uuid.uuid4()), number=RESIDENT, queue=QUEUE_GENERAL, reason="long_wait")
        s.add(cb)
        s.flush()
        return cb.id


def _dial_state(
    ivr: Ivr, callback_id: int, *, until: str | None = None, timeout_s: float = 30
) -> tuple[str | None, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        with ivr.store.session() as s:
            cb = s.get(Callback, callback_id)
            assert cb is not None
            state = (cb.dial_state, cb.dial_detail)
        if until is None or state[0] == until or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


class Desk:
    """An agent signed in to the console over HTTP, as the desk's script talks to it."""

    def __init__(self, http: ClientSession, base: str, csrf: str) -> None:
        self.http, self.base, self.csrf = http, base, csrf

    @classmethod
    async def sign_in(cls, http: ClientSession, base: str, username: str) -> Desk:
        page = await (await http.get(f"{base}/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        form = {"csrf": token.group(1), "username": username, "password": PASSWORD}
        assert (await http.post(f"{base}/login", data=form, allow_redirects=False)).status == 303
        home = await (await http.get(f"{base}/agent")).text()
        csrf = re.search(r'<meta name="csrf" content="([^"]+)"', home)
        assert csrf is not None
        return cls(http, base, csrf.group(1))

    async def take(self, callback_id: int) -> tuple[int, dict[str, Any]]:
        r = await self.http.post(f"{self.base}/api/callbacks/{callback_id}/take", headers={"X-CSRF-Token": self.csrf})
        return r.status, await r.json()

    async def shown(self, callback_id: int) -> dict[str, Any]:
        """The callback as the desk's live stream shows it (its first snapshot)."""
        async with self.http.get(f"{self.base}/agent/stream") as r:
            async for line in r.content:
                if line.startswith(b"data:"):
                    data = json.loads(line[5:])
                    return next(cb for cb in data["callbacks"] if cb["id"] == callback_id)
        raise AssertionError("the desk stream ended without a snapshot")


def _http() -> ClientSession:
    # The console is on 127.0.0.1: aiohttp keeps cookies of an IP address only when unsafe.
    return ClientSession(cookie_jar=CookieJar(unsafe=True))


async def _desk(http: ClientSession, ivr: Ivr, username: str) -> Desk:
    return await Desk.sign_in(http, ivr.web, username)


def test_a_callback_dials_the_resident_through_the_trunk_and_is_answered(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    user = _agent(ivr, "2101", talk_s=4)
    callback_id = _callback(ivr)

    async def scenario() -> tuple[int, dict[str, Any], dict[str, Any]]:
        async with _http() as http:
            desk = await _desk(http, ivr, user)
            status, body = await desk.take(callback_id)
            await asyncio.to_thread(_dial_state, ivr, callback_id, until="answered")
            return status, body, await desk.shown(callback_id)

    with _carrier(tmp_path, asterisk, "answer") as uas:
        status, body, shown = asyncio.run(scenario())
        # The agent hangs up after 4 s: Asterisk ends the resident's leg with a BYE.
        _wait_sent(uas, 200, "BYE")
        invites = [(i.request_user, i.from_user) for i in uas.invites()]
    assert (status, body) == (200, {"number": RESIDENT, "dialing": True})
    # The carrier got the resident's number in its (national) form, from the hotline.
    assert invites == [(CARRIER_FORM, "12333")]
    assert _dial_state(ivr, callback_id) == ("answered", "ANSWER")
    assert (shown["dial_state"], shown["status"]) == ("answered", "taken")
    serve_log = ivr.log.read_text()
    assert CARRIER_FORM not in serve_log and "138****8001" in serve_log


def test_over_the_outbound_limit_a_second_callback_is_refused_as_lines_full(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    first, second = _agent(ivr, "2102", talk_s=8), _agent(ivr, "2103", talk_s=4)
    first_id, second_id = _callback(ivr), _callback(ivr)

    async def scenario() -> dict[str, Any]:
        async with _http() as http_one, _http() as http_two:  # one browser each
            one, two = await _desk(http_one, ivr, first), await _desk(http_two, ivr, second)
            assert (await one.take(first_id))[0] == 200
            await asyncio.to_thread(_outbound_calls_up, asterisk, 1)
            assert (await two.take(second_id))[0] == 200
            await asyncio.to_thread(_dial_state, ivr, second_id, until="lines_full")
            shown = await two.shown(second_id)
            await asyncio.to_thread(_dial_state, ivr, first_id, until="answered")
            return shown

    asterisk.cli(f"dialplan set global {GLOBAL_OUTBOUND_LIMIT} 1")
    try:
        with _carrier(tmp_path, asterisk, "answer") as uas:
            shown = asyncio.run(scenario())
            _wait_sent(uas, 200, "BYE")
            invites = [(i.request_user, i.from_user) for i in uas.invites()]
    finally:
        asterisk.cli(f"dialplan set global {GLOBAL_OUTBOUND_LIMIT} {ivr.settings.sip.outbound_channels}")
    assert _dial_state(ivr, second_id) == ("lines_full", "LINESFULL")
    assert shown["dial_state"] == "lines_full"
    assert asyncio.run(_desk_row_says(ivr, second, second_id)) == "外呼线路已满，请稍后再拨"
    assert _dial_state(ivr, first_id) == ("answered", "ANSWER")
    assert invites == [(CARRIER_FORM, "12333")]  # the refused call never reached the carrier


def test_one_callback_call_at_a_time_and_a_busy_resident_is_recorded_busy(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    user = _agent(ivr, "2104", talk_s=4)
    ringing_id, busy_id = _callback(ivr), _callback(ivr)

    async def while_ringing(uas: CarrierUas) -> tuple[int, dict[str, Any]]:
        async with _http() as http:
            desk = await _desk(http, ivr, user)
            assert (await desk.take(ringing_id))[0] == 200
            # The resident's phone rings (the carrier has the INVITE and never answers):
            # a second callback call is refused until this one ends.
            await asyncio.to_thread(uas.wait_invites, 1, 20)
            refused = await desk.take(busy_id)
            # The agent gives up after 4 s: Dial() ends with CANCEL, a failed call out.
            await asyncio.to_thread(_dial_state, ivr, ringing_id, until="failed")
            return refused

    async def busy() -> tuple[int, dict[str, Any]]:
        async with _http() as http:
            desk = await _desk(http, ivr, user)
            again = await desk.take(busy_id)  # taken already: taking it again calls again
            await asyncio.to_thread(_dial_state, ivr, busy_id, until="busy")
            return again

    with _carrier(tmp_path / "ringing", asterisk, "no_answer") as uas:
        status, body = asyncio.run(while_ringing(uas))
    with _carrier(tmp_path / "busy", asterisk, "busy") as uas:
        again = asyncio.run(busy())
        _wait_sent(uas, 486, "INVITE")
    assert status == 409 and "already has a callback call" in body["error"]
    assert _dial_state(ivr, ringing_id) == ("failed", "CANCEL")
    assert again == (200, {"number": RESIDENT, "dialing": True})
    assert _dial_state(ivr, busy_id) == ("busy", "BUSY")


def _carrier(workdir: Path, asterisk: LocalAsterisk, mode: UasMode) -> CarrierUas:
    """The carrier's answering side where the trunk sends calls out, its contact qualified."""
    return CarrierUas(workdir, CARRIER_UAS_PORT, mode=mode, asterisk=asterisk, lifetime_s=60)


def _wait_sent(uas: CarrierUas, status: int, method: str, timeout_s: float = 30) -> None:
    """Until the carrier has sent `status` to a `method` (200 to the hotline's BYE: the call ended)."""
    deadline = time.monotonic() + timeout_s
    while not any(m.direction == "sent" and m.status == status and m.cseq_method == method for m in uas.messages()):
        assert time.monotonic() < deadline, f"the carrier sent no {status} to {method}: {uas.output()}"
        time.sleep(0.1)


def _outbound_calls_up(asterisk: LocalAsterisk, count: int, timeout_s: float = 20) -> None:
    """Until `group show channels` lists `count` channels in the outbound group."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = asterisk.cli("group show channels outbound")
        if f"{count} active channel" in text:
            return
        time.sleep(0.2)
    raise AssertionError(f"not {count} calls out up within {timeout_s:g} s: {text}")


async def _desk_row_says(ivr: Ivr, username: str, callback_id: int) -> str:
    """What the agent desk, in Debian's chromium, shows for that callback's call out."""
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(20_000)
        await page.goto(f"{ivr.web}/login")
        await page.fill("#username", username)
        await page.fill("#password", PASSWORD)
        await page.click("#login-submit")
        await page.wait_for_url(re.compile(r".*/agent$"))
        cell = page.locator(f"#callback-{callback_id} .cb-dial")
        await page.locator(f"#callback-{callback_id} .cb-dial:not(:empty)").wait_for()
        # Taken and no call under way: it can be dialed again.
        await page.locator(f"#callback-{callback_id} .cb-call").wait_for()
        return await cell.inner_text()
