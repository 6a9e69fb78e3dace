"""Agents' desk phones against real Asterisk: baresip registered as agent 1001 answers a
call from the carrier trunk (SIPp on 127.0.0.2, RFC 4733 DTMF) queued for an agent; agent
1002, logged in with no phone registered, is not rung; the desk and the wallboard show
which phone is registered; `hotline phones list` shows the registration, and `hotline
phones add|remove` reach the running Asterisk."""

from __future__ import annotations

import asyncio
import io
import time
from argparse import Namespace
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

import pytest
from playwright.async_api import Browser, Page

from console import accounts
from core import sip_phones
from core.models import Call
from hotline import phones
from ivr.agents import AgentControl
from ivr.asterisk import LocalAsterisk
from ivr.asterisk_config import ETC_DIR
from ivr.asterisk_root import resolve_in_root
from ivr.trail import find_call_id, show_call
from tests.browser import chromium
from tests.real.baresip_phone import baresip_phone
from tests.real.serving import QUEUE_GIVES_UP_S, Ivr
from tests.real.sip_setup import TEST_PHONES
from tests.real.sip_setup import phone_entries as session_phones
from tests.sip_peers.sipp import CarrierCall, UacPlan, hotline_address, place_calls

pytestmark = pytest.mark.real
PASSWORD = "phones-test-password"
QUEUE = "hotline-12333"


def _finished_trunk_call(ivr: Ivr) -> dict[str, object]:
    """The last call, once it came in over the carrier trunk and its record is complete."""
    deadline = time.monotonic() + 30  # the machine may be busy with the other test tiers
    seen: dict[str, object] = {}
    while time.monotonic() < deadline:
        call_id = find_call_id(ivr.store)
        if call_id is not None:
            call = show_call(ivr.store, call_id, actor="test")
            seen = {k: v for k, v in call.items() if k != "trail"}
            if str(call["channel"]).startswith("PJSIP/trunk-carrier") and call["ended_at"] and call["talk_s"]:
                with ivr.store.session() as s:
                    call["ring_no_answer"] = s.get_one(Call, call_id).ring_no_answer
                return call
        time.sleep(0.2)
    raise AssertionError(f"no finished, answered call from the carrier trunk recorded; the last call: {seen}")


async def _sign_in(browser: Browser, base: str, user: str) -> Page:
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(20_000)
    await page.goto(f"{base}/login")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    return page


def _call_through_the_trunk(ivr: Ivr, work: Path) -> dict[str, object]:
    """The caller presses 0 at the welcome, hears the transfer prompt (4 s), is answered
    at once and hangs up 18 s after the 0 (time for the phone to answer on a busy machine,
    and talk left over)."""
    plan = UacPlan((CarrierCall("13900001001", "12333"),), dtmf="0", lead_s=1.0, tail_s=18.0)
    result = place_calls(hotline_address(ivr.settings), plan, work)
    assert result.successful == 1, result.log
    return _finished_trunk_call(ivr)


