"""The `message` node (留言) in the flow engine: state through JSON between steps, as a
stateless transport would keep it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ivr import engine
from ivr.engine import (
    Collect,
    Digits,
    HungUp,
    Played,
    PlayRecording,
    Query,
    QueryDone,
    QueryStatus,
    Record,
    Recorded,
    SaveMessage,
    Start,
    Timeout,
    Transfer,
)
from ivr.errors import MenuError
from ivr.menu import DEFAULT_MENU, load_menu
from ivr.message_flow import BUDGET
from tests.unit.test_engine import GOOD_ID, MENU, Caller, identify

TAKE = "messages/2026-12-02/0f0e.wav"
TAKE2 = "messages/2026-12-02/1a1b.wav"


def to_message(c: Caller) -> Collect:
    ask = c.keys("1", "6")  # any key ends the welcome, 6 in the main menu
    assert ask == Query(BUDGET, {})
    action = c.send(QueryDone(BUDGET, QueryStatus.OK))
    assert isinstance(action, Collect)
    return action


def test_the_budget_is_asked_before_the_caller_hears_or_keys_anything_of_the_message() -> None:
    c = Caller()
    c.keys("1")
    assert c.keys("6") == Query(BUDGET, {})
    assert c.state.node == "message" and c.state.awaiting == BUDGET


def test_a_number_past_its_messages_for_today_is_told_and_offered_an_agent() -> None:
    c = Caller()
    c.keys("1", "6")
    action = c.send(QueryDone(BUDGET, QueryStatus.REFUSED, {"reason": "limit"}))
    assert isinstance(action, Collect) and action.prompts == ("msg.limit", "agent.offer")
    assert c.state.node == "agent_offer"
    refused = [n for n in c.notes if n.kind == "message_refused"]
    assert [(n.node, dict(n.detail)) for n in refused] == [("message", {"reason": "limit"})]
    assert [dict(n.detail) for n in c.notes if n.kind == BUDGET] == [{"status": "refused"}]
    # Not a query the caller chose: the reports' menu usage never sees it.
    assert not [n for n in c.notes if n.kind == "query"]
    # Nothing was asked of the caller in the message node: no ID number, no recording.
    assert "msg.id.ask" not in action.prompts and "msg.intro" not in action.prompts
    c.keys("1")
    assert isinstance(c.action, Transfer)


def test_from_the_queue_offer_a_number_past_its_messages_goes_to_the_agent_offer() -> None:
    step = engine.step(MENU, None, Start(node="message", reason="long_wait"))
    assert step.action == Query(BUDGET, {})
    step = engine.step(MENU, step.state, QueryDone(BUDGET, QueryStatus.REFUSED, {"reason": "limit"}))
    assert isinstance(step.action, Collect) and step.action.prompts == ("msg.limit", "agent.offer")


def test_a_budget_that_cannot_be_read_apologises_and_transfers() -> None:
    c = Caller()
    c.keys("1", "6")
    action = c.send(QueryDone(BUDGET, QueryStatus.UNAVAILABLE))
    assert isinstance(action, Transfer) and action.prompts == ("sys.unavailable",)


def test_key_6_asks_for_the_id_number_as_a_secret_entry() -> None:
    c = Caller()
    action = to_message(c)
    assert action.prompts == ("msg.intro", "msg.id.ask")
    # 18 keys and the `#` that ends them: at exactly 18, that `#` spilled into the next prompt.
    assert action.max_digits == 19 and action.secret


def test_a_message_with_an_id_number_listened_to_recorded_again_and_sent() -> None:
    c = Caller()
    to_message(c)
    record = c.keys(GOOD_ID)
    assert record == Record(("msg.record",), silence_s=5)
    review = c.send(Recorded(TAKE, "dtmf"))
    assert isinstance(review, Collect) and review.prompts == ("msg.review",) and review.max_digits == 1
    assert c.keys("1") == PlayRecording(TAKE)
    assert isinstance(c.send(Played()), Collect) and c.prompts() == ("msg.review",)
    assert c.keys("2") == Record(("msg.record",), silence_s=5, discard=TAKE)
    c.send(Recorded(TAKE2, "timeout"))
    assert c.keys("3") == SaveMessage(TAKE2, "complete", "menu", GOOD_ID, None)
    done = c.send(QueryDone("save_message", QueryStatus.OK))
    assert isinstance(done, engine.Hangup) and done.prompts == ("msg.sent",)
    # The ID number never enters the trail: only its length.
    assert all(GOOD_ID not in json.dumps(dict(n.detail)) for n in c.notes)
    kinds = [n.kind for n in c.notes]
    assert "recorded" in kinds and "message_id" in kinds


def test_a_bare_hash_skips_the_id_number() -> None:
    c = Caller()
    to_message(c)
    assert c.keys("") == Record(("msg.record",), silence_s=5)
    c.send(Recorded(TAKE, "dtmf"))
    assert c.keys("3") == SaveMessage(TAKE, "complete", "menu", None, None)


def test_a_wrong_id_number_is_asked_again_then_the_message_goes_on_without_it() -> None:
    c = Caller()
    to_message(c)
    c.keys(GOOD_ID[:17] + "2")
    assert c.prompts() == ("id.bad_check", "msg.id.ask")
    action = c.keys("3305231980")
    assert action == Record(("id.too_short", "msg.id.skipped", "msg.record"), silence_s=5)
    c.send(Recorded(TAKE, "dtmf"))
    saved = c.keys("3")
    assert isinstance(saved, SaveMessage) and saved.id_number is None
    assert [n.detail.get("reason") for n in c.notes if n.kind == "invalid"] == ["bad_check", "too_short"]


def test_silence_at_the_id_number_is_asked_once_more_then_skipped() -> None:
    c = Caller()
    to_message(c)
    c.send(Timeout())
    assert c.prompts() == ("input.none", "msg.id.ask")
    assert c.send(Timeout()) == Record(("msg.id.skipped", "msg.record"), silence_s=5)


@pytest.mark.parametrize("phase", ["recording", "review", "listening"])
def test_a_hang_up_during_or_after_recording_keeps_the_take(phase: str) -> None:
    c = Caller()
    to_message(c)
    c.keys(GOOD_ID)
    if phase == "recording":
        action = c.send(HungUp(recording=TAKE))  # the session names the take Asterisk was writing
    else:
        c.send(Recorded(TAKE, "dtmf"))
        if phase == "listening":
            c.keys("1")
        action = c.send(HungUp())
    assert action == SaveMessage(TAKE, "hangup", "menu", GOOD_ID, None)
    assert c.state.finished and c.notes[-1].detail == {"outcome": "caller_hangup"}


def test_a_hang_up_before_recording_leaves_nothing_to_save() -> None:
    c = Caller()
    to_message(c)
    assert c.send(HungUp()) is None
    c = Caller()
    to_message(c)
    c.keys("")
    assert c.send(HungUp(recording=None)) is None  # hung up during the prompt before the beep


def test_a_hang_up_after_sending_saves_nothing_twice() -> None:
    c = Caller()
    to_message(c)
    c.keys("")
    c.send(Recorded(TAKE, "dtmf"))
    c.keys("3")
    c.send(QueryDone("save_message", QueryStatus.OK))
    assert c.send(HungUp()) is None


def test_silence_or_wrong_keys_at_the_review_send_the_message_rather_than_drop_it() -> None:
    c = Caller()
    to_message(c)
    c.keys("")
    c.send(Recorded(TAKE, "dtmf"))
    c.keys("7")
    assert c.prompts() == ("input.invalid", "msg.review")
    assert c.send(Timeout()) == SaveMessage(TAKE, "complete", "menu", None, None)


def test_asterisk_failing_to_record_is_told_and_an_agent_offered() -> None:
    c = Caller()
    to_message(c)
    c.keys("")
    c.send(Recorded("", "failed"))
    assert c.state.node == "agent_offer" and c.prompts() == ("msg.failed", "agent.offer")


def test_a_message_that_cannot_be_stored_apologises_and_transfers() -> None:
    c = Caller()
    to_message(c)
    c.keys("")
    c.send(Recorded(TAKE, "dtmf"))
    c.keys("3")
    action = c.send(QueryDone("save_message", QueryStatus.UNAVAILABLE))
    assert isinstance(action, Transfer) and action.prompts == ("sys.unavailable",)


def test_from_the_queue_offer_the_reason_is_kept() -> None:
    step = engine.step(MENU, None, Start(node="message", reason="after_hours"))
    step = engine.step(MENU, step.state, QueryDone(BUDGET, QueryStatus.OK))
    assert isinstance(step.action, Collect) and step.action.prompts == ("msg.intro", "msg.id.ask")
    step = engine.step(MENU, step.state, Digits(""))
    step = engine.step(MENU, step.state, Recorded(TAKE, "dtmf"))
    step = engine.step(MENU, step.state, Digits("3"))
    assert step.action == SaveMessage(TAKE, "complete", "after_hours", None, None)


def test_an_identified_caller_is_not_asked_for_the_id_number_again() -> None:
    c = Caller()
    identify(c)
    c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 7}))
    c.send(QueryDone("pension", QueryStatus.OK, {"balance_fen": 100, "months": 2}))
    c.keys("1")  # after the answer: back to the main menu
    assert c.keys("6") == Query(BUDGET, {})
    assert c.send(QueryDone(BUDGET, QueryStatus.OK)) == Record(("msg.intro", "msg.record"), silence_s=5)
    c.send(Recorded(TAKE, "dtmf"))
    assert c.keys("3") == SaveMessage(TAKE, "complete", "menu", GOOD_ID, 7)


def test_a_recording_result_where_none_was_asked_is_a_bug() -> None:
    with pytest.raises(ValueError, match="asked for none"):
        engine.step(MENU, engine.CallState(node="main"), Recorded(TAKE, "dtmf"))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('confirm = "msg.review"\n', "", "missing confirm"),
        ("silence_s = 5\n", "silence_s = 0\n", "silence_s 1..60"),
        ("max_digits = 18\ntimeout_s = 8\nretries = 2", "max_digits = 6\ntimeout_s = 8\nretries = 2", "18-digit"),
    ],
)
def test_a_broken_message_node_is_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = DEFAULT_MENU.read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "menu.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(MenuError, match=message):
        load_menu(tmp_path / "menu.toml")


def test_an_empty_take_is_asked_again_then_the_call_goes_on_without_a_message() -> None:
    c = Caller()
    to_message(c)
    c.keys("")
    again = c.send(Recorded("", "empty"))
    assert again == Record(("msg.empty", "msg.record"), silence_s=5)
    c.send(Recorded("", "empty"))
    assert c.state.node == "agent_offer" and c.prompts() == ("msg.empty", "agent.offer")


def test_a_wrong_id_number_earlier_costs_no_take() -> None:
    c = Caller()
    to_message(c)
    c.keys("3305231980")  # too short: asked again
    c.keys("")
    assert c.send(Recorded("", "empty")) == Record(("msg.empty", "msg.record"), silence_s=5)
