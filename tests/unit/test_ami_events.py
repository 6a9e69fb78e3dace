"""The AMI stream a real Asterisk 22.10 sent for one queued call, folded into a call record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr.ami_events import AmiParser, CallTracker

STREAM = (Path(__file__).resolve().parent.parent / "fixtures" / "ami-queue-call.txt").read_bytes()
T0 = dt.datetime(2026, 11, 28, 3, 16, 42, tzinfo=dt.UTC)


def test_parser_reassembles_messages_split_anywhere() -> None:
    whole = AmiParser().feed(STREAM)
    parser = AmiParser()
    pieces = [parser.feed(STREAM[i : i + 7]) for i in range(0, len(STREAM), 7)]
    assert [m for p in pieces for m in p] == whole
    assert parser.banner == "Asterisk Call Manager/11.0.0"
    assert sum(1 for m in whole if "Event" in m) == 91


def test_queued_call_from_the_real_stream() -> None:
    tracker = CallTracker()
    finished = []
    for i, msg in enumerate(AmiParser().feed(STREAM)):
        done = tracker.feed(msg, T0 + dt.timedelta(milliseconds=100 * i))
        if done is not None:
            finished.append(done)
    assert len(finished) == 1 and tracker.calls == {}
    f = finished[0]
    assert f.uniqueid == "1795835802.20"
    assert (f.disposition, f.queue, f.agent, f.queue_wait_s, f.talk_s, f.caller) == (
        "agent",
        "support",
        "Agent One",
        2,
        4,
        "13812345678",
    )
    assert f.answered_at is not None and f.ended_at is not None and f.ended_at > f.answered_at


def test_abandon_and_ring_no_answer() -> None:
    tracker = CallTracker()
    msgs = [
        {"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Queue": "hotline-12333", "CallerIDNum": "13800000000"},
        {"Event": "AgentRingNoAnswer", "Uniqueid": "1.1", "MemberName": "Agent Two"},
        {"Event": "QueueCallerAbandon", "Uniqueid": "1.1", "HoldTime": "31"},
        {"Event": "QueueCallerLeave", "Uniqueid": "1.1"},
        {"Event": "Hangup", "Uniqueid": "1.1"},
    ]
    out = [tracker.feed(m, T0) for m in msgs]
    f = out[-1]
    assert f is not None and (f.disposition, f.queue_wait_s, f.ring_no_answer) == ("abandoned", 31, 1)
    assert tracker.feed({"Event": "Hangup", "Uniqueid": "unknown.1"}, T0) is None


def test_a_queue_timeout_is_not_an_abandon_and_waiting_callers_are_listed() -> None:
    """app_queue sends QueueCallerAbandon for a timeout too; our UserEvent after Queue()
    (the caller is still on the line) says how it ended."""
    tracker = CallTracker()
    tracker.feed({"Event": "QueueCallerJoin", "Uniqueid": "2.1", "Queue": "hotline-12333"}, T0)
    tracker.feed({"Event": "QueueCallerJoin", "Uniqueid": "2.2", "Queue": "hotline-labour"}, T0)
    assert tracker.waiting() == [("hotline-12333", T0), ("hotline-labour", T0)]
    msgs = [
        {"Event": "QueueCallerAbandon", "Uniqueid": "2.1", "HoldTime": "60"},
        {"Event": "QueueCallerLeave", "Uniqueid": "2.1"},
        {"Event": "UserEvent", "UserEvent": "HotlineQueueExit", "Uniqueid": "2.1", "HotlineStatus": "TIMEOUT"},
        {"Event": "Hangup", "Uniqueid": "2.1"},
    ]
    out = [tracker.feed(m, T0) for m in msgs]
    assert out[1] is None and tracker.waiting() == [("hotline-labour", T0)]  # left: no longer waiting
    f = out[-1]
    assert f is not None and (f.disposition, f.queue_wait_s) == ("timeout", 60)
    tracker.forget("2.2")
    assert tracker.waiting() == [] and tracker.calls == {}


def test_an_agent_blind_transfer_is_recorded_with_its_talk_time() -> None:
    """Asterisk 22's AgentComplete says Reason: transfer; BlindTransfer names the target."""
    tracker = CallTracker()
    msgs = [
        {"Event": "QueueCallerJoin", "Uniqueid": "3.1", "Queue": "hotline-12333", "CallerIDNum": "13800000000"},
        {"Event": "AgentConnect", "Uniqueid": "3.1", "MemberName": "Agent 1004", "HoldTime": "2"},
        {
            "Event": "BlindTransfer",
            "Result": "Success",
            "TransfererUniqueid": "3.2",
            "TransfereeUniqueid": "3.1",
            "Context": "hotline-agents",
            "Extension": "9001-0-3",
        },
        {"Event": "AgentComplete", "Uniqueid": "3.1", "HoldTime": "2", "TalkTime": "6", "Reason": "transfer"},
        {"Event": "Hangup", "Uniqueid": "3.1"},
    ]
    f = [tracker.feed(m, T0) for m in msgs][-1]
    assert f is not None
    assert (f.disposition, f.agent, f.queue_wait_s, f.talk_s) == ("agent", "Agent 1004", 2, 6)
    assert (f.queue_exit, f.transferred_to) == ("transferred", "9001-0-3@hotline-agents")


