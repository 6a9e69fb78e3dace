"""A caller who keys when the IVR asks, not on a fixed clock.

The scripted caller's `W` pauses key at set times, so on a loaded machine a key can come
before its prompt (and be lost) or a wait can run short. Here the call is placed silent
(the script only answers and stays on the line), and each key is pressed through AMI,
`PlayDTMF` with `Receive` (app_senddtmf: "emulate receiving DTMF on this channel"), as if
the caller's phone had sent it, once the caller has heard what it answers: the call's
trail shows the IVR asking at a node, or Asterisk shows the caller's channel in the
queue entry's or the survey's script. Where the script begins before its question (a
key pressed before Asterisk listens is dropped), the key is pressed again until what it
does is seen.

SIPp's callers (tests/sip_peers) cannot do this: a SIPp scenario sends its RFC 4733
events from a pcap at points fixed in the scenario (`<nop><action><exec play_pcap_audio>`
after a `<pause>`), and SIPp does not look at the media it receives, so the only thing it
can wait for is a SIP message, and the IVR sends none when a prompt has played.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import select

from core.db import Store
from core.models import Call, CallStep
from core.settings import Settings
from ivr.ami_client import AmiSession
from ivr.caller import place_call
from tests.waiting import until

# Long enough for any scripted conversation: the caller hangs up when the test says so, or
# the IVR, the agent or the survey ends the call first.
STAY_S = 120
PRESS_AGAIN_S = 0.5  # a key pressed before the IVR listens is lost: pressed again until taken
# The caller's keying pace within one entry (an ID number): SendDTMF's own 250 ms between
# digits (app_senddtmf docs), so each digit ends before the next begins.
BETWEEN_DIGITS_S = 0.25


@dataclass(frozen=True)
class Press:
    """Press `digits` once `heard()` is true. With `until`, press them again every
    PRESS_AGAIN_S until `until()` is true: for an ask whose start the caller can only
    approach (the survey begins some moments after the agent hangs up, and a key pressed
    before it listens is dropped by Asterisk)."""

    digits: str
    heard: Callable[[], object]  # may return an awaitable
    what: str
    until: Callable[[], object] | None = None


def call_of(store: Store, uniqueid: str) -> Call | None:
    with store.session() as s:
        return s.scalar(select(Call).where(Call.asterisk_uniqueid == uniqueid))


def asking_at(store: Store, uniqueid: str, node: str) -> Callable[[], bool]:
    """The call's trail has the IVR's prompt at `node`: it is asking there."""

    def check() -> bool:
        with store.session() as s:
            step = s.scalar(
                select(CallStep.id)
                .join(Call, Call.id == CallStep.call_id)
                .where(Call.asterisk_uniqueid == uniqueid, CallStep.kind == "prompt", CallStep.node == node)
                .limit(1)
            )
        return step is not None

    return check


async def _channel(ami: AmiSession, uniqueid: str) -> str:
    messages = await ami.send({"Action": "Status"})
    return next(
        (str(m["Channel"]) for m in messages if m.get("Event") == "Status" and m.get("Uniqueid") == uniqueid), ""
    )


async def _key(ami: AmiSession, channel: str, digits: str) -> None:
    for n, digit in enumerate(digits):
        if n:
            await asyncio.sleep(BETWEEN_DIGITS_S)
        # as_list=False: the answer "DTMF successfully queued" reads to panoramisk as an
        # asynchronous Originate's, and it would look for the action's Async header.
        action = {"Action": "PlayDTMF", "Channel": channel, "Digit": digit, "Duration": "120", "Receive": "yes"}
        (reply,) = await ami.send(action, as_list=False)
        assert reply.get("Response") == "Success", f"PlayDTMF {digit} on {channel}: {dict(reply)}"


async def keyed_call(settings: Settings, script: Callable[[str], list[Press]], *, limit_s: float = 60.0) -> str:
    """Dial 12333 as a silent caller and press each key of `script(uniqueid)` once the
    caller has heard its ask; returns the call's Asterisk uniqueid. The caller stays on the
    line afterwards (see `hang_up`), unless the IVR or the agent's side ends the call."""
    uniqueid = await place_call(settings, "", lead_s=0, tail_s=STAY_S)
    try:
        async with AmiSession(settings) as ami:
            channel = await until(lambda: _channel(ami, uniqueid), f"call {uniqueid}'s channel", 10)
            for press in script(uniqueid):
                await until(press.heard, f"call {uniqueid}: {press.what}", limit_s, every_s=0.1)
                await _key(ami, channel, press.digits)
                if press.until is not None:
                    await _press_until(ami, channel, press, limit_s)
    except BaseException:
        await hang_up(settings, uniqueid)  # a failed script leaves no caller waiting in the queue
        raise
    return uniqueid


async def _press_until(ami: AmiSession, channel: str, press: Press, limit_s: float) -> None:
    assert press.until is not None
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await _holds(press.until):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"pressed {press.digits} for {limit_s:g} s and it was never taken: {press.what}")
        await asyncio.sleep(PRESS_AGAIN_S)
        await _key(ami, channel, press.digits)


async def _holds(check: Callable[[], object]) -> bool:
    value = check()
    return bool(await value if inspect.isawaitable(value) else value)


def running_script(settings: Settings, uniqueid: str, script: str) -> Callable[[], Awaitable[bool]]:
    """The caller's channel runs that FastAGI script (AMI Status: Application AGI, its Data
    the script's URL): the survey or the queue entry has begun asking."""

    async def check() -> bool:
        async with AmiSession(settings) as ami:
            messages = await ami.send({"Action": "Status"})
        return any(
            m.get("Event") == "Status"
            and m.get("Uniqueid") == uniqueid
            and m.get("Application") == "AGI"
            and str(m.get("Data", "")).split(",")[0].endswith(f"/{script}")
            for m in messages
        )

    return check


def in_queue(settings: Settings, uniqueid: str) -> Callable[[], Awaitable[bool]]:
    """Asterisk has the call waiting in a queue (AMI QueueStatus lists it as a QueueEntry):
    the monitor writes the queue part to the store only once it is over."""

    async def check() -> bool:
        async with AmiSession(settings) as ami:
            messages = await ami.send({"Action": "QueueStatus"})
        return any(m.get("Event") == "QueueEntry" and m.get("Uniqueid") == uniqueid for m in messages)

    return check


async def hang_up(settings: Settings, uniqueid: str) -> None:
    """The caller hangs up (its line, as a phone put down would)."""
    async with AmiSession(settings) as ami:
        channel = await _channel(ami, uniqueid)
        if channel:
            await ami.send({"Action": "Hangup", "Channel": channel})
            await ami.wait_hangup(uniqueid, 20)
