"""A supervisor listens to (监听), whispers to (耳语) and barges into (强插) an agent's call
against real Asterisk: a carrier call (SIPp on the trunk) is answered by agent 1001's
baresip phone; the supervisor's baresip phone 1003 is rung from the wallboard's button and
then from the platform's API (its keys 5 and 6 switching to whisper and barge), and
Asterisk runs ChanSpy on the agent's channel with the
options of each mode; the agent's desk says a supervisor is on the call; every session's
start and end are in the audit trail."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from console import accounts
from core.models import Agent, AuditEntry, MonitorSession
from ivr.agents import AgentControl
from ivr.asterisk import LocalAsterisk
from ivr.monitor import Monitoring
from tests.browser import chromium
from tests.real.baresip_phone import baresip_phone, press
from tests.real.serving import Ivr
from tests.real.sip_setup import TEST_PHONES
from tests.sip_peers.sipp import CarrierCall, UacPlan, hotline_address, place_calls
from tests.waiting import wait_until

pytestmark = pytest.mark.real
PASSWORD = "monitor-test-password"
QUEUE = "hotline-12333"


def _wait(what: str, check, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    """tests.waiting's bounded wait, named first (the machine may be busy with the other tiers)."""
    return wait_until(check, what, timeout_s)


def _spy(asterisk: LocalAsterisk) -> str | None:
    """ChanSpy's arguments on the supervisor's phone's channel, if it is spying now."""
    for line in asterisk.cli("core show channels concise").splitlines():
        fields = line.split("!")
        if len(fields) > 6 and fields[0].startswith("PJSIP/1003-") and fields[5] == "ChanSpy":
            return fields[6]
    return None


def _session(ivr: Ivr, session_id: int) -> MonitorSession:
    with ivr.store.session() as s:
        m = s.get_one(MonitorSession, session_id)
        s.expunge(m)
        return m


def test_a_supervisor_listens_whispers_and_barges_into_an_agents_call(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    settings = ivr.settings
    accounts.add_user(ivr.store, "agent1001", PASSWORD, "agent", "坐席1001", "1001", "PJSIP/1001")
    accounts.add_user(ivr.store, "boss", PASSWORD, "supervisor", "值班主管", interface="PJSIP/1003")
    control = AgentControl(settings, ivr.store)
    monitoring = Monitoring(settings, ivr.store)
    phones = ExitStack()
    phones.enter_context(baresip_phone(tmp_path / "agent", "1001", TEST_PHONES["1001"], settings.sip.port))
    phones.enter_context(baresip_phone(tmp_path / "boss", "1003", TEST_PHONES["1003"], settings.sip.port, keypad=True))

    def agent_call() -> str | None:
        with ivr.store.session() as s:
            return s.scalar(select(Agent.current_call_id).where(Agent.id == "1001"))

    async def scenario() -> list[tuple[str, str]]:
        # The caller keys 0 at the welcome and stays long enough for three sessions.
        plan = UacPlan((CarrierCall("13900001003", "12333"),), dtmf="0", lead_s=1.0, tail_s=45.0)
        caller = asyncio.create_task(asyncio.to_thread(place_calls, hotline_address(settings), plan, tmp_path / "sipp"))
        await control.login("1001", "Agent 1001", "PJSIP/1001", (QUEUE,))
        try:
            call_id = await asyncio.to_thread(_wait, "agent 1001 on the caller's call", agent_call)
            async with chromium() as browser:
                pages = []
                for user in ("boss", "agent1001"):
                    page = await (await browser.new_context()).new_page()
                    page.set_default_timeout(20_000)
                    await page.goto(f"{ivr.web}/login")
                    await page.fill("#username", user)
                    await page.fill("#password", PASSWORD)
                    await page.click("#login-submit")
                    pages.append(page)
                board, desk = pages
                await board.goto(f"{ivr.web}/wallboard")
                row = board.locator("#wb-agents tr", has_text="Agent 1001")
                await row.locator("button", has_text="监听").click()
                await board.locator("#wb-monitor-message", has_text="正在呼叫您的话机").wait_for()
                # 1003 answers; Asterisk spies on 1001's channel, listening only.
                spying = await asyncio.to_thread(_wait, "ChanSpy on the supervisor's phone", lambda: _spy(asterisk))
                channel, options = spying.split(",")
                assert channel.startswith("PJSIP/1001-") and options == "bqsESd", spying
                await desk.locator("#my-monitored", has_text="主管正在介入本通话：监听").wait_for()
                await row.locator("td.monitor", has_text="监听").wait_for()
                listen = (await asyncio.to_thread(monitoring.sessions))[0]
                assert (listen.supervisor, listen.call_id, listen.state) == ("console:boss", call_id, "active")
                # On the phone's keypad: 5 whisper, then 6 barge (ChanSpy's d); each change audited.
                press(tmp_path / "boss", "5")
                await asyncio.to_thread(_wait, "the key 5", lambda: _session(ivr, listen.id).mode == "whisper")
                press(tmp_path / "boss", "6")
                await row.locator("td.monitor", has_text="强插").wait_for()
                # The supervisor ends it; then whispers, then barges, through the API the CLI uses.
                await monitoring.stop(listen.id)
                await asyncio.to_thread(_wait, "the listening channel gone", lambda: _spy(asterisk) is None)
                await desk.locator("#my-monitored").wait_for(state="hidden")
                for mode, option in (("whisper", "w"), ("barge", "B")):
                    view = await monitoring.start(username="boss", agent_id="1001", mode=mode, phone="1003")
                    spying = await asyncio.to_thread(_wait, f"ChanSpy in {mode}", lambda: _spy(asterisk))
                    assert spying.endswith(",bqsESd" + option), spying
                    await asyncio.to_thread(
                        _wait, f"{mode} active", lambda v=view.id: _session(ivr, v).state == "active"
                    )
                    if mode == "whisper":
                        await monitoring.stop(view.id)
                        await asyncio.to_thread(_wait, "the whisper channel gone", lambda: _spy(asterisk) is None)
                # Barging: the caller hangs up; ChanSpy's E ends the session with the call.
                result = await caller
                assert result.successful == 1, result.log
                await asyncio.to_thread(_wait, "the barge ended", lambda: _session(ivr, view.id).state == "ended", 60)
                with ivr.store.session() as s:
                    rows = s.execute(
                        select(AuditEntry.actor, AuditEntry.action, AuditEntry.call_id)
                        .where(AuditEntry.action.like("monitor:%"))
                        .order_by(AuditEntry.seq)
                    ).all()
                assert {r.call_id for r in rows} == {call_id}
                return [(r.actor, r.action) for r in rows]
        finally:
            await control.logout("1001")
            if not caller.done():
                await caller

    try:
        audit = asyncio.run(scenario())
    finally:
        phones.close()
    actions = [action for _, action in audit]
    assert {actor for actor, _ in audit} == {"console:boss"}
    assert actions == [
        "monitor:listen", "monitor:whisper", "monitor:barge", "monitor:ended",  # keys 5 and 6 in the first
        "monitor:whisper", "monitor:ended", "monitor:barge", "monitor:ended",
    ], audit  # fmt: skip
