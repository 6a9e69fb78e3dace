"""SMPP 3.4 §7.2's timers for one bind, and the backoff between binds.

§7.2 names four: session_init_timer (connect and bind: aiosmpplib's `socket_timeout`,
`smpp.socket_timeout_s`), enquire_link_timer, inactivity_timer (the SMSC's, which our
enquire_links keep from firing) and response_timer. Ours:

- response_timer: every request we send (submit_sm, enquire_link) is answered within its
  time (`smpp.response_timeout_s`, `smpp.enquire_link_timeout_s`), or the bind is dead;
- enquire_link_timer: after `smpp.enquire_link_s` with nothing received, an enquire_link
  asks whether the SMSC is still there.

Each timer is a `loop.call_later` of its own: it fires by itself, not when other traffic
passes (aiosmpplib's correlator expires requests only when another is put or answered, so
a half-dead bind that answers nothing held its window full for as long as it stayed
open). `LinkWatch.keep` runs for the life of one bind and returns why the bind must be
dropped; the transport drops it and aiosmpplib binds again after `Backoff`'s delay.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiosmpplib import AbstractRetryTimer

from sms.bind_health import Sick

log = logging.getLogger(__name__)
RESPONSE_BIT = 0x80000000  # command_id of every response (SMPP 3.4 §5.1.2.1)


@dataclass(frozen=True)
class Unanswered:
    """The request whose response did not come in time: why the bind is dropped."""

    command: str  # "submit_sm" | "enquire_link"
    sequence: int
    after_s: float

    def __str__(self) -> str:
        return f"no {self.command}_resp to sequence {self.sequence} within {self.after_s:g} s"


Reason = Unanswered | Sick  # why a bind is dropped: it answers nothing, or takes nothing


class LinkWatch:
    """The response timers of one bind's requests in flight, and its enquire_link timer."""

    def __init__(self, enquire_link_s: float, enquire_link_timeout_s: float, response_timeout_s: float) -> None:
        self.enquire_link_s = enquire_link_s
        self.timeouts = {"submit_sm": response_timeout_s, "enquire_link": enquire_link_timeout_s}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.received_at = 0.0
        self.expired: Reason | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def sent(self, command: str, sequence: int) -> None:
        """A request went out: its response timer starts now."""
        after = self.timeouts[command]
        loop = asyncio.get_running_loop()
        self._timers[sequence] = loop.call_later(after, self._expire, Unanswered(command, sequence, after))

    def received(self, command_id: int, sequence: int) -> None:
        """Any PDU from the SMSC: the link is alive; a response stops its request's timer."""
        self.received_at = asyncio.get_running_loop().time()
        if command_id & RESPONSE_BIT:
            timer = self._timers.pop(sequence, None)
            if timer is not None:
                timer.cancel()

    def _expire(self, unanswered: Unanswered) -> None:
        self._timers.pop(unanswered.sequence, None)
        self.end(unanswered)

    def end(self, reason: Reason) -> None:
        """The bind must go (the first reason given is kept): `keep` returns it."""
        if self.expired is None:
            self.expired = reason
        self._wake.set()

    def reset(self) -> None:
        """A new bind (or none): nothing of the old one is waited for any more."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.expired = None
        self._wake.clear()
        self.received_at = asyncio.get_running_loop().time()

    def stop(self) -> None:
        """Shutting down: `keep` returns at once, with nothing to drop."""
        self._stopping = True
        self._wake.set()

    async def keep(self, enquire_link: Callable[[], Coroutine[Any, Any, None]]) -> Reason | None:
        """For the life of one bind: send enquire_link when the SMSC has been quiet for
        `enquire_link_s`, and return why the bind must go: the first request left unanswered,
        or the transport found it sick (None on shutdown)."""
        loop = asyncio.get_running_loop()
        asked_at = 0.0
        sending: set[asyncio.Task[None]] = set()
        try:
            while self.expired is None and not self._stopping:
                quiet_since = max(self.received_at, asked_at)
                due_in = quiet_since + self.enquire_link_s - loop.time()
                if due_in <= 0:
                    asked_at = loop.time()
                    # In a task: a peer that reads nothing blocks the write, not the timers.
                    task = asyncio.create_task(enquire_link(), name="smpp-enquire-link")
                    sending.add(task)
                    task.add_done_callback(sending.discard)
                    continue
                self._wake.clear()
                try:
                    async with asyncio.timeout(due_in):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            return self.expired
        finally:
            for task in sending:
                task.cancel()


class Backoff(AbstractRetryTimer):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """Between binds: `first_s`, then twice as long each time up to `most_s`; after a bind
    that held, `first_s` again. A bind that turns sick before it accepted anything held no
    better than one that failed: each such one in a row doubles the delay after a bind
    (`escalate`), until a bind accepts a segment again (`relax`)."""

    def __init__(self, first_s: float, most_s: float) -> None:
        self.first_s = first_s
        self.most_s = most_s
        self.delay_s = first_s
        self.floor_s = first_s  # what `reset` goes back to

    async def wait(self) -> None:
        delay, self.delay_s = self.delay_s, min(self.most_s, self.delay_s * 2)
        await asyncio.sleep(delay)

    def reset(self) -> None:
        self.delay_s = self.floor_s

    def escalate(self) -> None:
        """The bind just given up accepted nothing: the next one waits twice as long as it did."""
        self.floor_s = self.delay_s = min(self.most_s, self.floor_s * 2)

    def relax(self) -> None:
        self.floor_s = self.first_s

    def next_delay(self) -> float:
        return self.delay_s
