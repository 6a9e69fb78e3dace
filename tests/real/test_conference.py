"""Three-party calls (三方通话) against real Asterisk: a carrier call (SIPp on the trunk)
answered by agent 1001's baresip phone; from the desk, agent 1001 adds the labour
department's number (8002); agent 1002 of that department, free, is rung on its baresip
phone, and once it answers the caller and agent 1001 are moved into its ConfBridge: three
members. Agent 1001 leaves from the desk; the caller and the department talk on until the
caller hangs up. The call record shows each party's leg, both recordings are kept, and the
conference is audited."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from console import accounts
from core import sip_phones
from core.models import Agent, AuditEntry, Recording
from ivr.agents import AgentControl
from ivr.asterisk import LocalAsterisk
from ivr.trail import show_call
from tests.browser import chromium
from tests.real.baresip_phone import baresip_phone, press
from tests.real.serving import Ivr
from tests.real.sip_setup import TEST_PHONES
from tests.sip_peers.sipp import CarrierCall, UacPlan, hotline_address, place_calls
from tests.waiting import wait_until

pytestmark = pytest.mark.real
PASSWORD = "conference-test-password"


def _wait(what: str, check, timeout_s: float = 30.0):  # type: ignore[no-untyped-def]
    """tests.waiting's bounded wait, named first (the machine may be busy with the other tiers)."""
    return wait_until(check, what, timeout_s)


def _reading(asterisk: LocalAsterisk) -> bool:
    """Whether the agent's channel runs the feature code's Read() now."""
    return any(
        line.startswith("PJSIP/1001-") and line.split("!")[5] == "Read"
        for line in asterisk.cli("core show channels concise").splitlines()
    )


def _members(asterisk: LocalAsterisk, conference: int) -> list[str]:
    """The channels in ConfBridge hotline-<conference> now (`confbridge list`)."""
    out = asterisk.cli(f"confbridge list hotline-{conference}")
    return sorted(line.split()[0] for line in out.splitlines() if line.startswith(("PJSIP/", "Local/")))


