"""The agent's screen pop: only the agent on the call sees the caller; all of it audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import Store
from core.models import Agent, AuditEntry, Call, CallStep, utcnow
from core.sample_port import SampleBusinessPort
from ivr.screenpop import NotOnThisCall, agent_off_call, agent_on_call, screen_pop
from tests.conftest import PEPPER, load_sample

IFACE = "Local/1001-2-4@hotline-agents/n"


def test_only_the_agent_on_the_call_sees_the_caller(store: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    load_sample(store)
    r = sample_data[1][0]
    with store.session() as s:
        s.add(
            Call(id="c1", asterisk_uniqueid="17.1", started_at=utcnow(), resident_id=r.id, caller_number="13812345678")
        )
        s.add_all(
            [
                CallStep(call_id="c1", seq=i, at=utcnow(), kind=k, node=n, detail=d)
                for i, (k, n, d) in enumerate(
                    [
                        ("node", "welcome", {}),
                        ("node", "si", {}),
                        ("result", "q_pension", {"query": "pension", "status": "ok"}),
                    ]
                )
            ]
        )
        s.add(Agent(id="1001", name="Agent 1001", interface=IFACE, state="available"))
        s.add(Agent(id="1002", name="Agent 1002", interface="Local/1002@hotline-agents/n", state="available"))
    port = SampleBusinessPort(store, PEPPER)
    assert agent_on_call(store, IFACE, "17.1") == "c1"

    pop = screen_pop(store, port, "1001", "c1")
    assert pop.verified and pop.name == r.name and pop.caller == "138****5678"
    assert pop.id_number == r.id_number[:6] + "********" + r.id_number[-4:]
    assert pop.pension_balance_fen == r.pension_balance_fen and pop.queries == ["pension"]
    assert pop.menu_path == ["welcome", "si"]

    with pytest.raises(NotOnThisCall):
        screen_pop(store, port, "1002", "c1")  # another agent
    agent_off_call(store, IFACE)
    with pytest.raises(NotOnThisCall):
        screen_pop(store, port, "1001", "c1")  # the call is over for this agent
    with store.session() as s:
        seen = [(a.actor, a.action, a.resident_id) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert seen == [
        ("console:1001", "view:screen_pop", r.id),
        ("console:1002", "denied:screen_pop", r.id),
        ("console:1001", "denied:screen_pop", r.id),
    ]
