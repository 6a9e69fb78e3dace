"""One AMI connection for short tasks: agent control, scripted test calls, benchmarks.

panoramisk's Manager reconnects forever in the background; a short task wants the
opposite: a login that fails at once when Asterisk is away, a lost link that fails the
task, and every Hangup recorded from the moment it opens (so a call and the wait for its
end never race). The long-lived AMI monitor (ivr/ami_monitor.py) is a different thing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from core.settings import Settings
from ivr.cluster_config import ami_targets
from ivr.errors import AmiLoginRefused, AmiUnavailable, CallTimeout

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S: Final = 5.0
ACTION_TIMEOUT_S: Final = 10.0


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

    `async with AmiSession(settings) as ami: await ami.send({"Action": "QueueStatus"})`.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._manager: _Manager | None = None
        self._hangups: dict[str, Hangup] = {}
        self._waiters: dict[str, asyncio.Future[Hangup]] = {}

    async def __aenter__(self) -> Self:
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
        self, action: dict[str, Any], timeout_s: float = ACTION_TIMEOUT_S, *, as_list: bool | None = None
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

    async def _wait(self, future: Any, timeout_s: float = ACTION_TIMEOUT_S) -> Any:
        """Await an AMI future; AmiUnavailable if the link drops first, TimeoutError if too slow."""
        assert self._manager is not None
        lost = self._manager.lost
        done, _ = await asyncio.wait({future, lost}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if future in done:
            return future.result()
        if lost in done:
            lost.result()  # raises AmiUnavailable
        raise TimeoutError


class AnyNodeSession(AmiSession):
    """An AMI session for placing calls out: with the one Asterisk, or with a live node of
    the cluster, each session starting from the next node so calls out spread over them;
    a node that does not answer is passed over. (The edge caps the cluster's calls out.)"""

    _turn = itertools.count()

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.targets = [target for _, target in ami_targets(settings)]

    async def open(self) -> None:
        start = next(self._turn)
        errors = []
        for i in range(len(self.targets)):
            self.settings = self.targets[(start + i) % len(self.targets)]
            try:
                await super().open()
                return
            except AmiUnavailable as exc:
                errors.append(str(exc))
        raise AmiUnavailable("no Asterisk answers AMI: " + "; ".join(errors))