def test_an_agent_adds_a_department_to_the_call_and_leaves_the_caller_with_it(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    settings = ivr.settings
    accounts.add_user(ivr.store, "agent1001", PASSWORD, "agent", "坐席1001", "1001", "PJSIP/1001")
    control = AgentControl(settings, ivr.store)
    phones = ExitStack()
    phones.enter_context(baresip_phone(tmp_path / "agent", "1001", TEST_PHONES["1001"], settings.sip.port))
    phones.enter_context(baresip_phone(tmp_path / "labour", "1002", TEST_PHONES["1002"], settings.sip.port))

    def on_call(agent: str) -> str | None:
        with ivr.store.session() as s:
            return s.scalar(select(Agent.current_call_id).where(Agent.id == agent))

    async def scenario() -> tuple[str, int]:
        plan = UacPlan((CarrierCall("13900001004", "12333"),), dtmf="0", lead_s=1.0, tail_s=40.0)
        caller = asyncio.create_task(asyncio.to_thread(place_calls, hotline_address(settings), plan, tmp_path / "sipp"))
        await control.login("1002", "Agent 1002", "PJSIP/1002", ("hotline-labour",))
        await control.login("1001", "Agent 1001", "PJSIP/1001", ("hotline-12333",))
        try:
            call_id = await asyncio.to_thread(_wait, "agent 1001 on the caller's call", lambda: on_call("1001"))
            async with chromium() as browser:
                desk = await (await browser.new_context()).new_page()
                desk.set_default_timeout(30_000)
                await desk.goto(f"{ivr.web}/login")
                await desk.fill("#username", "agent1001")
                await desk.fill("#password", PASSWORD)
                await desk.click("#login-submit")
                await desk.locator("#conference-card").wait_for()
                await desk.fill("#conference-target", "8002")
                await desk.click("#conference-add")
                state = desk.locator("#conference-state")
                await state.filter(has_text="三方通话中：来电人, 坐席, 部门").wait_for()
                conference = (await asyncio.to_thread(show_call, ivr.store, call_id, actor="test"))["conferences"][0]
                members = await asyncio.to_thread(_members, asterisk, conference["id"])
                assert len(members) == 3 and any(m.startswith("PJSIP/1002-") for m in members), members
                assert conference["target"] == "hotline-labour 8002: agent 1002", conference
                # The screen pop stays while agent 1001 is in the conference.
                await desk.locator("#screen-pop").wait_for()
                await desk.click("#conference-leave")
                # Agent 1001's desk is free again; the caller and the department talk on.
                await desk.locator("#conference-card").wait_for(state="hidden")
                left = await asyncio.to_thread(
                    _wait, "two members left", lambda: len(m := _members(asterisk, conference["id"])) == 2 and m
                )
                assert not any(m.startswith("PJSIP/1001-") for m in left), left
            result = await caller
            assert result.successful == 1, result.log
            return call_id, conference["id"]
        finally:
            await control.logout("1001")
            await control.logout("1002")
            if not caller.done():
                await caller

    try:
        call_id, conference_id = asyncio.run(scenario())
    finally:
        phones.close()

    def ended() -> dict | None:  # type: ignore[type-arg]
        confs = show_call(ivr.store, call_id, actor="test")["conferences"]
        return confs[0] if confs and confs[0]["state"] == "ended" else None

    conference = _wait("the conference ended", ended)
    call = show_call(ivr.store, call_id, actor="test")
    # The queue's part of the call: agent 1001 answered it; the rest is the conference's.
    assert (call["disposition"], call["agent"]) == ("agent", "Agent 1001"), call
    legs = {leg["party"]: leg for leg in conference["legs"]}
    assert set(legs) == {"caller", "agent", "member"}, conference
    assert all(leg["left_at"] and leg["talk_s"] is not None for leg in legs.values()), legs
    # The agent left first: the caller and the department talked on without them.
    assert (
        legs["agent"]["left_at"] <= legs["member"]["left_at"] and legs["agent"]["left_at"] <= legs["caller"]["left_at"]
    )
    with ivr.store.session() as s:
        agent = s.get_one(Agent, "1001")
        assert (agent.current_call_id, agent.last_call_id) == (None, call_id)
        actions = list(
            s.scalars(
                select(AuditEntry.action).where(AuditEntry.call_id == call_id, AuditEntry.action.like("conference:%"))
            )
        )
    assert actions == ["conference:add", "conference:ended"]

    def recordings() -> list[Recording] | None:
        with ivr.store.session() as s:
            rows = list(s.scalars(select(Recording).where(Recording.call_id == call_id).order_by(Recording.id)))
            s.expunge_all()
        return rows if len(rows) == 2 and all(r.duration_s for r in rows) else None

    two = _wait("the agent's and the conference's recordings", recordings)
    assert two[1].duration_s and two[1].duration_s > 5, [(r.path, r.duration_s) for r in two]
    assert conference_id == conference["id"]


def test_the_desk_phones_feature_code_adds_a_phone(ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path) -> None:
    """*5, then 1002 and #, keyed on agent 1001's desk phone during a queue call: phone 1002
    rings and joins; the caller and the agent are moved in with it."""
    settings = ivr.settings
    sip_phones.add_phone(ivr.store, settings, "1002", TEST_PHONES["1002"])
    control = AgentControl(settings, ivr.store)
    phones = ExitStack()
    phones.enter_context(baresip_phone(tmp_path / "agent", "1001", TEST_PHONES["1001"], settings.sip.port, keypad=True))
    phones.enter_context(baresip_phone(tmp_path / "expert", "1002", TEST_PHONES["1002"], settings.sip.port))

    def on_call() -> str | None:
        with ivr.store.session() as s:
            return s.scalar(select(Agent.current_call_id).where(Agent.id == "1001"))

    def conference_of(call_id: str) -> dict | None:  # type: ignore[type-arg]
        confs = show_call(ivr.store, call_id, actor="test")["conferences"]
        return confs[0] if confs and len(confs[0]["legs"]) == 3 else None

    async def scenario() -> dict:  # type: ignore[type-arg]
        plan = UacPlan((CarrierCall("13900001005", "12333"),), dtmf="0", lead_s=1.0, tail_s=25.0)
        caller = asyncio.create_task(asyncio.to_thread(place_calls, hotline_address(settings), plan, tmp_path / "sipp"))
        await control.login("1001", "Agent 1001", "PJSIP/1001", ("hotline-12333",))
        try:
            call_id = await asyncio.to_thread(_wait, "agent 1001 on the caller's call", on_call)
            press(tmp_path / "agent", "*5")
            # The feature runs Read() with a dial tone; the number follows once it listens.
            await asyncio.to_thread(_wait, "the feature code's Read", lambda: _reading(asterisk))
            press(tmp_path / "agent", "1002#")
            conference = await asyncio.to_thread(
                _wait, "three parties in the conference", lambda: conference_of(call_id)
            )
            members = await asyncio.to_thread(_members, asterisk, conference["id"])
            assert len(members) == 3 and any(m.startswith("PJSIP/1002-") for m in members), members
            result = await caller
            assert result.successful == 1, result.log
            return conference
        finally:
            await control.logout("1001")
            if not caller.done():
                await caller

    try:
        conference = asyncio.run(scenario())
    finally:
        phones.close()
    assert (conference["target_kind"], conference["target"]) == ("phone", "1002"), conference
    with ivr.store.session() as s:
        actor = s.scalar(
            select(AuditEntry.actor).where(AuditEntry.action == "conference:add").order_by(AuditEntry.seq.desc())
        )
    assert actor == "phone:1001"
