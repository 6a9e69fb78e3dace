"""The group writer: batches commit together, a bad write fails alone, an outage is reported."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.orm import Session

from core import audit, audit_log
from core.db import Store
from core.errors import IdentifyRefused
from core.health import Health
from core.models import AuditEntry, Call, CallerFailures, CallStep, utcnow
from core.writer import GroupWriter, WriteTurns
from ivr.trail import CallBegin, CallEnd, CallSteps, SqlCallSink, TrailEntry, TrailOp
from tests.conftest import postgres_only
from tests.store.test_audit_chain import DAY, _bump


def add(s: Session, *, actor: str) -> None:
    audit.record(s, actor=actor, action="read:pension", resident_id=1)


def bad(s: Session) -> None:
    s.execute(insert(AuditEntry).values(at=utcnow(), actor=None, action="x"))  # NOT NULL violated


def count(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry)) or 0


async def test_many_writers_one_commit_each_and_a_bad_one_alone(store: Store) -> None:
    writer = GroupWriter(store)
    good = [writer.write([functools.partial(add, actor=f"a{i}")], f"w{i}") for i in range(200)]
    results = await asyncio.gather(*good[:100], writer.write([bad], "the bad one"), *good[100:])
    assert results.count(False) == 1 and results[100] is False
    assert count(store) == 200


async def test_store_down_is_reported_not_raised() -> None:
    writer = GroupWriter(Store("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1"))
    assert await writer.write([functools.partial(add, actor="x")], "w") is False


def broken(s: Session) -> None:
    raise RuntimeError("a bug in building the write for 13800001234")


async def test_a_write_that_raises_fails_its_waiter_and_the_writer_goes_on(store: Store) -> None:
    health = Health()
    writer = GroupWriter(store, health=health)
    batch = [writer.write([functools.partial(add, actor=f"a{i}")], f"w{i}") for i in range(20)]
    results = await asyncio.wait_for(asyncio.gather(*batch, writer.write([broken], "the broken one")), 10)
    assert results[-1] is False and results.count(True) == 20
    assert await asyncio.wait_for(writer.write([functools.partial(add, actor="after")], "after"), 10) is True
    assert count(store) == 21
    shown = health.as_json()["components"]["group-writer"]
    assert shown["state"] == "up" and shown["last_error"] == "RuntimeError"  # its kind, not its text


async def test_a_fault_outside_the_writes_fails_every_waiter(store: Store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    writer = GroupWriter(store)

    def explode(self: object, batch: object) -> None:
        raise MemoryError("no room for the batch")

    monkeypatch.setattr(GroupWriter, "_commit", explode)
    waiting = [writer.write([functools.partial(add, actor=f"a{i}")], f"w{i}") for i in range(5)]
    assert await asyncio.wait_for(asyncio.gather(*waiting), 10) == [False] * 5


def _waiting_for_a_lock(store: Store) -> bool:
    with store.transaction() as c:
        waiting = c.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)


# SQLite has one write lock: no deadlock between two writers.
@postgres_only
def test_a_batch_rolled_back_by_a_deadlock_is_stored_again_not_refused(store: Store) -> None:
    """A deadlock (or serialization failure) rolls the batch back with the database still
    there: its writes are retried, not refused as if the store were down."""
    with store.session() as s:
        s.add_all(CallerFailures(caller=name, day=DAY, failures=0) for name in ("a", "b"))
    other = Store(store.url)
    b_held, a_held = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def first_a(c: Connection) -> None:
        assert b_held.wait(timeout=30)
        _bump(c, "a")
        a_held.set()

    def b_then_a() -> None:
        try:
            with other.transaction() as c:
                c.exec_driver_sql("SET LOCAL deadlock_timeout = '30s'")  # the writer's side finds the deadlock
                _bump(c, "b")
                b_held.set()
                assert a_held.wait(timeout=30)
                for _ in range(300):  # until the writer waits for row b (bounded: 30 s)
                    if _waiting_for_a_lock(store):
                        break
                    time.sleep(0.1)
                _bump(c, "a")
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=b_then_a)
    thread.start()
    stored = GroupWriter(store).submit([first_a, functools.partial(_bump, caller="b")], "a then b")
    assert stored.result(timeout=60) is True
    thread.join(timeout=60)
    other.dispose()
    assert failures == []
    with store.session() as s:
        rows = s.execute(select(CallerFailures.caller, CallerFailures.failures)).all()
    assert {caller: n for caller, n in rows} == {"a": 2, "b": 2}  # each side's writes once, none lost


def _bump_and_refuse(c: Connection, caller: str) -> None:
    _bump(c, caller)
    raise IdentifyRefused("caller_budget")


def test_an_answer_comes_after_the_commit_and_a_refusal_undoes_only_its_own_writes(store: Store) -> None:
    """`call_blocking`: the op's value once its batch is committed; an op that refuses (a
    HotlineError) has its writes rolled back in its savepoint, and the batch's other writes stay."""
    with store.session() as s:
        s.add_all(CallerFailures(caller=name, day=DAY, failures=0) for name in ("a", "b"))
    writer = GroupWriter(store)
    release = threading.Event()

    def held(c: Connection) -> None:
        assert release.wait(timeout=30)  # the writer is busy: the next requests share one batch

    first = writer.submit([held], "held")
    answers: list[object] = []

    def ask(op: Callable[[Connection], object]) -> None:
        try:
            answers.append(writer.call_blocking(op, "an answer"))
        except IdentifyRefused as exc:
            answers.append(exc.reason)

    def counted(c: Connection) -> int:
        _bump(c, "a")
        return int(c.scalar(select(CallerFailures.failures).where(CallerFailures.caller == "a")) or 0)

    askers = [
        threading.Thread(target=ask, args=(counted,)),
        threading.Thread(target=ask, args=(functools.partial(_bump_and_refuse, caller="b"),)),
    ]
    for t in askers:
        t.start()
    later = writer.submit([functools.partial(_bump, caller="b")], "after the refusal")
    for _ in range(3000):  # until all three wait behind the held batch (bounded: 30 s)
        if writer._queue.qsize() == 3:
            break
        time.sleep(0.01)
    release.set()
    for t in askers:
        t.join(timeout=30)
    assert first.result(timeout=30) is True and later.result(timeout=30) is True
    assert sorted(map(str, answers)) == ["1", "caller_budget"]
    with store.session() as s:
        rows = dict(s.execute(select(CallerFailures.caller, CallerFailures.failures)).all())
    assert rows == {"a": 1, "b": 1}  # the refused bump rolled back, the later one kept


