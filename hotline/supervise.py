"""Supervised tasks of `hotline serve`: a crash is logged with its traceback, the task is
started again after a backoff, and the health registry (core/health.py) says so.

Restarting is for faults nobody foresaw (a bug, a library raising something new); the
tasks themselves still handle the faults they expect (the store down, AMI not answering)
and keep running through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from core.health import Health

log = logging.getLogger(__name__)
Factory = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Backoff:
    first_s: float = 1.0
    ceiling_s: float = 30.0
    # A task that ran this long before it failed starts again after `first_s`.
    healthy_after_s: float = 60.0


async def supervise(name: str, factory: Factory, health: Health, stop: asyncio.Event, backoff: Backoff) -> None:
    """Run `factory()` until it returns (its work is done, or `stop` was set) or is
    cancelled; after an exception, log it and run it again, waiting 1, 2, 4 ... 30 s."""
    loop = asyncio.get_running_loop()
    delay = backoff.first_s
    while True:
        health.up(name)
        started = loop.time()
        try:
            await factory()
        except asyncio.CancelledError:
            health.stopped(name)
            raise
        except Exception as exc:
            if loop.time() - started >= backoff.healthy_after_s:
                delay = backoff.first_s
            health.restarting(name, exc)
            log.exception("%s failed; starting it again in %g s", name, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                health.stopped(name)
                return
            delay = min(delay * 2, backoff.ceiling_s)
            continue
        if stop.is_set():
            health.stopped(name)
        else:
            health.done(name)
        return


class Supervisor:
    """Starts supervised tasks and keeps them for the shutdown."""

    def __init__(self, health: Health, stop: asyncio.Event, backoff: Backoff | None = None) -> None:
        self.health = health
        self.stop = stop
        self.backoff = backoff or Backoff()
        self.tasks: list[asyncio.Task[None]] = []

    def spawn(self, name: str, factory: Factory, stop: asyncio.Event | None = None) -> asyncio.Task[None]:
        """`stop`: the event that ends the task's work (serve's own unless given)."""
        until = self.stop if stop is None else stop
        task = asyncio.create_task(supervise(name, factory, self.health, until, self.backoff), name=name)
        self.tasks.append(task)
        return task
