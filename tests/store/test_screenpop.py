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


def test_a_call_12345_transferred_pops_its_order(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The IVR recorded the transferred call's 12345 number (its first step); the pop shows
    it, with our work order of that number when 12345 sent it to us."""
    import json

    from cases.contract12345 import Signed
    from cases.intake12345 import receive
    from tests.conftest import make_settings

    key = "city-12345-shared-key-0123456789abcdef"
    env = {"HOTLINE_HOTLINE12345_ENABLED": "true", "HOTLINE_HOTLINE12345_COUNTERPARTS": json.dumps({"city": key})}
    settings = make_settings(tmp_path, store.url, **env)
    order = {"order_no": "HZ-0042", "title": "转接来电", "content": "养老金发放时间", "category": "咨询",
             "deadline": "2026-12-11T17:30:00+08:00"}  # fmt: skip
    ours = receive(store, settings, Signed("city", 0, "n" * 16), json.dumps(order).encode()).order_id
    load_sample(store)
    with store.session() as s:
        for call_id, number in (("t1", "HZ-0042"), ("t2", "HZ-9999")):
            s.add(Call(id=call_id, asterisk_uniqueid=f"18.{call_id}", started_at=utcnow(), caller_number="13812345678"))
            s.add(CallStep(call_id=call_id, seq=0, at=utcnow(), kind="12345", node=None, detail={"order_no": number}))
        s.add(Agent(id="1001", name="Agent 1001", interface=IFACE, state="available"))
    port = SampleBusinessPort(store, PEPPER)
    agent_on_call(store, IFACE, "18.t1")
    pop = screen_pop(store, port, "1001", "t1")
    assert (pop.order_12345, pop.order_12345_id) == ("HZ-0042", ours)
    agent_on_call(store, IFACE, "18.t2")
    assert (
        screen_pop(store, port, "1001", "t2").order_12345,
        screen_pop(store, port, "1001", "t2").order_12345_id,
    ) == (
        "HZ-9999",
        None,
    )  # not one 12345 sent us: the number alone
