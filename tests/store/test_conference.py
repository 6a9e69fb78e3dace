"""Three-party calls in the store: which numbers an agent may add, the legs and the end
the AMI events make, what is audited, and the desk's view of the agent's call meanwhile.
(The ConfBridge itself runs against real Asterisk in tests/real/test_conference.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from core import sip_phones
from core.db import Store
from core.models import Agent, AuditEntry, Call
from core.settings import Settings
from core.sip_settings import SipSettings
from ivr.conference import ConferenceChange, Conferences, change_of
from ivr.errors import ConferenceRefused
from ivr.screenpop import agent_off_call

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
CALLER, AGENT, MEMBER = "PJSIP/trunk-carrier-00000003", "PJSIP/1001-00000004", "PJSIP/1002-00000009"


@pytest.fixture
def floor(store: Store) -> Conferences:
    """Agent 1001 on call c1; agent 1002 of the labour queue free; 1003 of it paused."""
    settings = Settings(sip=SipSettings(departments={"hotline-labour": "8002", "hotline-medical": "8003"}))
    with store.session() as s:
        s.add(Call(id="c1", asterisk_uniqueid="17.1", started_at=START, resident_id=42))
        s.add(Agent(id="1001", name="A1", interface="PJSIP/1001", queues="hotline-12333", current_call_id="c1",
                    state="available"))  # fmt: skip
        s.add(Agent(id="1002", name="A2", interface="PJSIP/1002", queues="hotline-labour", state="available"))
        s.add(Agent(id="1003", name="A3", interface="PJSIP/1003", queues="hotline-labour", state="paused"))
    sip_phones.add_phone(store, settings, "1001", "phone-1001-password")
    sip_phones.add_phone(store, settings, "1005", "phone-1005-password")
    return Conferences(settings, store, clock=lambda: START)


def _open(c: Conferences, target: str):  # type: ignore[no-untyped-def]
    return c.open_conference(agent_id="1001", target=target, actor="console:agent1001",
                             caller_channel=CALLER, agent_channel=AGENT)  # fmt: skip


def test_a_department_number_rings_a_free_agent_of_it_and_a_phone_its_endpoint(floor: Conferences) -> None:
    view, interface = _open(floor, "8002")
    assert (view.target_kind, view.target, view.state, interface) == (
        "department",
        "hotline-labour 8002: agent 1002",
        "dialing",
        "PJSIP/1002",
    )
    with pytest.raises(ConferenceRefused, match="already has a three-party call"):
        _open(floor, "1005")
    floor.finish(view.id, "failed", "the phone did not answer")
    view, interface = _open(floor, "1005")
    assert (view.target_kind, interface) == ("phone", "PJSIP/1005")


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("8003", "no agent of hotline-medical"),  # nobody of that department is free
        ("1001", "own phone"),
        ("13800138000", "neither a department's number"),  # outside numbers are not offered
        ("12333", "neither a department's number"),
    ],
)
def test_numbers_that_cannot_join(floor: Conferences, target: str, why: str) -> None:
    with pytest.raises(ConferenceRefused, match=why):
        _open(floor, target)
    with floor.store.session() as s:
        assert s.scalar(select(AuditEntry.id).where(AuditEntry.action.like("conference:%"))) is None


def test_an_agent_not_on_a_call_adds_nobody(floor: Conferences) -> None:
    with floor.store.session() as s:
        s.get_one(Agent, "1001").current_call_id = None
    with pytest.raises(ConferenceRefused, match="not on a hotline call"):
        _open(floor, "8002")


def test_legs_the_agent_leaving_and_the_end_audited(floor: Conferences) -> None:
    view, _ = _open(floor, "8002")
    store = floor.store
    # The member answers and joins: the conference is active, the caller and agent to be moved in.
    move = floor._joined(ConferenceChange(view.id, "joined", MEMBER, "9"))
    assert move is not None and (move.caller_channel, move.agent_channel) == (CALLER, AGENT)
    # Queue's bridge ended by the move: AgentComplete does not end agent 1001's call for the desk.
    agent_off_call(store, "PJSIP/1001")
    for channel, uid in ((AGENT, "4"), (CALLER, "3")):
        assert floor._joined(ConferenceChange(view.id, "joined", channel, uid)) is None
    with store.session() as s:
        assert s.get_one(Agent, "1001").current_call_id == "c1"
    assert floor.of_agent("1001") is not None
    # The agent leaves: their desk is free; the caller is not alone, so nobody is let go.
    assert floor._left(ConferenceChange(view.id, "left", AGENT, "4")) is None
    with store.session() as s:
        agent = s.get_one(Agent, "1001")
        assert (agent.current_call_id, agent.last_call_id) == (None, "c1")
    assert floor.of_agent("1001") is None
    # The member leaves too: the caller alone is let go (ConfbridgeKick) to the survey.
    assert floor._left(ConferenceChange(view.id, "left", MEMBER, "9")) == (f"hotline-{view.id}", CALLER)
    floor.finish(view.id, "ended")
    floor.finish(view.id, "ended")  # ConfbridgeEnd seen twice: one entry
    shown = floor.get(view.id)
    assert shown.state == "ended" and [leg.party for leg in shown.legs] == ["member", "agent", "caller"]
    with store.session() as s:
        rows = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.resident_id, AuditEntry.detail)
            .where(AuditEntry.action.like("conference:%"))
            .order_by(AuditEntry.seq)
        ).all()
    assert [(r.actor, r.action, r.resident_id) for r in rows] == [
        ("console:agent1001", "conference:add", 42),
        ("console:agent1001", "conference:ended", 42),
    ]
    assert "member 0 s, agent 0 s, caller 0 s" in rows[1].detail


def test_the_events_asterisk_sends() -> None:
    assert change_of({"Event": "ConfbridgeLeave", "Conference": "hotline-7", "Channel": AGENT, "Uniqueid": "4"}) == (
        ConferenceChange(7, "left", AGENT, "4")
    )
    assert change_of({"Event": "ConfbridgeJoin", "Conference": "hotline-", "Channel": AGENT}) is None
    failed = change_of({"Event": "OriginateResponse", "ActionID": "hotline-conference-7", "Response": "Failure",
                        "Reason": "0"})  # fmt: skip
    assert failed is not None and failed.kind == "failed" and "not reachable" in failed.detail
    # Another feature's Originate is none of ours.
    assert change_of({"Event": "OriginateResponse", "ActionID": "hotline-monitor-7", "Response": "Failure"}) is None


def test_the_report_counts_three_party_calls(floor: Conferences) -> None:
    from core.settings import QueueSettings
    from reports.period import Period
    from reports.report import build

    joined, _ = _open(floor, "8002")
    floor._joined(ConferenceChange(joined.id, "joined", MEMBER, "9"))
    floor.finish(joined.id, "ended")
    with floor.store.session() as s:
        s.get_one(Agent, "1001").current_call_id = "c1"  # the caller came back to the agent
    unanswered, _ = _open(floor, "1005")
    floor.finish(unanswered.id, "failed", "the phone did not answer")
    report = build(floor.store, Period(START.date(), START.date(), "Asia/Shanghai"), QueueSettings(), now=START)
    assert report.as_dict()["three_party"] == {"calls": 1, "failed": 1}