def test_writers_of_several_processes_take_turns_on_a_sqlite_file(tmp_path: Path) -> None:
    """A writer holds its turn (an flock another process's writer waits in) around its
    transaction; on a file's store only (PostgreSQL's writers need none)."""
    store = Store(f"sqlite:///{tmp_path}/turns.db")
    mine, theirs = WriteTurns(store), WriteTurns(store)  # two open files: as two processes hold them
    assert theirs.path is not None
    with mine.turn():
        fd = os.open(theirs.path, os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the turn is over
    os.close(fd)
    store.dispose()
    assert WriteTurns(Store("postgresql+psycopg://nobody@127.0.0.1:9/none")).path is None


async def test_a_batchs_audit_entries_extend_the_chain_in_order_beside_other_writers(store: Store) -> None:
    """The entries of a batch are appended together on one read of the head (`Later`); with
    entries written meanwhile by another transaction (another process), a bad write in a batch
    (stored each alone then) and entries queued without waiting, the chain still verifies,
    every entry once, and the entries waited for in the order they were queued."""
    writer = GroupWriter(store)
    auditor = audit.Auditor(store, writer)

    def elsewhere(i: int) -> None:
        with store.transaction() as c:
            audit.record(c, actor=f"cli:{i}", action="view:call_trail", resident_id=i)

    queued = [
        auditor.record_async(actor="ivr", action="read:pension", resident_id=i, call_id=f"c{i}") for i in range(60)
    ]
    for i in range(20):
        auditor.record(actor="ivr", action="identify", resident_id=i, call_id=f"n{i}", wait=False)
    bad_one = writer.write([bad], "the bad one")
    await asyncio.gather(
        *queued[:30], asyncio.to_thread(elsewhere, 1), bad_one, *queued[30:], asyncio.to_thread(elsewhere, 2)
    )
    assert writer.write_blocking([], "the last") is True
    verdict = audit_log.verify(store)
    assert verdict.ok and verdict.rows == 60 + 20 + 2
    with store.session() as s:
        reads = s.scalars(
            select(AuditEntry.call_id).where(AuditEntry.action == "read:pension").order_by(AuditEntry.seq)
        )
        assert list(reads) == [f"c{i}" for i in range(60)]


async def test_a_batchs_trails_are_stored_whole_and_a_broken_one_alone(store: Store) -> None:
    """Calls begun, stepped and ended within one batch, with other calls' steps: every step in
    order and every end recorded; a step of a call never begun (its row refused by the
    foreign key) fails its own write only."""
    writer = GroupWriter(store, linger_s=0.5)  # everything below shares a batch or two
    sink = SqlCallSink(store, writer)
    at = utcnow()

    def call(i: int) -> list[TrailOp]:
        steps = [TrailEntry("prompt", f"n{k}", {"k": k}, at) for k in range(3)]
        return [
            CallBegin(f"call-{i}", None, None, "13800000000", "fastagi", at),
            CallSteps(f"call-{i}", 0, steps[:2]),
            CallSteps(f"call-{i}", 2, steps[2:]),
            CallEnd(f"call-{i}", "completed", "caller", "n2", None, None, "zh", at),
        ]

    orphan = CallSteps("never-begun", 0, [TrailEntry("prompt", "x", {}, at)])
    results = await asyncio.gather(*(sink.write(call(i)) for i in range(10)), sink.write([orphan]))
    assert results == [True] * 10 + [False]
    with store.session() as s:
        steps = s.execute(select(CallStep.call_id, CallStep.seq).order_by(CallStep.call_id, CallStep.seq)).all()
        ended = s.scalars(select(Call.outcome)).all()
    assert [tuple(r) for r in steps] == [(f"call-{i}", k) for i in sorted(range(10), key=str) for k in range(3)]
    assert ended == ["completed"] * 10
