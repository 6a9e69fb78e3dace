"""How fast submits go out: the TPS limit, and the pause after the SMSC asks us to slow down
(also the Twilio transport's: its requests per second, and its pause after HTTP 429)."""

from __future__ import annotations

import asyncio
import time

from aiosmpplib import AbstractRateLimiter, AbstractThrottleHandler

HELD_POLL_S = 0.05  # while held, aiosmpplib's sender asks again this often


class Pacer(AbstractRateLimiter):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """At least 1/tps s between submits (also the Twilio transport's requests)."""

    def __init__(self, tps: float) -> None:
        self.interval = 1.0 / tps
        self.next_at = 0.0

    async def limit(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            await asyncio.sleep(self.next_at - now)
            now = time.monotonic()
        self.next_at = max(now, self.next_at) + self.interval


class Throttle(AbstractThrottleHandler):  # type: ignore[misc]  # aiosmpplib ships no type hints
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
        self.parked = not allowed  # aiosmpplib's sender waits, and asks again before it writes
        return allowed

    async def throttle_delay(self) -> float:
        return HELD_POLL_S if self.held else max(0.0, self.until - time.monotonic())