def test_a_registered_phone_answers_a_queued_carrier_call_and_an_unregistered_one_is_not_rung(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    settings = ivr.settings
    accounts.add_user(ivr.store, "agent1001", PASSWORD, "agent", "坐席1001", "1001", "PJSIP/1001")
    accounts.add_user(ivr.store, "boss", PASSWORD, "supervisor", "值班主管")
    # The store holds 1001's phone with the password the test Asterisk renders for it.
    sip_phones.add_phone(ivr.store, settings, "1001", TEST_PHONES["1001"])
    control = AgentControl(settings, ivr.store)
    phone = ExitStack()
    phone.enter_context(baresip_phone(tmp_path / "baresip", "1001", TEST_PHONES["1001"], settings.sip.port))
    listed = {row["endpoint"]: row for row in phones.listing(settings, ivr.store)}
    assert listed["1001"]["registered"] is True
    assert str(listed["1001"]["address"]).startswith("127.0.0.1:")
    assert str(listed["1001"]["user_agent"]).startswith("baresip")

    async def scenario() -> dict[str, object]:
        async with chromium() as browser:
            desk = await _sign_in(browser, ivr.web, "agent1001")
            board = await _sign_in(browser, ivr.web, "boss")
            await desk.locator('#my-phone[data-registered="registered"]').wait_for()
            await control.login("1002", "Agent 1002", "PJSIP/1002", (QUEUE,))
            await control.login("1001", "Agent 1001", "PJSIP/1001", (QUEUE,))
            try:
                # app_queue's view: 1002's device is UNAVAILABLE (no contact), 1001's free. With
                # ringinuse=no, can_ring_entry() rings only NOT_INUSE or UNKNOWN members.
                shown = await asyncio.to_thread(asterisk.cli, f"queue show {QUEUE}")
                members = {line.split("(")[0].strip(): line for line in shown.splitlines()}
                assert "(Unavailable)" in members["Agent 1002"] and "(Not in use)" in members["Agent 1001"]
                row_1002 = board.locator("#wb-agents tr", has_text="Agent 1002")
                await row_1002.locator(".phone-unregistered").wait_for()
                row_1001 = board.locator("#wb-agents tr", has_text="Agent 1001")
                assert "话机未注册" not in await row_1001.inner_text()
                call = await asyncio.to_thread(_call_through_the_trunk, ivr, tmp_path / "sipp")
            finally:
                await control.logout("1001")
                await control.logout("1002")
            # baresip stops and unregisters: the desk says so at once (DeviceStateChange).
            await asyncio.to_thread(phone.close)
            await desk.locator('#my-phone[data-registered="unregistered"]').wait_for()
            return call

    try:
        call = asyncio.run(scenario())
    finally:
        phone.close()
    assert call["outcome"] == "transferred" and call["queue"] == QUEUE, {k: v for k, v in call.items() if k != "trail"}
    assert (call["disposition"], call["agent"]) == ("agent", "Agent 1001")
    assert call["ring_no_answer"] == 0  # nobody was rung before 1001 answered
    # 1001 answered before the queue gave up, and the call was talked on (how long each took
    # is the benchmarks' to measure: this tier runs beside CPU-heavy ones).
    assert call["queue_wait_s"] is not None and call["queue_wait_s"] < QUEUE_GIVES_UP_S
    assert call["talk_s"] is not None and call["talk_s"] > 0
    uid = call["asterisk_uniqueid"]
    this_call = [line for line in asterisk.queue_log.read_text(encoding="utf-8").splitlines() if f"|{uid}|" in line]
    assert any("|Agent 1001|CONNECT|" in line for line in this_call), this_call
    assert not any("Agent 1002" in line for line in this_call), this_call


def test_phones_add_and_remove_reload_the_running_asterisk(ivr: Ivr, asterisk: LocalAsterisk) -> None:
    """`hotline phones add` rewrites pjsip.conf from the store and the running Asterisk
    takes the new endpoint at once; `remove` takes it away again."""
    settings = ivr.settings
    args = Namespace(agent="1004", password_stdin=True, softphone=False)
    try:
        with patch("sys.stdin", io.StringIO("desk-phone-1004\n")):
            added = phones.add(settings, ivr.store, args, "test")
        assert added["asterisk"] == "pjsip.conf rewritten and reloaded by the running Asterisk"
        assert "Endpoint:  1004 " in asterisk.cli("pjsip show endpoint 1004")
        assert "desk-phone-1004" not in resolve_in_root(asterisk.root, f"{ETC_DIR}/pjsip.conf").read_text()
        phones.remove(settings, ivr.store, args, "test")
        assert "Unable to find object 1004" in asterisk.cli("pjsip show endpoint 1004")
    finally:
        # The session's Asterisk carries the test phones of sip_setup, not this store's.
        asterisk.reload_sip(session_phones(settings))
    assert "Endpoint:  1002 " in asterisk.cli("pjsip show endpoint 1002")
