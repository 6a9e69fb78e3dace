"""How fast submits go out over SMPP: the transports' shared `Pacer` (TPS limit) and
`Throttle` (the pause after the SMSC asks us to slow down, `sms.transport`), as the
aiosmpplib classes its ESME checks for (it takes only instances of its abstract ones)."""

from __future__ import annotations

from aiosmpplib import AbstractRateLimiter, AbstractThrottleHandler

from sms import transport


class Pacer(transport.Pacer, AbstractRateLimiter):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """At least 1/tps s between submits."""


class Throttle(transport.Throttle, AbstractThrottleHandler):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """A throttled answer pauses all sending for a while; `hold()` until `release()`."""
