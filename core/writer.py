"""Group commit: one writer thread per process stores the small writes of every call in
progress (trail steps, audit entries), as many as are waiting, in one transaction.

Under load a commit then carries the writes of hundreds of calls instead of each paying
for its own, and no two threads of ours fight over SQLite's single write lock (whose busy
handler sleeps in steps of up to 100 ms). Callers wait for their write to commit: from
asyncio with `write`, from a worker thread with `write_blocking`. A write whose answer
the caller needs (an identification attempt counted, or refused) runs with `call_blocking`:
in a savepoint of the batch, so a refusal rolls back its own writes and no one else's.

On a SQLite file the writers of several processes (`hotline serve --workers`) take turns
through an flock on a file beside the database (`WriteTurns`) before they ask for SQLite's
write lock: a writer that finds it taken otherwise sleeps in SQLite's busy handler, in
steps growing to 100 ms, while the other process's writer, back within microseconds, takes
it again and again (issue 23: seconds of a caller's wait in a burst). A writer waiting in
flock is woken as soon as the other lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from core import stage_times
from core.db import Store, begin_write
from core.errors import HotlineError, StoreUnavailable
from core.health import Health

log = logging.getLogger(__name__)

Op = Callable[[Connection], object]
T = TypeVar("T")


@dataclass(frozen=True)
class Later:
    """An op the writer runs after the other ops of its batch, together with the batch's
    other `Later`s of the same `run_all` in one call: the trail steps of a hundred calls in
    one INSERT, the audit entries of a batch on one read of the chain's head. Under load a
    statement per write was most of the writer's time, and each one's return to the GIL
    queued behind the event loop. Called alone (a write stored by itself), it runs alone.
    `run_all` gets the items in the order they were queued; kinds run in the order first seen.
    """

    run_all: Callable[[Connection, list[Any]], object]
    item: Any

    def __call__(self, c: Connection) -> None:
        self.run_all(c, [self.item])


@dataclass(frozen=True)
class _Request:
    ops: Sequence[Op]
    label: str
    done: Future[Any]  # True once committed (False if not); an `answers` request: its op's value
    lock: Op | None  # to take before any write of the transaction that carries `ops`
    answers: bool = False  # one op: its value, or the HotlineError it raised (its writes undone)
    savepoint: bool = True  # an answering op run in a savepoint (False: it undoes its own writes)
    waited: bool = False  # a thread is blocked on it: its batch is committed without lingering
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class _Answer:
    value: object
    error: HotlineError | None


class WriteTurns:
    """Turns at a SQLite file's write lock among the processes' group writers: an exclusive
    flock on `<database>-writers`, held from before BEGIN IMMEDIATE to after COMMIT. Other
    databases (and SQLite in memory) need none: `turn` is then a no-op."""

    def __init__(self, store: Store) -> None:
        url = store.engine.url
        database = url.database if url.get_backend_name() == "sqlite" else None
        self.path = Path(f"{database}-writers") if database not in (None, "", ":memory:") else None
        self._fd: int | None = None

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with stage_times.timed("writer.turn"):
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits without the GIL
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class GroupWriter:
    """The thread starts with the first write and ends after `idle_s` without work.

    A batch that no thread is blocked on (trail steps written behind the call, an audit
    entry queued without waiting) lingers up to `linger_s` for more writes to share its
    commit; a write a thread waits for (`write_blocking`, `call_blocking`: an attempt
    counted, an audit entry before data is handed out) is committed at once, with whatever
    is queued. At a human pace every trail step was a commit of its own: the most of a
    call's CPU, and of the write lock's time (issue 23).
    Writes commit in the order they were queued (a budget's give-back before the next
    attempt's count: `core.identify`)."""

    def __init__(
        self,
        store: Store,
        max_batch: int = 2000,
        idle_s: float = 2.0,
        health: Health | None = None,
        linger_s: float = 0.05,
    ) -> None:
        self.store = store
        self.health = health
        self.max_batch = max_batch
        self.idle_s = idle_s
        self.linger_s = linger_s
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._turns = WriteTurns(store)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, ops: Sequence[Op], label: str, *, lock: Op | None = None, waited: bool = False) -> Future[bool]:
        """Queue `ops` to run in order in one transaction with others; the future is True once
        committed, False if the store cannot be reached or refused them (logged with `label`).

        `lock` (the audit chain's, `core.audit.lock_chain`) is taken at the start of that
        transaction, before any write of the batch, once however many requests name it:
        taken after another request's writes it could deadlock with another process.
        """
        done: Future[bool] = Future()
        self._enqueue(_Request(ops, label, done, lock, waited=waited))
        return done

    def _enqueue(self, request: _Request) -> None:
        self._queue.put(request)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="group-writer", daemon=True)
                self._thread.start()

    def call_blocking(self, op: Callable[[Connection], T], label: str, *, savepoint: bool = True) -> T:
        """Run `op` in the next batch and return its value once that batch is committed, or
        raise the HotlineError it raised (its writes rolled back, the batch's kept), or
        StoreUnavailable. From a worker thread (never from the event loop).

        `savepoint=False`: `op` has written nothing when it raises a HotlineError (one
        statement that refuses as a whole, as core.identify's count on PostgreSQL), so it
        runs without a savepoint of its own: two round trips fewer on a server."""
        return cast(T, self._answer(op, label, savepoint).result())

    async def call(self, op: Callable[[Connection], T], label: str, *, savepoint: bool = True) -> T:
        """`call_blocking` from the event loop: awaited, no thread held while it waits."""
        done = self._answer(op, label, savepoint)
        try:
            return cast(T, await asyncio.wrap_future(done))
        finally:
            _time_resumed(done)

    def _answer(self, op: Callable[[Connection], object], label: str, savepoint: bool) -> Future[Any]:
        """Queue `op` as an answering request (its savepoint, its value): the future of both."""
        done: Future[Any] = Future()
        self._enqueue(_Request([op], label, done, None, answers=True, waited=True, savepoint=savepoint))
        return done

    async def write(self, ops: Sequence[Op], label: str, *, lock: Op | None = None, waited: bool = False) -> bool:
        """`waited`: someone is waiting for it now (its batch does not linger)."""
        done = self.submit(ops, label, lock=lock, waited=waited)
        try:
            return await asyncio.wrap_future(done)
        finally:
            _time_resumed(done)

    def write_blocking(self, ops: Sequence[Op], label: str, *, lock: Op | None = None) -> bool:
        """From a worker thread (never from the event loop)."""
        return self.submit(ops, label, lock=lock, waited=True).result()

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
            batch = self._gather(first)
            try:
                self._commit(batch)
            except BaseException as exc:
                # A fault outside any one write (the writes that raised are settled by
                # `_commit_one`): the thread must not die with its waiters still waiting.
                log.exception("group writer: %d writes failed", len(batch))
                self._fault(exc)
                for r in batch:
                    if not r.done.done():
                        _settle(r, None, stored=False)
                if not isinstance(exc, Exception):
                    raise

    def _gather(self, first: _Request) -> list[_Request]:
        """The batch that begins with `first`: what is queued, and while no request in it is
        waited for, what comes within `linger_s`."""
        batch = [first]
        until = None if first.waited else time.monotonic() + self.linger_s
        while len(batch) < self.max_batch:
            left = 0.0 if until is None else until - time.monotonic()
            try:
                r = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(r)
            if r.waited:
                until = None
        return batch

    def _fault(self, exc: BaseException) -> None:
        if self.health is not None:
            self.health.fault("group-writer", exc)

    def _commit(self, batch: list[_Request]) -> None:
        _time_queueing(batch)
        try:
            with stage_times.timed("writer.commit"), self._turns.turn(), self.store.transaction() as s:
                answers = _run_batch(s, batch)
        except StoreUnavailable as exc:
            if not _rolled_back(exc):
                log.error("group writer: store unavailable (%d writes refused): %s", len(batch), exc)
                for r in batch:
                    _settle(r, None, stored=False)
                return
            reason = _first_line(exc)  # a deadlock: the database is there, the writes may be stored
        except Exception as exc:
            # One bad write (refused by the database, or an error of ours in building it)
            # must not sink the others: retry each in its own transaction.
            reason = _first_line(exc)
        else:
            for i, r in enumerate(batch):
                _settle(r, answers.get(i), stored=True)
            return
        log.warning("group writer: a batch of %d writes failed, storing each alone: %s", len(batch), reason)
        for r in batch:
            self._commit_one(r)

    def _commit_one(self, r: _Request) -> None:
        label = r.label
        answer = None
        try:
            with self._turns.turn(), self.store.transaction() as s:
                begin_write(s)
                if r.lock is not None:
                    r.lock(s)
                if r.answers:
                    answer = _answering(s, r)
                else:
                    for op in r.ops:
                        op(s)
        except (StoreUnavailable, SQLAlchemyError) as exc:
            log.error("group writer: could not store %s: %s", label, _first_line(exc))
            _settle(r, None, stored=False)
            return
        except Exception as exc:
            # Not the database's refusal but a fault of ours: its waiter learns it failed.
            log.exception("group writer: could not store %s", label)
            self._fault(exc)
            _settle(r, None, stored=False)
            return
        _settle(r, answer, stored=True)


