"""Supervisors' listen / whisper / barge sessions in the store: who may start one on which
call, what the AMI events do to it, what is audited and what the desk and wallboard see.
(The ChanSpy itself runs against real Asterisk in tests/real/test_monitor.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from console import accounts, live
from core.db import Store
from core.models import Agent, AuditEntry, Call, MonitorSession, utcnow
from core.settings import QueueSettings, Settings
from ivr.errors import MonitorRefused
from ivr.monitor import MonitorEvents, Monitoring, apply
from tests.conftest import load_sample

PASSWORD = "monitor-test-password"
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def floor(store: Store, sample_data) -> Store:  # type: ignore[no-untyped-def]
    """Agent 1001 on call c1 with a verified resident, agent 1002 free; two supervisors and an agent account."""
    load_sample(store)
    with store.session() as s:
        s.add(Call(id="c1", asterisk_uniqueid="17.1", started_at=START, resident_id=sample_data[1][0].id))
        s.add(Agent(id="1001", name="Agent 1001", interface="PJSIP/1001", state="available", current_call_id="c1"))
        s.add(Agent(id="1002", name="Agent 1002", interface="PJSIP/1002", state="available"))
    accounts.add_user(store, "boss", PASSWORD, "supervisor", "值班主管", interface="PJSIP/2001")
    accounts.add_user(store, "boss2", PASSWORD, "supervisor", "副主管", interface="PJSIP/2002")
    accounts.add_user(store, "agent1002", PASSWORD, "agent", "坐席1002", "1002", "PJSIP/1002")
    return store


def _monitoring(store: Store) -> Monitoring:
    return Monitoring(Settings(), store, clock=lambda: START)


def _audit(store: Store) -> list[tuple[str, str, str | None, int | None]]:
    with store.session() as s:
        rows = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.call_id, AuditEntry.resident_id)
            .where(AuditEntry.action.like("monitor:%"))
            .order_by(AuditEntry.seq)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_a_supervisor_listens_switches_and_ends_all_audited(floor: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    m = _monitoring(floor)
    view = m.open_session(username="boss", agent_id="1001", mode="listen", phone="2001")
    assert (view.state, view.phone, view.call_id, view.supervisor) == ("ringing", "PJSIP/2001", "c1", "console:boss")
    resident = sample_data[1][0].id
    assert _audit(floor) == [("console:boss", "monitor:listen", "c1", resident)]
    # The supervisor's phone answers, presses 5 (whisper) then 6 (barge), then hangs up.
    events = MonitorEvents()
    spy = "PJSIP/2001-0000000a"
    user_event = {"Event": "UserEvent", "UserEvent": "HotlineMonitor", "MonitorId": str(view.id), "Channel": spy}
    key = {"Event": "DTMFEnd", "Channel": spy, "Direction": "Received"}
    for msg in (
        {**user_event, "State": "start"},
        {**key, "Digit": "5"},
        {**key, "Digit": "5"},  # already whispering
        {**key, "Channel": "PJSIP/1001-00000007", "Digit": "6"},  # the agent's own key
        {**key, "Digit": "6"},
        {**user_event, "State": "end"},
    ):
        change = events.feed(msg)
        if change is not None:
            apply(m, change)
    assert [a[1] for a in _audit(floor)] == ["monitor:listen", "monitor:whisper", "monitor:barge", "monitor:ended"]
    ended = m.get(view.id)
    assert (ended.state, ended.mode, ended.ended_at) == ("ended", "barge", START.isoformat(timespec="seconds"))
    # The end event seen twice (or a --stop meeting it) is audited once.
    again = events.feed({**user_event, "State": "end"})
    assert again is not None
    apply(m, again)
    assert [a[1] for a in _audit(floor)].count("monitor:ended") == 1


def test_who_may_listen_to_what(floor: Store) -> None:
    m = _monitoring(floor)
    refused = {
        "an agent's account": dict(username="agent1002", agent_id="1001", mode="listen", phone="2001"),
        "a stranger": dict(username="nobody", agent_id="1001", mode="listen", phone="2001"),
        "an agent not on a call": dict(username="boss", agent_id="1002", mode="listen", phone="2001"),
        "no such agent": dict(username="boss", agent_id="1999", mode="listen", phone="2001"),
        "the agent's own phone": dict(username="boss", agent_id="1001", mode="listen", phone="PJSIP/1001"),
        "a phone that is no endpoint": dict(username="boss", agent_id="1001", mode="listen", phone="Local/x@y,1"),
        "a mode ChanSpy has not": dict(username="boss", agent_id="1001", mode="record", phone="2001"),
    }
    for why, ask in refused.items():
        with pytest.raises(MonitorRefused):
            m.open_session(**ask)  # type: ignore[arg-type]
        assert _audit(floor) == [], why
    barge = m.open_session(username="boss", agent_id="1001", mode="barge", phone="2001")
    # Nobody else joins a call a supervisor is barging into; the same supervisor not twice.
    with pytest.raises(MonitorRefused, match="console:boss is already barging"):
        m.open_session(username="boss2", agent_id="1001", mode="listen", phone="2002")
    m.finish(barge.id, "failed", "the supervisor's phone did not answer")
    listen = m.open_session(username="boss", agent_id="1001", mode="listen", phone="2001")
    with pytest.raises(MonitorRefused, match="already on agent 1001's call"):
        m.open_session(username="boss", agent_id="1001", mode="whisper", phone="2001")
    second = m.open_session(username="boss2", agent_id="1001", mode="whisper", phone="2002")  # two may listen
    assert {v.id for v in m.sessions()} == {listen.id, second.id}
    assert [v.state for v in m.sessions(open_only=False)] == ["ringing", "ringing", "failed"]
    # The CLI with no account named is audited as whoever runs it.
    with floor.session() as s:
        s.get_one(Agent, "1002").current_call_id = "c1"
    cli = m.open_session(username=None, agent_id="1002", mode="listen", phone="2003", cli_actor="cli:root")
    assert cli.supervisor == "cli:root"


def test_the_desk_and_the_wallboard_see_who_is_on_the_call(floor: Store) -> None:
    m = _monitoring(floor)
    view = m.open_session(username="boss", agent_id="1001", mode="whisper", phone="2001")
    board = live.wallboard(floor, QueueSettings(), None)
    rows = {a["id"]: a for a in board["agent_list"]}
    assert (rows["1001"]["monitors"], rows["1002"]["monitors"]) == (["whisper"], [])
    # Ringing the supervisor is not yet listening: the desk says nothing until answered.
    assert live.agent_snapshot(floor, "1001")["monitored"] == []
    m.answered(view.id, "PJSIP/2001-0000000b")
    assert live.agent_snapshot(floor, "1001")["monitored"] == ["whisper"]
    assert live.agent_snapshot(floor, "1001", monitor_notice=False)["monitored"] == []
    m.finish(view.id, "ended")
    assert live.agent_snapshot(floor, "1001")["monitored"] == []
    with floor.session() as s:
        assert s.scalar(select(MonitorSession.state)) == "ended"
    assert utcnow() > START
