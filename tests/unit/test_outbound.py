"""Calls out for callbacks, without Asterisk: the carrier's number form, the Originate, the
events that tell the outcome, and the globals the dialplan counts and dials with."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.destinations import DestinationRefused, DestinationSettings
from core.phones import BadPhoneNumber
from core.settings import Settings
from core.sip_settings import SipSettings, SipTrunk
from core.states import DialState
from ivr import dialplan
from ivr.errors import NoOutboundTrunk
from ivr.outbound import DialOutcome, dial_number, dial_state, originate_action, outcome_of
from ivr.pjsip_config import outbound_globals


def _sip(dial_format: str = "national", *, outbound: bool = True, **more: object) -> SipSettings:
    trunk = {"name": "carrier", "match": ["10.1.1.1"], "host": "10.1.1.1", "outbound": outbound}
    return SipSettings.model_validate({"trunks": [{**trunk, "dial_format": dial_format}], **more})


def _settings(sip: SipSettings, **destinations: object) -> Settings:
    return Settings(sip=sip, destinations=DestinationSettings.model_validate(destinations))


@pytest.mark.parametrize(
    ("stored", "national", "e164"),
    [
        ("13812345678", "13812345678", "+8613812345678"),
        ("+86 138-1234-5678", "13812345678", "+8613812345678"),
        ("05712234567", "05712234567", "+865712234567"),
        ("+442079460000", "+442079460000", "+442079460000"),  # abroad stays E.164 in both, if allowed
    ],
)
def test_the_number_goes_out_in_the_carriers_form(stored: str, national: str, e164: str) -> None:
    assert dial_number(stored, _settings(_sip("national"), allow=["+44"])) == national
    assert dial_number(stored, _settings(_sip("e164"), allow=["+44"])) == e164


def test_no_outbound_trunk_and_no_number_are_refused_before_dialing() -> None:
    with pytest.raises(NoOutboundTrunk):
        dial_number("13812345678", _settings(_sip(outbound=False)))
    with pytest.raises(NoOutboundTrunk):
        dial_number("13812345678", _settings(SipSettings()))
    with pytest.raises(BadPhoneNumber):
        dial_number("anonymous", _settings(_sip()))


@pytest.mark.parametrize("number", ["+8821612345678", "008821612345678", "+447700900123", "95105555", "4008123123"])
def test_a_number_the_destination_policy_refuses_is_never_dialled(number: str) -> None:
    with pytest.raises(DestinationRefused, match="may not be called or texted"):
        dial_number(number, _settings(_sip("e164")))
    with pytest.raises(BadPhoneNumber, match="not a phone number"):
        dial_number("95588", _settings(_sip("e164")))  # too short to be any number


def test_a_trunk_knows_only_the_two_dial_forms() -> None:
    with pytest.raises(ValidationError):
        SipTrunk.model_validate({"name": "c", "match": ["10.1.1.1"], "dial_format": "86-prefixed"})


def test_dial_statuses_and_our_refusals_become_callback_states() -> None:
    assert dial_state("ANSWER") is DialState.ANSWERED
    assert dial_state("BUSY") is DialState.BUSY
    assert dial_state("NOANSWER") is DialState.NO_ANSWER
    assert dial_state(dialplan.OUTCOME_LINES_FULL) is DialState.LINES_FULL
    for other in ("CONGESTION", "CHANUNAVAIL", "CANCEL", dialplan.OUTCOME_NO_TRUNK, ""):
        assert dial_state(other) is DialState.FAILED


def test_the_originate_rings_the_agent_into_the_outbound_context_with_the_callback_id() -> None:
    action = originate_action("PJSIP/1001", "13812345678", 42)
    assert action["Channel"] == "PJSIP/1001"
    assert (action["Context"], action["Exten"], action["Priority"]) == (dialplan.CTX_OUTBOUND, "13812345678", "1")
    assert action["Async"] == "true"
    assert action["Variable"] == [f"{dialplan.VAR_CALLBACK_ID}=42"]
    assert action["ActionID"] == "hotline-callback-42"
    str(action).encode("ascii")  # AMI goes out as ASCII


def test_events_that_tell_an_outcome() -> None:
    user_event = {"Event": "UserEvent", "UserEvent": dialplan.USEREVENT_CALLBACK_DIAL}
    assert outcome_of({**user_event, "CallbackId": "9", "DialStatus": "LINESFULL"}) == DialOutcome(
        9, DialState.LINES_FULL, "LINESFULL"
    )
    assert outcome_of({**user_event, "CallbackId": "9", "DialStatus": ""}) == DialOutcome(9, DialState.FAILED, "none")
    failed = {"Event": "OriginateResponse", "Response": "Failure", "ActionID": "hotline-callback-9", "Reason": "5"}
    assert outcome_of(failed) == DialOutcome(9, DialState.FAILED, "agent_busy")
    # Not ours, not an outcome, or not a callback id: nothing to record.
    assert outcome_of({**failed, "ActionID": "action/abc/1/2"}) is None
    assert outcome_of({**failed, "Response": "Success"}) is None
    assert outcome_of({**user_event, "CallbackId": "x", "DialStatus": "BUSY"}) is None
    assert outcome_of({"Event": "UserEvent", "UserEvent": dialplan.USEREVENT_QUEUE_EXIT}) is None


def test_the_globals_name_the_outbound_trunk_and_the_limit() -> None:
    rendered = outbound_globals(_sip(outbound_channels=4, hotline_number="057112333", caller_id_name="社保12333"))
    assert rendered == {
        dialplan.GLOBAL_OUTBOUND_TRUNK: "trunk-carrier",
        dialplan.GLOBAL_OUTBOUND_LIMIT: "4",
        dialplan.GLOBAL_OUTBOUND_RING_S: "40",
        dialplan.GLOBAL_HOTLINE_NUMBER: "057112333",
        dialplan.GLOBAL_CALLER_ID_NAME: "社保12333",
    }
    # No trunk marked outbound: the dialplan refuses every call out.
    assert outbound_globals(_sip(outbound=False))[dialplan.GLOBAL_OUTBOUND_TRUNK] == ""
