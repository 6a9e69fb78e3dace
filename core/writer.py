"""Group commit: one writer thread per process stores the small writes of every call in
progress (trail steps, audit entries), as many as are waiting, in one transaction.

Under load a commit then carries the writes of hundreds of calls instead of each paying
for its own, and no two threads of ours fight over SQLite's single write lock (whose busy
handler sleeps in steps of up to 100 ms). Callers wait for their write to commit: from
asyncio with `write`, from a worker thread with `write_blocking`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from core.db import Store
from core.errors import StoreUnavailable
from core.health import Health

log = logging.getLogger(__name__)

Op = Callable[[Connection], object]


@dataclass(frozen=True)
class _Request:
    ops: Sequence[Op]
    label: str
    done: Future[bool]
    lock: Op | None  # to take before any write of the transaction that carries `ops`


class GroupWriter:
    """The thread starts with the first write and ends after `idle_s` without work."""

    def __init__(self, store: Store, max_batch: int = 2000, idle_s: float = 2.0, health: Health | None = None) -> None:
        self.store = store
        self.health = health
        self.max_batch = max_batch
        self.idle_s = idle_s
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, ops: Sequence[Op], label: str, *, lock: Op | None = None) -> Future[bool]:
        """Queue `ops` to run in order in one transaction with others; the future is True once
        committed, False if the store cannot be reached or refused them (logged with `label`).

        `lock` (the audit chain's, `core.audit.lock_chain`) is taken at the start of that
        transaction, before any write of the batch, once however many requests name it:
        taken after another request's writes it could deadlock with another process.
        """
        done: Future[bool] = Future()
        self._queue.put(_Request(ops, label, done, lock))
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="group-writer", daemon=True)
                self._thread.start()
        return done

    async def write(self, ops: Sequence[Op], label: str, *, lock: Op | None = None) -> bool:
        return await asyncio.wrap_future(self.submit(ops, label, lock=lock))

    def write_blocking(self, ops: Sequence[Op], label: str, *, lock: Op | None = None) -> bool:
        """From a worker thread (never from the event loop)."""
        return self.submit(ops, label, lock=lock).result()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(batch)
            except BaseException as exc:
                # A fault outside any one write (the writes that raised are settled by
                # `_commit_one`): the thread must not die with its waiters still waiting.
                log.exception("group writer: %d writes failed", len(batch))
                self._fault(exc)
                for r in batch:
                    if not r.done.done():
                        r.done.set_result(False)
                if not isinstance(exc, Exception):
                    raise

    def _fault(self, exc: BaseException) -> None:
        if self.health is not None:
            self.health.fault("group-writer", exc)

    def _commit(self, batch: list[_Request]) -> None:
        try:
            with self.store.transaction() as s:
                for lock in dict.fromkeys(r.lock for r in batch if r.lock is not None):
                    lock(s)
                for r in batch:
                    for op in r.ops:
                        op(s)
        except StoreUnavailable as exc:
            if not _rolled_back(exc):
                log.error("group writer: store unavailable (%d writes refused): %s", len(batch), exc)
                for r in batch:
                    r.done.set_result(False)
                return
            reason = _first_line(exc)  # a deadlock: the database is there, the writes may be stored
        except Exception as exc:
            # One bad write (refused by the database, or an error of ours in building it)
            # must not sink the others: retry each in its own transaction.
            reason = _first_line(exc)
        else:
            for r in batch:
                r.done.set_result(True)
            return
        log.warning("group writer: a batch of %d writes failed, storing each alone: %s", len(batch), reason)
        for r in batch:
            r.done.set_result(self._commit_one(r))

    def _commit_one(self, r: _Request) -> bool:
        label = r.label
        try:
            with self.store.transaction() as s:
                if r.lock is not None:
                    r.lock(s)
                for op in r.ops:
                    op(s)
        except (StoreUnavailable, SQLAlchemyError) as exc:
            log.error("group writer: could not store %s: %s", label, _first_line(exc))
            return False
        except Exception as exc:
            # Not the database's refusal but a fault of ours: its waiter learns it failed.
            log.exception("group writer: could not store %s", label)
            self._fault(exc)
            return False
        return True


def _first_line(exc: BaseException) -> str:
    """A database error's first line: its message, without the statement (core.db keeps
    bound values out of it)."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _rolled_back(exc: StoreUnavailable) -> bool:
    """The database rolled the transaction back to resolve a conflict with another one
    (SQLSTATE class 40: deadlock detected, serialization failure; PostgreSQL manual,
    appendix A), which core.db reports as StoreUnavailable like an outage."""
    sqlstate = getattr(getattr(exc.__cause__, "orig", None), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("40")
