"""A call from a number on the nuisance list, through the flow engine: the treatment at the
start, self-service with ID and PIN as before, and no way to an agent."""

from __future__ import annotations

import doctest
import json

import pytest

from core import blocked_callers
from ivr import blocked_flow, engine
from ivr.engine import Collect, Hangup, Query, QueryDone, QueryStatus, Start, Timeout, Transfer
from tests.unit.test_engine import CAT, MENU, Caller, identify


class BlockedCaller(Caller):
    def __init__(self, treatment: str) -> None:
        step = engine.step(MENU, None, Start(blocked=treatment))
        self.saved = json.dumps(step.state.to_json())
        self.action = step.action
        self.notes = list(step.notes)


def test_the_prompts_are_in_the_catalogue_in_both_languages() -> None:
    for pid in blocked_flow.PROMPTS:
        assert CAT.has(pid, "zh") and CAT.has(pid, "en"), pid


def test_hang_up_treatment_says_so_and_ends_the_call() -> None:
    c = BlockedCaller("hang_up")
    assert c.action == Hangup(("caller.blocked_end",))
    assert c.state.finished
    assert [(n.kind, dict(n.detail)) for n in c.notes] == [
        ("blocked", {"treatment": "hang_up"}),
        ("outcome", {"outcome": "blocked"}),
    ]


def test_self_service_still_needs_id_and_pin_and_answers() -> None:
    c = BlockedCaller("self_service")
    assert c.prompts() == ("caller.blocked", "welcome")
    action = identify(c)  # the ID number and PIN are asked exactly as for anyone
    assert action.args["pin"] == "123456"
    assert c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 7})) == Query("pension", {"resident_id": 7})
    c.send(QueryDone("pension", QueryStatus.OK, {"balance_fen": 100, "months": 1}))
    assert c.prompts()[-1] == "after.menu"


def test_a_wrong_pin_is_refused_for_a_blocked_caller_too() -> None:
    c = BlockedCaller("self_service")
    identify(c)
    c.send(QueryDone("identify", QueryStatus.WRONG_PIN, {"failures": 1}))
    assert isinstance(c.action, Collect) and c.prompts()[0] == "id.failed"
    assert c.state.resident_id is None


def test_every_way_to_an_agent_is_refused_then_the_call_ends() -> None:
    c = BlockedCaller("self_service")
    c.send(Timeout())  # welcome -> main menu
    assert c.prompts() == ("main.menu",)
    c.keys("0")  # an agent, from the main menu
    assert c.prompts() == ("caller.no_agent", "welcome")
    c.send(Timeout())  # welcome -> main menu
    c.keys("1", "0")  # from a sub-menu
    assert c.prompts() == ("caller.no_agent", "welcome")
    assert not any(isinstance(a, Transfer) for a in [c.action])
    c.send(Timeout())
    c.keys("3", "2")  # labour relations: a complaint goes to its own queue
    assert c.action == Hangup(("caller.no_agent", "goodbye"))
    assert c.state.finished
    refused = [dict(n.detail) for n in c.notes if n.kind == "blocked" and "refused" in n.detail]
    assert refused == [
        {"queue": "hotline-12333", "refused": 1},
        {"queue": "hotline-12333", "refused": 2},
        {"queue": "hotline-labour", "refused": 3},
    ]


def test_business_system_down_does_not_put_a_blocked_caller_through() -> None:
    c = BlockedCaller("self_service")
    identify(c)
    c.send(QueryDone("identify", QueryStatus.UNAVAILABLE))
    assert c.prompts() == ("caller.no_agent", "welcome")


def test_an_unknown_treatment_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown treatment"):
        engine.step(MENU, None, Start(blocked="shout"))


def test_unblocked_callers_are_untouched() -> None:
    c = Caller()
    c.send(Timeout())
    c.keys("0")
    assert isinstance(c.action, Transfer) and c.action.queue == "hotline-12333"


def test_number_forms_doctest() -> None:
    assert doctest.testmod(blocked_callers).failed == 0
