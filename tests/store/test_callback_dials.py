"""A callback's call out in the store: one at a time per agent, and its outcome written once."""

from __future__ import annotations

import datetime as dt

import pytest

from core.db import Store
from core.models import Callback, utcnow
from core.states import DialState
from ivr.errors import CallbackCallInProgress
from ivr.outbound import STALE_AFTER, DialOutcome, record_outcome, start_dial


def _taken(store: Store, agent: str, n: int) -> int:
    with store.session() as s:
        cb = Callback(call_id=f"c-{agent}-{n}", number="13812345678", queue="q", reason="long_wait")
        cb.status, cb.agent_id = "taken", agent
        s.add(cb)
        s.flush()
        return cb.id


def _state(store: Store, callback_id: int) -> tuple[str | None, str]:
    with store.session() as s:
        cb = s.get(Callback, callback_id)
        assert cb is not None
        return cb.dial_state, cb.dial_detail


def test_an_agent_places_one_callback_call_at_a_time(store: Store) -> None:
    first, second, theirs = _taken(store, "1001", 1), _taken(store, "1001", 2), _taken(store, "1002", 1)
    assert start_dial(store, "1001", first)
    with pytest.raises(CallbackCallInProgress):
        start_dial(store, "1001", second)
    assert not start_dial(store, "1002", second)  # not their callback
    assert start_dial(store, "1002", theirs)  # another agent is not held up
    assert record_outcome(store, DialOutcome(first, DialState.BUSY, "BUSY"))
    assert start_dial(store, "1001", second)
    assert _state(store, second) == ("dialing", "")


def test_an_outcome_is_written_once_and_only_on_a_call_under_way(store: Store) -> None:
    cb = _taken(store, "1001", 1)
    assert not record_outcome(store, DialOutcome(cb, DialState.ANSWERED, "ANSWER"))  # never dialed
    start_dial(store, "1001", cb)
    assert record_outcome(store, DialOutcome(cb, DialState.ANSWERED, "ANSWER"))
    assert not record_outcome(store, DialOutcome(cb, DialState.FAILED, "CANCEL"))  # a late second word
    assert _state(store, cb) == ("answered", "ANSWER")


def test_a_call_out_whose_outcome_was_lost_no_longer_holds_the_agent(store: Store) -> None:
    lost, next_one = _taken(store, "1001", 1), _taken(store, "1001", 2)
    start_dial(store, "1001", lost, now=utcnow() - STALE_AFTER - dt.timedelta(minutes=1))
    assert start_dial(store, "1001", next_one)
