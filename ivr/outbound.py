"""Callbacks as calls out: the agent's phone rings first, then the resident's, through the
trunk marked outbound.

The platform places the call with an AMI Originate of the agent's own interface, connected
once the agent answers to `hotline-outbound` with the resident's number (in the form the
carrier wants) as the extension and the callback's id in HOTLINE_CALLBACK_ID. The dialplan
counts calls out against `sip.outbound_channels`, sends the hotline's caller ID and dials the
trunk; when the call ends it raises the UserEvent HotlineCallbackDial with Asterisk's
DIALSTATUS, which the AMI monitor records on the callback. If the agent's own phone never
answers, the OriginateResponse event (Response: Failure, carrying our ActionID) says so.

The Originate is sent Async and its first reply ("Originate successfully queued") is all
we wait for (panoramisk would otherwise wait for the OriginateResponse, up to the agent's
ring time): the desk request returns at once and the outcome follows on the desk's stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import exists, select, update
from sqlalchemy.orm import aliased

from core.calls_out import take_dial
from core.db import Store
from core.destinations import DestinationPolicy
from core.masking import mask_phone
from core.models import Agent, Callback, utcnow
from core.phones import national, to_e164
from core.settings import Settings
from core.states import DialState
from ivr.ami_client import AnyNodeSession
from ivr.dialplan import (
    CTX_OUTBOUND,
    OUTCOME_LINES_FULL,
    USEREVENT_CALLBACK_DIAL,
    VAR_CALLBACK_ID,
)
from ivr.errors import CallbackCallInProgress, NoOutboundTrunk, OriginateFailed

log = logging.getLogger(__name__)

# Our ActionID of a callback's Originate: the OriginateResponse event carries it back.
ACTION_PREFIX: Final = "hotline-callback-"
# How long the agent's own phone rings before the call out is given up.
AGENT_RING_S: Final = 30
# A call out still `dialing` after this long lost its outcome (the AMI monitor was down
# when it ended): it no longer keeps the agent from placing another.
STALE_AFTER: Final = dt.timedelta(hours=1)

# DIALSTATUS of Dial() (app_dial docs) and our own refusals, as the callback records them.
_DIAL_STATES: Final = {
    "ANSWER": DialState.ANSWERED,
    "BUSY": DialState.BUSY,
    "NOANSWER": DialState.NO_ANSWER,
    OUTCOME_LINES_FULL: DialState.LINES_FULL,
}
# OriginateResponse Reason: the last control frame of the agent's leg (AST_CONTROL_*).
_AGENT_REASONS: Final = {"0": "agent_unreachable", "1": "agent_hangup", "3": "agent_no_answer", "5": "agent_busy"}


@dataclass(frozen=True)
class DialOutcome:
    callback_id: int
    state: DialState
    detail: str  # Asterisk's word: DIALSTATUS, LINESFULL, NOTRUNK or the agent leg's reason


def dial_number(number: str, settings: Settings) -> str:
    """The resident's number as the outbound trunk's carrier wants it in the Request-URI,
    once the destination policy allows it (DestinationRefused names the rule if not): the
    last check before any call out, callbacks' and notices' alike.

    >>> from core.sip_settings import SipSettings, SipTrunk
    >>> trunk = SipTrunk(name="c", match=("10.0.0.1",), host="10.0.0.1", outbound=True)
    >>> dial_number("+86 138 1234 5678", Settings(sip=SipSettings(trunks=(trunk,))))
    '13812345678'
    >>> e164 = trunk.model_copy(update={"dial_format": "e164"})
    >>> dial_number("0571-2234567", Settings(sip=SipSettings(trunks=(e164,))))
    '+865712234567'
    >>> dial_number("+882 16 1234 5678", Settings(sip=SipSettings(trunks=(trunk,))))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    core.destinations.DestinationRefused: +88*******5678 may not be called or texted: an international number...
    """
    sip = settings.sip
    trunk = sip.outbound_trunk()
    if trunk is None:
        raise NoOutboundTrunk("no outbound trunk is configured ([[sip.trunks]] with outbound = true)")
    DestinationPolicy(settings.destinations, sip.country_code).check(number)
    e164 = to_e164(number, sip.country_code)
    return e164 if trunk.dial_format == "e164" else national(e164, sip.country_code)


def dial_state(dialstatus: str) -> DialState:
    """DIALSTATUS (or our refusal) to the callback's state; CONGESTION, CHANUNAVAIL, CANCEL
    (the agent hung up first), NOTRUNK and anything else are failures."""
    return _DIAL_STATES.get(dialstatus, DialState.FAILED)


def originate_action(interface: str, exten: str, callback_id: int) -> dict[str, Any]:
    return {
        "Action": "Originate",
        "ActionID": f"{ACTION_PREFIX}{callback_id}",
        "Channel": interface,
        "Context": CTX_OUTBOUND,
        "Exten": exten,
        "Priority": "1",
        # What the agent's phone shows (ASCII: AMI is sent so); the resident sees the hotline.
        "CallerID": f"Callback <{exten}>",
        "Timeout": str(AGENT_RING_S * 1000),
        "Async": "true",
        "Variable": [f"{VAR_CALLBACK_ID}={callback_id}"],
    }


def outcome_of(msg: dict[str, str]) -> DialOutcome | None:
    """The callback outcome an AMI event tells, if it tells one.

    >>> outcome_of({"Event": "UserEvent", "UserEvent": "HotlineCallbackDial", "CallbackId": "7", "DialStatus": "BUSY"})
    DialOutcome(callback_id=7, state=<DialState.BUSY: 'busy'>, detail='BUSY')
    >>> failed = {"Response": "Failure", "Reason": "3"}
    >>> outcome_of({"Event": "OriginateResponse", "ActionID": "hotline-callback-7", **failed})
    DialOutcome(callback_id=7, state=<DialState.FAILED: 'failed'>, detail='agent_no_answer')
    """
    event = msg.get("Event")
    if event == "UserEvent" and msg.get("UserEvent") == USEREVENT_CALLBACK_DIAL:
        raw, status = msg.get("CallbackId", ""), msg.get("DialStatus", "")
        if raw.isdigit():
            return DialOutcome(int(raw), dial_state(status), (status or "none")[:32])
    elif event == "OriginateResponse" and msg.get("Response") == "Failure":
        raw = msg.get("ActionID", "").removeprefix(ACTION_PREFIX)
        if msg.get("ActionID", "").startswith(ACTION_PREFIX) and raw.isdigit():
            reason = msg.get("Reason", "")
            return DialOutcome(int(raw), DialState.FAILED, _AGENT_REASONS.get(reason, f"agent_reason_{reason}")[:32])
    return None


def start_dial(store: Store, agent_id: str, callback_id: int, now: dt.datetime | None = None) -> bool:
    """Mark the agent's taken callback `dialing`, unless the agent has a call out under way
    (CallbackCallInProgress). False if the callback is not taken by this agent."""
    now = now or utcnow()
    fresh = now - STALE_AFTER
    other = aliased(Callback)
    busy = exists().where(other.agent_id == agent_id, other.dial_state == DialState.DIALING, other.dialed_at > fresh)
    with store.session() as s:
        # The agent's row serialises two desks of one agent on PostgreSQL (SQLite writes one at a time).
        s.execute(select(Agent.id).where(Agent.id == agent_id).with_for_update())
        if s.scalar(select(busy)):
            raise CallbackCallInProgress(f"agent {agent_id} already has a callback call under way")
        placed = s.execute(
            update(Callback)
            .where(Callback.id == callback_id, Callback.status == "taken", Callback.agent_id == agent_id)
            .values(dial_state=DialState.DIALING, dial_detail="", dialed_at=now)
        ).rowcount  # type: ignore[attr-defined]
    return bool(placed)


def record_outcome(store: Store, outcome: DialOutcome) -> bool:
    """Write how the call out ended on its callback, if it is still `dialing`."""
    with store.session() as s:
        done = s.execute(
            update(Callback)
            .where(Callback.id == outcome.callback_id, Callback.dial_state == DialState.DIALING)
            .values(dial_state=outcome.state, dial_detail=outcome.detail)
        ).rowcount  # type: ignore[attr-defined]
    if done:
        log.info("callback %d: call out %s (%s)", outcome.callback_id, outcome.state, outcome.detail)
    else:
        log.warning("callback %d: outcome %s for no call out under way", outcome.callback_id, outcome.detail)
    return bool(done)


async def originate(settings: Settings, store: Store, interface: str, callback_id: int, number: str) -> None:
    """Ring the agent's `interface`; once answered, dial `number` out (see the module doc).
    DestinationRefused or DialCapped (core.calls_out) before anything rings if it may not."""
    exten = dial_number(number, settings)
    await asyncio.to_thread(take_dial, store, settings.destinations, number, "callback", callback_id)
    async with AnyNodeSession(settings) as ami:
        reply = (await ami.send(originate_action(interface, exten, callback_id), as_list=False))[0]
    if reply.get("Response") != "Success":
        raise OriginateFailed(f"callback {callback_id}: Asterisk refused the call out: {reply.get('Message')}")
    log.info("callback %d: ringing %s, then %s out", callback_id, interface, mask_phone(exten))
