"""The sick-bind state machine: when a bind that answers is given up, and what clears it."""

from __future__ import annotations

import doctest

import pytest

from core.settings import SmppSettings
from sms import bind_health
from sms.bind_health import BindHealth, LinkState, Sick
from sms.smpp_link import Backoff
from sms.status import ESME_RINVDSTADR, ESME_RMSGQFUL, ESME_ROK, ESME_RSYSERR, ESME_RTHROTTLED


def test_the_doctest() -> None:
    assert doctest.testmod(bind_health).failed == 0


def bound(refusals: int = 50, after_s: float = 30.0) -> BindHealth:
    health = BindHealth(refusals, after_s)
    health.bound(0.0)
    return health


def test_refusals_in_a_row_make_it_sick_once() -> None:
    health = bound(refusals=50)
    verdicts = [health.answered(ESME_RMSGQFUL, 0.1 * i) for i in range(1, 51)]
    assert verdicts[:49] == [None] * 49
    assert verdicts[49] == Sick(50, pytest.approx(4.9), ESME_RMSGQFUL)
    assert health.state is LinkState.REBINDING and health.sick_binds == 1
    assert health.answered(ESME_RMSGQFUL, 6.0) is None  # a late answer on the bind given up


def test_refusing_for_long_enough_makes_it_sick_with_few_submits() -> None:
    """One submit a second (the throttle pause after each 0x14): 30 s come before 50 refusals."""
    health = bound(refusals=50, after_s=30.0)
    verdicts = [health.answered(ESME_RMSGQFUL, 1.0 + t) for t in range(31)]
    assert verdicts[:30] == [None] * 30
    assert verdicts[30] == Sick(31, 30.0, ESME_RMSGQFUL)


def test_one_accepted_submit_clears_the_run() -> None:
    health = bound(refusals=3)
    assert health.answered(ESME_RMSGQFUL, 1.0) is None
    assert health.answered(ESME_RSYSERR, 2.0) is None
    assert health.state is LinkState.REFUSING
    assert health.answered(ESME_ROK, 3.0) is None
    assert health.state is LinkState.BOUND and health.refused == 0
    assert health.answered(ESME_RMSGQFUL, 4.0) is None
    assert health.answered(ESME_RMSGQFUL, 5.0) is None
    assert health.answered(ESME_RMSGQFUL, 6.0) == Sick(3, 2.0, ESME_RMSGQFUL)


def test_throttled_is_its_own_state_and_counts_toward_sickness() -> None:
    health = bound(refusals=2)
    assert health.answered(ESME_RTHROTTLED, 1.0) is None
    assert health.state is LinkState.THROTTLED and health.since == 1.0
    assert health.answered(ESME_RTHROTTLED, 2.0) == Sick(2, 1.0, ESME_RTHROTTLED)


def test_a_permanent_error_judges_the_message_not_the_bind() -> None:
    health = bound(refusals=2)
    assert health.answered(ESME_RMSGQFUL, 1.0) is None
    assert health.answered(ESME_RINVDSTADR, 2.0) is None  # neither counts nor clears
    assert health.refused == 1 and health.state is LinkState.REFUSING
    assert health.answered(ESME_RMSGQFUL, 3.0) is not None


def test_a_new_bind_starts_clean_and_states_keep_their_since() -> None:
    health = bound(refusals=2)
    health.answered(ESME_RMSGQFUL, 1.0)
    health.answered(ESME_RMSGQFUL, 2.0)
    assert health.state is LinkState.REBINDING and health.since == 2.0
    health.lost(3.0)  # still rebinding: since unchanged
    assert health.since == 2.0
    health.bound(4.0)
    assert (health.state, health.since, health.refused) == (LinkState.BOUND, 4.0, 0)
    assert health.answered(ESME_RMSGQFUL, 5.0) is None  # one of two: not sick yet
    health.stopped(6.0)
    assert health.state is LinkState.STOPPED and health.answered(ESME_RMSGQFUL, 7.0) is None


def test_the_sick_reason_says_how_many_over_how_long() -> None:
    text = str(Sick(50, 12.34, ESME_RMSGQFUL))
    assert text == "50 submit_sm refused in a row over 12.3 s, nothing accepted"


def test_the_smsc_addresses_in_the_order_they_are_tried() -> None:
    settings = SmppSettings(host="10.0.0.1", port=2775, fallbacks=("10.0.0.2:2776", "smsc-b.example"))
    assert settings.addresses() == [("10.0.0.1", 2775), ("10.0.0.2", 2776), ("smsc-b.example", 2775)]
    with pytest.raises(ValueError, match="expected host:port"):
        SmppSettings(fallbacks=("10.0.0.2:port",))


def test_binds_that_take_nothing_back_off_like_binds_that_fail() -> None:
    backoff = Backoff(1.0, 8.0)
    backoff.reset()  # bound
    backoff.escalate()  # sick before it accepted anything
    assert backoff.next_delay() == 2.0
    backoff.reset()  # bound again (aiosmpplib resets after each bind)
    backoff.escalate()  # sick again at once
    assert backoff.next_delay() == 4.0
    backoff.relax()  # a bind took a segment
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_the_accepted_count_of_a_bind() -> None:
    health = bound(refusals=3)
    health.answered(ESME_ROK, 1.0)
    assert health.accepted == 1
    health.bound(2.0)
    assert health.accepted == 0
