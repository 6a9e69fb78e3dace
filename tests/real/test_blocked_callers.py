"""A number on the nuisance list against real Asterisk 22 and `hotline serve`: the blocked
caller hears the treatment (self-service only, the default) and, pressing 0 for an agent,
never reaches the queue, while an unlisted caller pressing 0 is answered by the agent."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import select

from core import blocked_callers
from core.models import BlockedCall, utcnow
from ivr.ami_client import AmiSession
from ivr.asterisk import LocalAsterisk
from ivr.trail import show_call
from tests.real.serving import Ivr, kinds

pytestmark = pytest.mark.real
MEMBER = {"Queue": "hotline-12333", "Interface": "Local/1004-1-3@hotline-agents/n"}


async def _agent(ivr: Ivr, action: str) -> None:
    async with AmiSession(ivr.settings) as ami:
        extra = {"MemberName": "Agent 1004"} if action == "QueueAdd" else {}
        await ami.send({"Action": action, **MEMBER, **extra}, as_list=False)


def _settled(ivr: Ivr, call: dict[str, Any]) -> dict[str, Any]:
    """The call once the AMI monitor has given it its disposition (up to 10 s)."""
    deadline = time.monotonic() + 10
    while call["disposition"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
        call = show_call(ivr.store, call["id"], actor="test")
    return call


def test_a_blocked_number_never_reaches_the_agent_who_answers_others(ivr: Ivr, asterisk: LocalAsterisk) -> None:
    blocked_callers.block(
        ivr.store, "13800138000", reason="abusive", until=utcnow() + dt.timedelta(hours=1), actor="test", now=utcnow()
    )
    asyncio.run(_agent(ivr, "QueueAdd"))
    try:
        # The carrier presents the listed number with +86; 0 for an agent during the prompt.
        blocked = _settled(ivr, ivr.call("0", tail_s=6, caller_id="+8613800138000"))
        # Another caller's 0: the transfer prompt (4 s), the agent rings 1 s and talks 3 s.
        other = _settled(ivr, ivr.call("0", tail_s=15, caller_id="13900001004"))
    finally:
        asyncio.run(_agent(ivr, "QueueRemove"))
    prompts = [p["prompts"] for p in kinds(blocked, "prompt")]
    assert prompts[0] == ["caller.blocked", "welcome"] and ["caller.no_agent", "welcome"] in prompts
    assert [s.get("refused") for s in kinds(blocked, "blocked")] == [None, 1]
    assert (blocked["outcome"], blocked["queue"], blocked["agent"]) == ("caller_hangup", None, None)
    assert blocked["disposition"] == "automated"
    uid = blocked["asterisk_uniqueid"]
    assert not [line for line in asterisk.queue_log.read_text(encoding="utf-8").splitlines() if f"|{uid}|" in line]
    with ivr.store.session() as s:
        assert [(c.call_id, c.number, c.stage) for c in s.scalars(select(BlockedCall))] == [
            (blocked["id"], "13800138000", "ivr")
        ]
    assert (other["outcome"], other["disposition"], other["agent"]) == ("transferred", "agent", "Agent 1004")
    assert not kinds(other, "blocked")
    log = ivr.log.read_text(encoding="utf-8")
    assert "138****8000 is on the nuisance list" in log and "13800138000" not in log
