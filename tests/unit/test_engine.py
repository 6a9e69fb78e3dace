"""The flow engine, driven as a stateless webhook would: state through JSON between steps."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ivr import engine
from ivr.catalogue import load_catalogue
from ivr.engine import Collect, Digits, HungUp, Query, QueryDone, QueryStatus, Start, Timeout, Transfer
from ivr.menu import load_menu

CAT = load_catalogue()
MENU = load_menu(catalogue=CAT)
GOOD_ID = "330523198001010011"


class Caller:
    """Feeds inputs one at a time, keeping the state only as JSON text between them."""

    def __init__(self) -> None:
        step = engine.step(MENU, None, Start())
        self.saved = json.dumps(step.state.to_json())
        self.action = step.action
        self.notes = list(step.notes)

    def send(self, event: engine.Input) -> engine.Action | None:
        state = engine.CallState.from_json(json.loads(self.saved))
        step = engine.step(MENU, state, event)
        self.saved = json.dumps(step.state.to_json())
        self.action = step.action
        self.notes += step.notes
        return step.action

    @property
    def state(self) -> engine.CallState:
        return engine.CallState.from_json(json.loads(self.saved))

    def keys(self, *entries: str) -> engine.Action | None:
        for e in entries:
            self.send(Digits(e))
        return self.action

    def prompts(self) -> tuple[str, ...]:
        assert isinstance(self.action, (Collect, Transfer, engine.Play, engine.Hangup))
        return self.action.prompts


def identify(c: Caller, *, menu_keys: tuple[str, ...] = ("1", "1", "1")) -> Query:
    c.keys(*menu_keys, GOOD_ID)
    action = c.keys("123456")
    assert isinstance(action, Query) and action.name == "identify"
    assert action.args == {"id_number": GOOD_ID, "pin": "123456"}
    return action


def test_pension_query_end_to_end() -> None:
    c = Caller()
    assert c.prompts() == ("welcome",)
    identify(c)
    action = c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 7}))
    assert action == Query("pension", {"resident_id": 7})
    c.send(QueryDone("pension", QueryStatus.OK, {"balance_fen": 1_230_560, "months": 134}))
    words = "".join(CAT.text(p, "zh") for p in c.prompts())
    assert "一万二千三百零五元六角" in words and "一百三十四个月" in words
    assert c.prompts()[0] == "id.ok" and c.prompts()[-1] == "after.menu"


def test_pin_never_enters_the_state() -> None:
    c = Caller()
    identify(c)
    assert "123456" not in c.saved
    assert all("123456" not in json.dumps(dict(n.detail)) for n in c.notes)


def test_wrong_id_is_reprompted_with_the_reason_then_accepted() -> None:
    c = Caller()
    c.keys("1", "1", "1", "330523198001010012")
    assert c.prompts() == ("id.bad_check", "id.ask")
    c.keys("3305231980")
    assert c.prompts() == ("id.too_short", "id.ask")
    c.keys(GOOD_ID)
    assert c.prompts() == ("pin.ask",)


def test_three_wrong_ids_offer_an_agent() -> None:
    c = Caller()
    c.keys("1", "1", "1", "1", "2", "3")
    assert c.state.node == "agent_offer"
    assert c.prompts() == ("id.too_short", "agent.offer")
    assert isinstance(c.keys("1"), Transfer)


def test_three_failed_identifications_ask_again_from_the_id_then_offer_an_agent() -> None:
    c = Caller()
    identify(c)
    for failures in (1, 2):
        c.send(QueryDone("identify", QueryStatus.WRONG_PIN, {"failures": failures}))
        assert c.prompts() == ("id.failed", "id.ask") and c.state.id_number is None
        c.keys(GOOD_ID)
        assert isinstance(c.keys("654321"), Query)
    c.send(QueryDone("identify", QueryStatus.WRONG_PIN, {"failures": 3}))
    assert c.state.node == "agent_offer" and c.prompts() == ("id.failed", "agent.offer")


def test_a_mistyped_id_and_a_format_error_share_the_steps_attempts() -> None:
    c = Caller()
    identify(c)
    c.send(QueryDone("identify", QueryStatus.WRONG_PIN, {"failures": 1}))
    c.keys("1234")
    assert c.prompts() == ("id.too_short", "id.ask")
    c.keys(GOOD_ID, "123456")
    c.send(QueryDone("identify", QueryStatus.WRONG_PIN, {"failures": 2}))
    assert c.state.node == "agent_offer"


def test_locked_id_is_told_and_offered_an_agent() -> None:
    c = Caller()
    identify(c)
    c.send(QueryDone("identify", QueryStatus.LOCKED, {"until": "2026-11-29T00:00:00+00:00"}))
    assert c.prompts() == ("pin.locked", "agent.offer")


def test_a_refused_identification_closes_identification_for_the_call() -> None:
    c = Caller()
    identify(c)
    c.send(QueryDone("identify", QueryStatus.REFUSED, {"reason": "ids_per_call"}))
    assert c.state.node == "agent_offer" and c.prompts() == ("id.refused", "agent.offer")
    assert c.state.id_number is None
    # Back to the menu and another query: no ID number is asked for, only the agent offered.
    c.keys("2", "1", "2")
    assert c.state.node == "agent_offer" and c.prompts() == ("id.refused", "agent.offer")
    assert isinstance(c.keys("1"), Transfer)


def test_store_unavailable_apologises_and_transfers() -> None:
    c = Caller()
    identify(c)
    action = c.send(QueryDone("identify", QueryStatus.UNAVAILABLE))
    assert isinstance(action, Transfer) and action.prompts == ("sys.unavailable",)
    assert action.queue == "hotline-12333"


MENUS = [n.id for n in MENU.nodes.values() if n.type == "menu"]


@pytest.mark.parametrize("node_id", MENUS)
def test_every_menu_repeats_on_star_and_reaches_an_agent_on_zero(node_id: str) -> None:
    state = engine.CallState(node=node_id, repeat=(MENU.node(node_id).prompt,))
    again = engine.step(MENU, state, Digits("*"))
    assert isinstance(again.action, Collect) and again.action.prompts == (MENU.node(node_id).prompt,)
    assert again.state.tries.get(node_id, 0) == 0
    agent = engine.step(MENU, state, Digits("0"))
    assert isinstance(agent.action, Transfer) and agent.action.queue == "hotline-12333"


def test_star_after_a_query_repeats_the_answer() -> None:
    c = Caller()
    identify(c)
    c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 7}))
    c.send(QueryDone("pension", QueryStatus.OK, {"balance_fen": 100, "months": 2}))
    first = c.prompts()
    c.keys("*")
    assert c.prompts() == first[1:]  # the answer and the menu, without "identified"


def test_silence_reprompts_then_gives_up() -> None:
    c = Caller()
    c.send(Timeout())  # welcome: silence goes on to the main menu
    assert c.state.node == "main"
    c.send(Timeout())
    assert c.prompts() == ("input.none", "main.menu")
    c.send(Timeout())
    c.send(Timeout())
    assert isinstance(c.action, engine.Hangup) and c.prompts() == ("input.none", "goodbye")


def test_invalid_key_says_so() -> None:
    c = Caller()
    c.keys("1", "8")
    assert c.prompts() == ("input.invalid", "main.menu")


def test_english_option() -> None:
    c = Caller()
    c.keys("9")
    assert c.state.language == "en" and c.prompts() == ("main.menu",)


def test_card_loss_confirmation_and_cancel() -> None:
    c = Caller()
    identify(c, menu_keys=("1", "5", "2"))
    c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 3}))
    assert c.prompts() == ("id.ok", "card.lost.confirm")
    assert c.keys("1") == Query("card_lost", {"resident_id": 3})
    c.send(QueryDone("card_lost", QueryStatus.OK, {"status": "lost", "already": False}))
    assert c.prompts() == ("card.lost.done", "after.menu")
    c.keys("1", "5", "2")
    assert c.prompts() == ("card.lost.confirm",)  # already identified: no second ID entry
    c.keys("2")
    assert c.state.node == "card"


def test_hangup_at_any_point_ends_the_call() -> None:
    c = Caller()
    identify(c)
    assert c.send(HungUp()) is None
    assert c.notes[-1].detail == {"outcome": "caller_hangup"}
    assert c.send(Digits("1")) is None


def test_result_for_a_query_not_asked_is_refused() -> None:
    c = Caller()
    with pytest.raises(ValueError, match="awaiting"):
        c.send(QueryDone("pension", QueryStatus.OK, {}))


def test_contributions_list_and_empty_list() -> None:
    c = Caller()
    identify(c, menu_keys=("1", "1", "3"))
    c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 1}))
    items: list[dict[str, Any]] = [{"period": "2026-10", "pension_fen": 64960, "medical_fen": 14295}]
    c.send(QueryDone("contributions", QueryStatus.OK, {"items": items}))
    assert "q.contrib.intro" in c.prompts() and "unit.month_of_year" in c.prompts()
    c.keys("1", "1", "3")
    c.send(QueryDone("contributions", QueryStatus.OK, {"items": []}))
    assert c.prompts() == ("q.none", "after.menu")
