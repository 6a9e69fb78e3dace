"""Group commit for the dispatcher: many small records, one transaction per short interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from core.errors import StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class GroupCommit(Generic[T]):
    """`put` an item and (optionally) wait until it is written; `run` writes whatever has
    gathered every `interval_s` with `write(items)` in a thread. A store outage keeps the
    items and retries, so nothing put is lost while the process lives."""

    def __init__(
        self,
        write: Callable[[list[T]], None],
        interval_s: float,
        name: str,
        lock: asyncio.Lock | None = None,
        give_up_s: float = 30.0,
    ) -> None:
        self.write = write
        self.lock = lock or asyncio.Lock()
        self.interval_s = interval_s
        self.name = name
        self.items: list[tuple[T, asyncio.Future[None] | None]] = []
        self.give_up_s = give_up_s
        self.arrived = asyncio.Event()
        self.hurry = asyncio.Event()

    async def put(self, item: T, *, wait: bool = True, urgent: bool = False) -> None:
        """`urgent`: written by the next write without waiting out the gathering interval
        (an instant reminder's record; the batch's around it go along)."""
        future = asyncio.get_running_loop().create_future() if wait else None
        self.items.append((item, future))
        self.arrived.set()
        if urgent:
            self.hurry.set()
        if future is not None:
            await future

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` and nothing is left; while stopping, a store still out of reach after
        `give_up_s` ends it (see `_abandon`) rather than holding the shutdown forever."""
        stopping_since = float("inf")
        while True:
            if stop.is_set() and stopping_since == float("inf"):
                stopping_since = asyncio.get_running_loop().time()
            if not self.items:
                if stop.is_set():
                    return
                self.arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.arrived.wait(), self.interval_s * 4)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hurry.wait(), self.interval_s)
            self.hurry.clear()
            batch, self.items = self.items, []
            try:
                async with self.lock:
                    await asyncio.to_thread(self.write, [item for item, _ in batch])
            except StoreUnavailable as exc:
                if stop.is_set() and asyncio.get_running_loop().time() - stopping_since >= self.give_up_s:
                    self._abandon(batch + self.items, exc)
                    return
                log.error("%s: %d records wait for the store: %s", self.name, len(batch), exc)
                self.items = batch + self.items
                await asyncio.sleep(1.0)
                continue
            except Exception as exc:  # a fault of ours or a row refused: not retried, and said
                # Its waiters get the error (they would wait for ever), then the run ends
                # loudly: its owner starts it again (sms.dispatcher, under the supervisor).
                for _, future in batch:
                    if future is not None and not future.done():
                        future.set_exception(exc)
                raise
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_result(None)

    def _abandon(self, items: list[tuple[T, asyncio.Future[None] | None]], exc: StoreUnavailable) -> None:
        """Shutting down with the store out of reach: what is not written is left to the
        paths that recover it (a submission not recorded leaves its message `sending`, to be
        reclaimed as a possible duplicate; an unstored receipt was never answered, so the
        SMSC delivers it again). Waiters get the error."""
        log.error(
            "%s: stopping with the store out of reach for %.0f s: %d records not written (%s); "
            "they are recovered after the restart",
            self.name,
            self.give_up_s,
            len(items),
            exc,
        )
        self.items = []
        for _, future in items:
            if future is not None and not future.done():
                future.set_exception(exc)