def test_the_real_stream_says_the_agent_hung_up() -> None:
    tracker = CallTracker()
    done = [tracker.feed(m, T0) for m in AmiParser().feed(STREAM)]
    f = next(d for d in done if d is not None)
    assert (f.queue_exit, f.transferred_to) == ("agent_hangup", None)


async def test_a_fault_in_one_updates_handling_is_logged_at_once_and_the_monitor_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Before, such a task's exception surfaced only as 'never retrieved' when collected."""
    from ivr.ami_monitor import AmiMonitor

    async def broken() -> None:
        raise RuntimeError("bug in an update")

    await AmiMonitor._guard(broken())
    assert "AMI monitor: an update failed" in caplog.text and "bug in an update" in caplog.text


def _answered(tracker: CallTracker, uid: str) -> None:
    tracker.feed({"Event": "QueueCallerJoin", "Uniqueid": uid, "Queue": "hotline-12333"}, T0)
    tracker.feed({"Event": "AgentConnect", "Uniqueid": uid, "MemberName": "Agent 1001", "HoldTime": "1"}, T0)


def test_an_agent_complete_after_the_callers_hangup_still_gives_the_talk_time() -> None:
    """app_queue sends AgentComplete from its own subscription: on a busy Asterisk it came
    after the caller's Hangup, and the record had no talk time."""
    tracker = CallTracker()
    _answered(tracker, "3.1")
    ended = T0 + dt.timedelta(seconds=20)
    assert tracker.feed({"Event": "Hangup", "Uniqueid": "3.1"}, ended) is None  # waits for AgentComplete
    assert tracker.waiting() == [] and tracker.overdue(ended + dt.timedelta(seconds=1)) == []
    complete = {"Event": "AgentComplete", "Uniqueid": "3.1", "HoldTime": "1", "TalkTime": "18", "Reason": "caller"}
    f = tracker.feed(complete, ended + dt.timedelta(seconds=1))
    assert f is not None and (f.talk_s, f.queue_exit, f.ended_at) == (18, "caller_hangup", ended)
    assert tracker.calls == {} and not tracker.closing("3.1")


def test_a_call_whose_agent_complete_never_comes_is_finished_after_the_grace() -> None:
    tracker = CallTracker()
    _answered(tracker, "4.1")
    _answered(tracker, "4.2")
    ended = T0 + dt.timedelta(seconds=20)
    tracker.feed({"Event": "Hangup", "Uniqueid": "4.1"}, ended)
    assert tracker.overdue(ended + dt.timedelta(seconds=2)) == []
    (f,) = tracker.overdue(ended + dt.timedelta(seconds=3))
    # Talk time as the events showed it: from AgentConnect (T0) to the Hangup.
    assert (f.uniqueid, f.talk_s, f.queue_exit, f.disposition, f.ended_at) == ("4.1", 20, None, "agent", ended)
    assert list(tracker.calls) == ["4.2"]  # still talking
    # A call whose AgentComplete came first ends at its Hangup, as before.
    tracker.feed({"Event": "AgentComplete", "Uniqueid": "4.2", "TalkTime": "5", "Reason": "agent"}, ended)
    done = tracker.feed({"Event": "Hangup", "Uniqueid": "4.2"}, ended)
    assert done is not None and (done.talk_s, done.queue_exit) == (5, "agent_hangup")


def test_an_agent_complete_after_the_grace_completes_the_record_written_without_it() -> None:
    tracker = CallTracker()
    _answered(tracker, "5.1")
    ended = T0 + dt.timedelta(seconds=20)
    tracker.feed({"Event": "Hangup", "Uniqueid": "5.1"}, ended)
    (given_up,) = tracker.overdue(ended + dt.timedelta(seconds=3))
    assert (given_up.talk_s, given_up.queue_exit) == (20, None)  # as the events showed it
    complete = {"Event": "AgentComplete", "Uniqueid": "5.1", "HoldTime": "1", "TalkTime": "19", "Reason": "caller"}
    again = tracker.feed(complete, ended + dt.timedelta(seconds=5))
    assert again is not None and (again.talk_s, again.queue_exit, again.ended_at) == (19, "caller_hangup", ended)
    assert tracker.feed(complete, ended + dt.timedelta(seconds=6)) is None  # once
