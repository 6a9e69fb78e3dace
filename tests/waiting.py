"""Waiting for a condition instead of the clock: a test polls for the state it needs, up to
a bound, and fails naming what it waited for (a fixed sleep is either too short on a busy
machine or wasted time on an idle one)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], what: str, limit_s: float = 30.0, every_s: float = 0.05) -> T:
    """The first truthy value of `check()`, polled every `every_s`; an AssertionError naming
    `what` (and the last value seen) if none comes within `limit_s`."""
    deadline = time.monotonic() + limit_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {limit_s:g} s for {what}; last seen: {value!r}")
        time.sleep(every_s)


async def until(check: Callable[[], T | Awaitable[T]], what: str, limit_s: float = 30.0, every_s: float = 0.05) -> T:
    """`wait_until` for a test running on the event loop: `check` may be a coroutine
    function, and the loop keeps running between polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"waited {limit_s:g} s for {what}; last seen: {value!r}")
        await asyncio.sleep(every_s)
