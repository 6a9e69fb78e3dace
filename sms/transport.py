"""The seam between the dispatcher and the wire: what every SMS transport offers.

The dispatcher (`sms.dispatcher`) knows messages, attempts and receipts; a transport knows
one protocol. It cuts a text into the parts it sends (`parts`: SMPP and CMPP segments with
their concatenation header, Twilio the whole text), sends one part and answers with a
`SubmitResult` whose status speaks SMPP 3.4's command_status (`sms.status`), the
dispatcher's one vocabulary: 0 accepted, `SLOW_DOWN` (resubmit after the transport's
pause), `TEMPORARY` (refused for now), anything else permanent, None lost with the link.
A transport of another protocol translates its own codes into these where they enter
(CMPP's Result 8 is ESME_RTHROTTLED, `sms.cmpp`) and keeps its own words in `detail`.

SMPP (`sms.smpp`), CMPP (`sms.cmpp`) and Twilio (`sms.twilio`) implement it; SGIP and
SMGP would be one module each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

HELD_POLL_S = 0.05  # while held, a sender asks again this often


@dataclass(frozen=True)
class SubmitResult:
    status: int | None  # SMPP command_status (or its translation); None when the link was lost first
    smsc_id: str | None = None
    detail: str | None = None  # the peer's own words, when it gave any (Twilio and CMPP do)
    sent: bool = True  # False (with status None): it never left, so it is no possible duplicate

    @property
    def lost(self) -> bool:
        return self.status is None


P = TypeVar("P")


class Transport(Protocol[P]):
    """How messages leave. `P` is the transport's own part (a segment, a CMPP part, a text)."""

    # How many parts may be unanswered at once: the dispatcher claims no more messages.
    capacity: int
    # How the ids in submit answers and receipts are written (`sms.receipts.canonical`:
    # 16, 10, or 0 for opaque text); receipts' base None: learnt from the first receipts.
    id_base: int
    receipt_id_base: int | None

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """After it, every `submit` returns (unsent, or lost when it had gone out)."""
        ...

    def parts(self, text: str, reference: int, category: str | None) -> Sequence[P]:
        """`text` as the parts it goes out in; `reference` tells a message's parts apart
        on the handset (the message id: unique among those in flight to one number);
        `category` the template's (CMPP sends each from its own extension)."""
        ...

    async def submit(self, recipient: str, part: P, urgent: bool) -> SubmitResult:
        """Send one part and wait for the peer's answer; `urgent` ones (instant reminders)
        go before the others."""
        ...


class Pacer:
    """At least 1/tps s between submits (the SMPP transport's, and Twilio's requests)."""

    def __init__(self, tps: float) -> None:
        self.interval = 1.0 / tps
        self.next_at = 0.0

    async def limit(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            await asyncio.sleep(self.next_at - now)
            now = time.monotonic()
        self.next_at = max(now, self.next_at) + self.interval


class Throttle:
    """A throttled answer pauses all sending for a while; the next success ends nothing early.
    `hold()` stops sending until `release()`: a sick bind is being unbound, and what waits
    for the wire goes out on the next one."""

    def __init__(self, pause_s: float) -> None:
        self.pause_s = pause_s
        self.until = 0.0
        self.count = 0
        self.held = False
        self.parked = False  # the sender was last told to wait (it asks again before writing)

    async def throttled(self) -> None:
        self.count += 1
        self.until = time.monotonic() + self.pause_s

    async def not_throttled(self) -> None:
        pass

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        """A new bind: the old one's pause and hold end with it."""
        self.held = self.parked = False
        self.until = 0.0

    async def allow_request(self) -> bool:
        allowed = not self.held and time.monotonic() >= self.until
        self.parked = not allowed  # the sender waits, and asks again before it writes
        return allowed

    async def throttle_delay(self) -> float:
        return HELD_POLL_S if self.held else max(0.0, self.until - time.monotonic())
