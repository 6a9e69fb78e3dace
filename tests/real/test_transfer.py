"""A queued call that the agent blind-transfers, on real Asterisk 22: the live AMI record
and the import of the queue_log Asterisk wrote give the same talk time and disposition."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Store
from core.models import Call
from ivr.agents import AgentControl
from ivr.asterisk import LocalAsterisk
from ivr.caller import AmiSession, place_call, wait_hung_up
from ivr.records import import_files
from tests.real.serving import Ivr

pytestmark = pytest.mark.real
AGENT = "Local/1004-2-60@hotline-agents/n"  # rings 2 s, would talk 60 s: the transfer ends it first
TARGET = ("hotline-agents", "9001-0-3")  # a scripted desk that answers at once and talks 3 s
TALK_BEFORE_TRANSFER_S = 3


def _agent_leg(asterisk: LocalAsterisk) -> str | None:
    """The agent's channel bridged to the caller (`;1` of the member's Local channel)."""
    for line in asterisk.cli("core show channels concise").splitlines():
        fields = line.split("!")
        name = fields[0]
        ours = name.startswith("Local/1004-2-60@hotline-agents-") and name.endswith(";1")
        if ours and len(fields) > 12 and fields[4] == "Up" and fields[12]:  # answered and bridged
            return name
    return None


async def _call_and_transfer(ivr: Ivr, asterisk: LocalAsterisk) -> str:
    uid = await place_call(ivr.settings, "0", lead_s=1, tail_s=40)
    deadline = time.monotonic() + 30
    leg = None
    while leg is None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        leg = await asyncio.to_thread(_agent_leg, asterisk)
    assert leg is not None, "the agent never answered"
    await asyncio.sleep(TALK_BEFORE_TRANSFER_S)
    async with AmiSession(ivr.settings) as ami:
        context, exten = TARGET
        reply = await ami.send({"Action": "BlindTransfer", "Channel": leg, "Context": context, "Exten": exten})
        assert reply[0].success, reply
    await wait_hung_up(ivr.settings, uid, timeout_s=60)
    return uid


def test_a_blind_transfer_keeps_the_agents_talk_time(ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path) -> None:
    control = AgentControl(ivr.settings, ivr.store)
    asyncio.run(control.login("1004", "Agent 1004", AGENT))
    try:
        uid = asyncio.run(_call_and_transfer(ivr, asterisk))
    finally:
        asyncio.run(control.logout("1004"))
    # What Asterisk wrote: app_queue logged the transfer as BLINDTRANSFER.
    written = [x for x in asterisk.queue_log.read_text(encoding="utf-8").splitlines() if f"|{uid}|" in x]
    assert any(f"|BLINDTRANSFER|{TARGET[1]}|{TARGET[0]}|" in x for x in written), written
    # The live record (AMI), written when the caller hung up at the transfer's target.
    deadline = time.monotonic() + 15
    live = None
    while time.monotonic() < deadline and (live is None or live.talk_s is None):
        time.sleep(0.3)
        with ivr.store.session() as s:
            live = s.scalars(select(Call).where(Call.asterisk_uniqueid == uid)).one_or_none()
    assert live is not None and live.talk_s is not None, written
    # The same call imported from queue_log into a store that never saw it live.
    other = Store(f"sqlite:///{tmp_path}/imported.db")
    other.migrate()
    report = import_files(other, asterisk.queue_log, None)
    assert report.problems.count == 0
    with other.session() as s:
        imported = s.scalars(select(Call).where(Call.asterisk_uniqueid == uid)).one()
    other.dispose()
    fields = ("disposition", "agent", "queue_wait_s", "talk_s", "queue_exit", "transferred_to")
    assert [getattr(live, f) for f in fields] == [getattr(imported, f) for f in fields]
    assert (live.disposition, live.agent, live.queue_exit) == ("agent", "Agent 1004", "transferred")
    assert live.transferred_to == f"{TARGET[1]}@{TARGET[0]}"
    assert live.talk_s >= TALK_BEFORE_TRANSFER_S and live.queue_wait_s is not None