def _run_batch(s: Connection, batch: list[_Request]) -> dict[int, _Answer]:
    """The batch's writes in one transaction: the locks first, each request's ops in order
    (an answering one in its savepoint), then the `Later`s by kind; the answers by index."""
    begin_write(s)  # a savepoint needs the transaction begun
    for lock in dict.fromkeys(r.lock for r in batch if r.lock is not None):
        with stage_times.timed("writer.lock"):
            lock(s)
    answers: dict[int, _Answer] = {}
    later: dict[Callable[[Connection, list[Any]], object], list[Any]] = {}
    for i, r in enumerate(batch):
        if r.answers:
            answers[i] = _answering(s, r)
            continue
        for op in r.ops:
            if isinstance(op, Later):
                later.setdefault(op.run_all, []).append(op.item)
            else:
                op(s)
    for run_all, items in later.items():
        run_all(s, items)
    return answers


def _time_queueing(batch: list[_Request]) -> None:
    """How long each write waited for its batch to begin (when stage times are kept)."""
    if stage_times.enabled():
        began = time.perf_counter()
        stage_times.add("writer.batch_size", len(batch))
        for r in batch:
            stage_times.add("writer.waited_queued" if r.waited else "writer.queued", began - r.queued_at)


def _answering(s: Connection, r: _Request) -> _Answer:
    """Run an answering request's op, in a savepoint unless it undoes its own writes: a
    HotlineError it raises (a refusal) leaves none of its writes, as its own transaction's
    rollback would have, and no one else's is touched."""
    op = r.ops[0]
    try:
        if not r.savepoint:
            return _Answer(op(s), None)
        with s.begin_nested():
            return _Answer(op(s), None)
    except StoreUnavailable:
        raise
    except HotlineError as exc:
        return _Answer(None, exc)


def _time_resumed(done: Future[Any]) -> None:
    """How long a waiter on the event loop took to resume after its batch settled: the
    loop's lag (when stage times are kept)."""
    settled = getattr(done, "settled_at", None)
    if settled is not None:
        stage_times.add("writer.resume", time.perf_counter() - settled)


def _settle(r: _Request, answer: _Answer | None, *, stored: bool) -> None:
    """Tell the waiter: committed or not; an answering request gets its op's value or error."""
    if stage_times.enabled():
        r.done.settled_at = time.perf_counter()  # type: ignore[attr-defined]
    if not r.answers:
        r.done.set_result(stored)
    elif not stored or answer is None:
        r.done.set_exception(StoreUnavailable(f"{r.label} could not be stored"))
    elif answer.error is not None:
        r.done.set_exception(answer.error)
    else:
        r.done.set_result(answer.value)


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
