"""The scripted test caller: an AMI Originate that dials 12333 and keys in digits.

Originate of `Local/s@hotline-caller-script` into hotline-12333,12333,1 makes a Local
channel pair. Its `;1` half is connected to the 12333 dialplan: it is the caller the
FastAGI server sees (agi_uniqueid) and the Uniqueid that OriginateResponse reports.
Its `;2` half runs the caller script (Answer, Wait, SendDTMF, Wait, Hangup); the digits
it sends arrive on `;1` as received DTMF. No `/n` is needed: neither half is ever bridged,
so the Local pair is never optimized away (and the queue leg keeps it anyway).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from core.settings import Settings
from ivr.dialplan import (
    CTX_CALLER_SCRIPT,
    CTX_ENTRY,
    EXTEN_HOTLINE,
    EXTEN_START,
    VAR_CALLER_DTMF,
    VAR_CALLER_LEAD,
    VAR_CALLER_TAIL,
)
from ivr.errors import AmiLoginRefused, AmiUnavailable, CallTimeout, InvalidDtmf, OriginateFailed

logger = logging.getLogger(__name__)

CALLER_CHANNEL: Final = f"Local/{EXTEN_START}@{CTX_CALLER_SCRIPT}"
DEFAULT_CALLER_ID: Final = "13800000000"
# SendDTMF (app_senddtmf docs): 0-9 * # A-D, w = 0.5 s pause, W = 1 s pause.
_DTMF: Final = re.compile(r"[0-9*#A-DwW]*")
_CALLER_ID: Final = re.compile(r"\+?[0-9]{1,31}")
_CONNECT_TIMEOUT_S: Final = 5.0
_ACTION_TIMEOUT_S: Final = 10.0
_ANSWER_TIMEOUT_S: Final = 30.0  # the script answers at once; this bounds a stuck Originate


@dataclass(frozen=True)
class Hangup:
    uniqueid: str
    channel: str
    cause: int  # Q.850 cause code; 16 is a normal clearing
    cause_txt: str


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager without its endless reconnect: a lost link fails the session."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        if not self.lost.done():
            self.lost.set_exception(AmiUnavailable(f"AMI connection lost: {exc}"))


class AmiSession:
    """One logged-in AMI connection that records every Hangup from the moment it opens.

    Use it when the call and the wait for its end must not race:
    `async with AmiSession(settings) as ami: uid = await ami.originate_caller("1#")`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._manager: _Manager | None = None
        self._hangups: dict[str, Hangup] = {}
        self._waiters: dict[str, asyncio.Future[Hangup]] = {}

    async def __aenter__(self) -> AmiSession:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def open(self) -> None:
        ami = self.settings.ami
        loop = asyncio.get_running_loop()
        credentials = {"username": ami.user, "secret": ami.secret}
        manager = _Manager(host=ami.host, port=ami.port, events="on", loop=loop, **credentials)
        manager.register_event("Hangup", self._on_hangup)
        try:
            connection = await asyncio.wait_for(
                loop.create_connection(AMIProtocol, ami.host, ami.port), _CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as exc:
            raise AmiUnavailable(f"AMI {ami.host}:{ami.port}: {exc or 'timeout'}") from exc
        # Hand panoramisk the open connection: it sends Login and wires its protocol.
        # (Its own connect() would retry forever in the background on failure.)
        opened: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        opened.set_result(connection)
        manager.connection_made(opened)
        self._manager = manager
        try:
            login = await self._wait(manager.authenticated_future)
            if not login.success:
                raise AmiLoginRefused(f"AMI {ami.host}:{ami.port} refused user {ami.user!r}: {login.message}")
        except TimeoutError as exc:
            self.close()
            raise AmiUnavailable(f"AMI {ami.host}:{ami.port} gave no answer to Login") from exc
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            if self._manager.lost.done():
                self._manager.lost.exception()  # retrieved: no "never retrieved" noise at exit
            self._manager = None
        for waiter in self._waiters.values():
            waiter.cancel()
        self._waiters.clear()

    async def send(
        self, action: dict[str, Any], timeout_s: float = _ACTION_TIMEOUT_S, *, as_list: bool | None = None
    ) -> list[Any]:
        """Send an AMI action; return its response messages (one, or the whole event list).

        `as_list=False` for QueueAdd: panoramisk takes its "Added interface to queue" reply
        for the start of an event list and would wait forever for the rest.
        """
        if self._manager is None:
            raise AmiUnavailable("AMI session is not open")
        try:
            reply = await self._wait(self._manager.send_action(action, as_list=as_list), timeout_s)
        except TimeoutError as exc:
            raise AmiUnavailable(f"AMI gave no answer to {action['Action']} within {timeout_s:g} s") from exc
        return reply if isinstance(reply, list) else [reply]

    async def originate_caller(
        self,
        dtmf: str,
        *,
        lead_s: float = 1,
        tail_s: float = 5,
        caller_id: str = DEFAULT_CALLER_ID,
    ) -> str:
        """Call 12333 as a scripted caller; return the Uniqueid of the channel in hotline-12333."""
        check_caller(dtmf, caller_id)
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
            ],
        }
        final = (await self.send(action, _ANSWER_TIMEOUT_S + _ACTION_TIMEOUT_S))[-1]
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

    async def wait_hangup(self, uniqueid: str, timeout_s: float = 60.0) -> Hangup:
        """The Hangup of that channel, seen since this session opened; CallTimeout if none in time."""
        if uniqueid in self._hangups:
            return self._hangups[uniqueid]
        waiter = self._waiters.setdefault(uniqueid, asyncio.get_running_loop().create_future())
        try:
            hangup: Hangup = await self._wait(waiter, timeout_s)
        except TimeoutError as exc:
            raise CallTimeout(f"call {uniqueid}: no hangup within {timeout_s:g} s") from exc
        return hangup

    async def channel_exists(self, uniqueid: str) -> bool:
        """Whether a live channel has that Uniqueid (AMI Status lists every channel)."""
        messages = await self.send({"Action": "Status"})
        return any(m.get("Event") == "Status" and m.get("Uniqueid") == uniqueid for m in messages)

    def _on_hangup(self, _manager: Manager, event: Any) -> None:
        hangup = Hangup(
            uniqueid=str(event.get("Uniqueid", "")),
            channel=str(event.get("Channel", "")),
            cause=int(event.get("Cause") or 0),
            cause_txt=str(event.get("Cause-txt", "")),
        )
        self._hangups[hangup.uniqueid] = hangup
        waiter = self._waiters.pop(hangup.uniqueid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(hangup)

    async def _wait(self, future: Any, timeout_s: float = _ACTION_TIMEOUT_S) -> Any:
        """Await an AMI future; AmiUnavailable if the link drops first, TimeoutError if too slow."""
        assert self._manager is not None
        lost = self._manager.lost
        done, _ = await asyncio.wait({future, lost}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if future in done:
            return future.result()
        if lost in done:
            lost.result()  # raises AmiUnavailable
        raise TimeoutError


def check_caller(dtmf: str, caller_id: str) -> None:
    """Refuse digits SendDTMF would not play and caller ids that are not phone numbers."""
    if not _DTMF.fullmatch(dtmf):
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
) -> str:
    """Dial 12333 as a scripted caller who waits `lead_s`, keys `dtmf`, stays `tail_s`, hangs up.

    Returns the Uniqueid of the 12333 channel (the FastAGI session's agi_uniqueid).
    """
    check_caller(dtmf, caller_id)  # before connecting: a typo is not an AMI problem
    async with AmiSession(settings) as ami:
        return await ami.originate_caller(dtmf, lead_s=lead_s, tail_s=tail_s, caller_id=caller_id)


async def wait_hung_up(settings: Settings, uniqueid: str, *, timeout_s: float = 60.0) -> None:
    """Return once the channel with that Uniqueid is gone; CallTimeout if it outlives `timeout_s`."""
    async with AmiSession(settings) as ami:
        # Listen first, then look: a hangup between place_call and now is not missed.
        if not await ami.channel_exists(uniqueid):
            return
        await ami.wait_hangup(uniqueid, timeout_s)
