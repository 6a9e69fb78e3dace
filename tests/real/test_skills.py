"""Skills-based routing against real Asterisk: agent 1001 (no skills) and agent 1002
(English) both free; a carrier caller (SIPp) chooses English on 9 and presses 0 for an
agent: the English skill queue rings 1002 only, though 1001 joined first. Asterisk's own
view: both members of hotline-skill-en with their penalties, and the overflow rule."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from core.models import Call
from ivr.agents import AgentControl
from ivr.asterisk import LocalAsterisk
from ivr.trail import find_call_id, show_call
from tests.real.baresip_phone import baresip_phone
from tests.real.serving import Ivr
from tests.real.sip_setup import TEST_PHONES
from tests.sip_peers.sipp import CarrierCall, UacPlan, hotline_address, place_calls

pytestmark = pytest.mark.real
SKILL_QUEUE = "hotline-skill-en"


def _finished(ivr: Ivr, caller: str, started: dt.datetime) -> dict[str, object]:
    deadline = time.monotonic() + 30  # the machine may be busy with the other test tiers
    while time.monotonic() < deadline:
        with ivr.store.session() as s:
            # This run's IVR call from that number: the tier's earlier runs left calls from it too.
            call_id = s.scalar(
                select(Call.id)
                .where(Call.caller_number == caller, Call.source == "ivr", Call.started_at >= started)
                .order_by(Call.started_at.desc())
                .limit(1)
            )
        if call_id is not None:
            call = show_call(ivr.store, call_id, actor="test")
            if call["ended_at"] and call["talk_s"]:
                return call
        time.sleep(0.2)
    raise AssertionError(f"no finished, answered call from {caller}")


def test_an_english_caller_reaches_the_english_speaking_agent(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    settings = ivr.settings
    control = AgentControl(settings, ivr.store)
    phones = ExitStack()
    for agent in ("1001", "1002"):
        phones.enter_context(baresip_phone(tmp_path / agent, agent, TEST_PHONES[agent], settings.sip.port))
    try:

        async def setup() -> None:
            await control.set_skills("1002", ["en"])
            await control.login("1001", "Agent 1001", "PJSIP/1001", ("hotline-12333",))
            await control.login("1002", "Agent 1002", "PJSIP/1002", ("hotline-12333",))

        asyncio.run(setup())
        shown = asterisk.cli(f"queue show {SKILL_QUEUE}")
        members = {line.split("(")[0].strip(): line for line in shown.splitlines() if "Agent 10" in line}
        assert "with penalty 1" in members["Agent 1001"] and "with penalty" not in members["Agent 1002"], shown
        rules = asterisk.cli("queue show rules hotline-overflow")
        assert "After 30 seconds" in rules and "1" in rules, rules
        # 9: English at the welcome; then 0 in the English main menu: an agent.
        started = dt.datetime.now(dt.UTC)
        plan = UacPlan((CarrierCall("13900001006", "12333"),), dtmf="9WWW0", lead_s=1.0, tail_s=12.0)
        result = place_calls(hotline_address(settings), plan, tmp_path / "sipp")
        assert result.successful == 1, result.log
        call = _finished(ivr, "13900001006", started)
    finally:

        async def teardown() -> None:
            await control.logout("1001")
            await control.logout("1002")
            await control.set_skills("1002", [])

        asyncio.run(teardown())
        phones.close()
    assert (call["language"], call["queue"], call["agent"]) == ("en", SKILL_QUEUE, "Agent 1002"), call
    uid = call["asterisk_uniqueid"]
    this_call = [line for line in asterisk.queue_log.read_text(encoding="utf-8").splitlines() if f"|{uid}|" in line]
    assert not any("Agent 1001" in line for line in this_call), this_call  # 1001 was never rung
    assert find_call_id(ivr.store, uniqueid=str(uid)) == call["id"]
