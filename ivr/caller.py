"""The scripted test caller: an AMI Originate that dials 12333 and keys in digits.

Originate of `Local/s@hotline-caller-script` into hotline-12333,12333,1 makes a Local
channel pair. Its `;1` half is connected to the 12333 dialplan: it is the caller the
FastAGI server sees (agi_uniqueid) and the Uniqueid that OriginateResponse reports.
Its `;2` half runs the caller script (Answer, Wait, SendDTMF, Wait, Hangup); the digits
it sends arrive on `;1` as received DTMF. No `/n` is needed: neither half is ever bridged,
so the Local pair is never optimized away (and the queue leg keeps it anyway).
"""

from __future__ import annotations

import logging
import re
from typing import Final

from core.settings import Settings
from ivr.ami_client import ACTION_TIMEOUT_S, AmiSession
from ivr.dialplan import (
    CTX_CALLER_SCRIPT,
    CTX_ENTRY,
    EXTEN_HOTLINE,
    EXTEN_START,
    VAR_CALLER_DTMF,
    VAR_CALLER_DTMF_AFTER,
    VAR_CALLER_LEAD,
    VAR_CALLER_SPEAK,
    VAR_CALLER_TAIL,
)
from ivr.errors import InvalidDtmf, OriginateFailed

logger = logging.getLogger(__name__)

CALLER_CHANNEL: Final = f"Local/{EXTEN_START}@{CTX_CALLER_SCRIPT}"
DEFAULT_CALLER_ID: Final = "13800000000"
# SendDTMF (app_senddtmf docs): 0-9 * # A-D, w = 0.5 s pause, W = 1 s pause.
_DTMF: Final = re.compile(r"[0-9*#A-DwW]*")
_CALLER_ID: Final = re.compile(r"\+?[0-9]{1,31}")
# A sound in Asterisk's sounds directory, as Playback names it (no extension, no way out).
_SOUND: Final = re.compile(r"(?:[A-Za-z0-9_-][A-Za-z0-9._-]*/)*[A-Za-z0-9_-][A-Za-z0-9._-]*")
_ANSWER_TIMEOUT_S: Final = 30.0  # the script answers at once; this bounds a stuck Originate


class ScriptedCaller(AmiSession):
    """An AMI session that also dials 12333 as a scripted caller:
    `async with ScriptedCaller(settings) as ami: uid = await ami.originate_caller("1#")`."""

    async def originate_caller(
        self,
        dtmf: str,
        *,
        lead_s: float = 1,
        tail_s: float = 5,
        caller_id: str = DEFAULT_CALLER_ID,
        speak: str = "",
        then: str = "",
    ) -> str:
        """Call 12333 as a scripted caller; return the Uniqueid of the channel in hotline-12333.
        With `speak` the caller plays that sound after `dtmf`, then keys `then`."""
        check_caller(dtmf, caller_id, speak, then)
        action = {
            "Action": "Originate",
            "Channel": CALLER_CHANNEL,
            "Context": CTX_ENTRY,
            "Exten": EXTEN_HOTLINE,
            "Priority": "1",
            "CallerID": caller_id,
            "Timeout": str(int(_ANSWER_TIMEOUT_S * 1000)),
            # Async: the response comes as an OriginateResponse event once the call is up.
            "Async": "true",
            "Variable": [
                f"{VAR_CALLER_DTMF}={dtmf}",
                f"{VAR_CALLER_LEAD}={lead_s:g}",
                f"{VAR_CALLER_TAIL}={tail_s:g}",
                f"{VAR_CALLER_SPEAK}={speak}",
                f"{VAR_CALLER_DTMF_AFTER}={then}",
            ],
        }
        final = (await self.send(action, _ANSWER_TIMEOUT_S + ACTION_TIMEOUT_S))[-1]
        if final.get("Event") != "OriginateResponse" or final.get("Response") != "Success":
            reason = final.get("Message") or f"reason {final.get('Reason')}"
            raise OriginateFailed(f"Originate {CALLER_CHANNEL} -> {EXTEN_HOTLINE}: {reason}")
        uniqueid = str(final["Uniqueid"])
        logger.info(
            "call %s: scripted caller %s dialed %s (%d DTMF chars)",
            uniqueid,
            caller_id,
            EXTEN_HOTLINE,
            len(dtmf),
        )
        return uniqueid


def check_caller(dtmf: str, caller_id: str, speak: str = "", then: str = "") -> None:
    """Refuse digits SendDTMF would not play, caller ids that are not phone numbers, and a
    sound name Playback would not take as one file."""
    if speak and (not _SOUND.fullmatch(speak) or ".." in speak):
        raise InvalidDtmf(f"not a sound name: {speak[:40]!r}")
    if not _DTMF.fullmatch(dtmf) or not _DTMF.fullmatch(then):
        raise InvalidDtmf(f"DTMF may hold 0-9 * # A-D and the pauses w W only (got {len(dtmf)} chars)")
    if not _CALLER_ID.fullmatch(caller_id):
        raise OriginateFailed(f"caller id {caller_id!r} is not a phone number")


async def place_call(
    settings: Settings,
    dtmf: str,
    *,
    lead_s: float = 1,
    tail_s: float = 5,
    caller_id: str = DEFAULT_CALLER_ID,
    speak: str = "",
    then: str = "",
) -> str:
    """Dial 12333 as a scripted caller who waits `lead_s`, keys `dtmf`, (plays `speak` and keys
    `then`,) stays `tail_s`, hangs up.

    Returns the Uniqueid of the 12333 channel (the FastAGI session's agi_uniqueid).
    """
    check_caller(dtmf, caller_id, speak, then)  # before connecting: a typo is not an AMI problem
    async with ScriptedCaller(settings) as ami:
        return await ami.originate_caller(
            dtmf, lead_s=lead_s, tail_s=tail_s, caller_id=caller_id, speak=speak, then=then
        )


async def wait_hung_up(settings: Settings, uniqueid: str, *, timeout_s: float = 60.0) -> None:
    """Return once the channel with that Uniqueid is gone; CallTimeout if it outlives `timeout_s`."""
    async with AmiSession(settings) as ami:
        # Listen first, then look: a hangup between place_call and now is not missed.
        if not await ami.channel_exists(uniqueid):
            return
        await ami.wait_hangup(uniqueid, timeout_s)
