"""Identification's limits on SQLite and PostgreSQL: per ID number, per call, per calling number."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from core import pins
from core.business import PinCheck
from core.db import Store
from core.errors import IdentifyRefused, IdentityLocked, WrongPin
from core.identify import BUDGET_RETRY_S, Identifier, IdentifyLimits, caller_key
from core.models import AuditEntry, CallerFailures, CallIdentity, PinLock
from core.sample import SampleResident
from core.sample_port import SampleBusinessPort
from core.writer import GroupWriter
from tests.conftest import PEPPER, load_sample

UNREGISTERED = "110105194912310021"  # well formed (GB 11643 check digit), held by nobody


@pytest.fixture
def loaded(store: Store) -> Store:
    load_sample(store)
    return store


class AwaitedWriter(GroupWriter):
    """The group writer, with `outcome` awaiting `verify_async` (the event loop's way)."""


@pytest.fixture(params=["own transaction", "group writer", "awaited"])
def counting(request: pytest.FixtureRequest, loaded: Store) -> Iterator[GroupWriter | None]:
    """Where attempts are counted: each in its own transaction (no writer), or in the group
    writer's batches, each in a savepoint (as `hotline serve` counts them), waited for in a
    thread or awaited on an event loop. What the test queued without waiting is committed
    before the store is closed."""
    kinds = {"own transaction": None, "group writer": GroupWriter, "awaited": AwaitedWriter}
    kind = kinds[request.param]
    writer = kind(loaded) if kind is not None else None
    yield writer
    if writer is not None:
        writer.write_blocking([], "the test's last writes")


@pytest.fixture
def people(sample_data) -> list[SampleResident]:  # type: ignore[no-untyped-def]
    return list(sample_data[1])


def identifier(
    store: Store, port: object | None = None, writer: GroupWriter | None = None, **limits: int
) -> Identifier:
    """With short pauses before a full budget refuses (the default schedule waits 3 s; the
    test of the waiting itself, below, uses it)."""
    chosen = port or SampleBusinessPort(store, PEPPER)
    return Identifier(
        store,
        chosen,  # type: ignore[arg-type]
        IdentifyLimits(**limits),
        id_secret=PEPPER,
        writer=writer,
        budget_retry_s=(0.01, 0.02),
    )


def wrong(r: SampleResident) -> str:
    return "000000" if r.pin != "000000" else "111111"


def outcome(ids: Identifier, id_number: str, pin: str, **where: str | None) -> str:
    call_id, caller = where.get("call_id"), where.get("caller")
    try:
        if isinstance(ids.writer, AwaitedWriter):
            asyncio.run(ids.verify_async(id_number, pin, actor="ivr", call_id=call_id, caller=caller))
        else:
            ids.verify(id_number, pin, actor="ivr", call_id=call_id, caller=caller)
    except WrongPin as exc:
        return f"failed:{exc.failures}"
    except IdentityLocked:
        return "locked"
    except IdentifyRefused as exc:
        return f"refused:{exc.reason}"
    return "ok"


def test_an_unregistered_id_fails_as_a_wrong_pin_does(
    loaded: Store, people: list[SampleResident], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same answer, same count, same lock, same audit, the same scrypt work."""
    checked: list[str] = []
    real_verify = pins.verify_pin

    def counting(pin: str, stored: str, pepper: str) -> bool:
        checked.append(stored)
        return real_verify(pin, stored, pepper)

    monkeypatch.setattr(pins, "verify_pin", counting)
    ids = identifier(loaded, caller_failures_per_day=100)
    r = people[0]
    registered = [outcome(ids, r.id_number, wrong(r)) for _ in range(5)]
    unregistered = [outcome(ids, UNREGISTERED, "123456") for _ in range(5)]
    assert registered == unregistered == ["failed:1", "failed:2", "failed:3", "failed:4", "locked"]
    assert len(checked) == 10  # one PIN hash checked per attempt, whether or not anyone holds the number
    with loaded.session() as s:
        audited = s.execute(select(AuditEntry.action, AuditEntry.resident_id)).all()
        locks = {p.id_number: p.failures for p in s.scalars(select(PinLock))}
    assert [a for a, _ in audited] == ["identify_failed"] * 10
    assert {rid for _, rid in audited} == {r.id, None}
    assert locks == {r.id_number: 5, UNREGISTERED: 5}


def test_a_call_tries_at_most_two_id_numbers(
    loaded: Store, people: list[SampleResident], counting: GroupWriter | None
) -> None:
    """Seen before: ID A failed, then ID B identified, then any further ID in the same call."""
    a, b, c = people[0], people[1], people[2]
    ids = identifier(loaded, writer=counting)
    call = {"call_id": "call-1", "caller": "13800000001"}
    assert outcome(ids, a.id_number, wrong(a), **call) == "failed:1"
    assert outcome(ids, b.id_number, b.pin, **call) == "ok"
    assert outcome(ids, c.id_number, c.pin, **call) == "refused:ids_per_call"
    assert outcome(ids, a.id_number, a.pin, **call) == "ok"  # one of the two it already tried
    assert outcome(ids, c.id_number, c.pin, call_id="call-2", caller="13800000001") == "ok"
    if counting is not None:
        assert counting.write_blocking([], "after the give-back queued without waiting")  # commits in order
    with loaded.session() as s:
        keys = s.scalars(select(CallIdentity.id_key).where(CallIdentity.call_id == "call-1")).all()
        refused = s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("identify_refused%"))).all()
        c_lock = s.get(PinLock, c.id_number)
    assert len(keys) == 2 and not any(a.id_number in k or b.id_number in k for k in keys)  # keyed hashes only
    assert refused == ["identify_refused:ids_per_call"]
    assert c_lock is not None and c_lock.failures == 0  # the refused attempt counted nothing


def test_an_attempt_on_a_locked_id_number_counts_nothing(
    loaded: Store, people: list[SampleResident], counting: GroupWriter | None
) -> None:
    """Refused at the ID number's lock, the last of the three counts: the call's ID numbers
    and the calling number's budget, counted before it, are as they were (on PostgreSQL one
    function counts all three, its inner block standing for the savepoint)."""
    a, b = people[0], people[1]
    ids = identifier(loaded, writer=counting, max_failures=1)
    assert outcome(ids, a.id_number, wrong(a), call_id="c1", caller="13800000003") == "locked"
    before = _counts(loaded)
    assert outcome(ids, a.id_number, a.pin, call_id="c2", caller="13800000004") == "locked"
    assert _counts(loaded) == before  # no budget row for ...0004, no ID number for call c2
    assert outcome(ids, b.id_number, b.pin, call_id="c2", caller="13800000004") == "ok"


def _counts(store: Store) -> tuple[list[tuple[str, int]], list[str], list[tuple[str, int]]]:
    with store.session() as s:
        budgets = sorted((f.caller, f.failures) for f in s.scalars(select(CallerFailures)))
        calls = sorted(s.scalars(select(CallIdentity.call_id)))
        locks = sorted((p.id_number, p.failures) for p in s.scalars(select(PinLock)))
    return budgets, calls, locks


def test_a_calling_number_has_a_daily_budget_shared_by_every_worker(
    loaded: Store, people: list[SampleResident], counting: GroupWriter | None
) -> None:
    """Two Identifiers stand for two FastAGI workers: the budget is the store's, not theirs."""
    other = GroupWriter(loaded) if counting is not None else None  # each worker has its own writer
    workers = [
        identifier(loaded, writer=counting, caller_failures_per_day=4),
        identifier(loaded, writer=other, caller_failures_per_day=4),
    ]
    caller = "+86 138-0000-0002"
    for n in range(4):
        r = people[n]
        assert outcome(workers[n % 2], r.id_number, wrong(r), call_id=f"c{n}", caller=caller).startswith("failed")
    r = people[5]
    for form in ("13800000002", "8613800000002", caller):  # the carrier's forms of one number
        assert outcome(workers[0], r.id_number, r.pin, call_id="c9", caller=form) == "refused:caller_budget"
    assert outcome(workers[1], r.id_number, r.pin, call_id="c9", caller="13900000009") == "ok"
    if other is not None:
        other.write_blocking([], "the other worker's last writes")
    # A new local day gives the number its budget back.
    with loaded.session() as s:
        s.execute(update(CallerFailures).values(day=CallerFailures.day - dt.timedelta(days=1)))
    assert outcome(workers[0], r.id_number, r.pin, call_id="c10", caller=caller) == "ok"


def test_callers_behind_one_number_wait_for_an_attempt_in_flight(
    loaded: Store, people: list[SampleResident], counting: GroupWriter | None
) -> None:
    """A budget full only of an attempt in flight (a right PIN being checked) refuses no one:
    the next caller's attempt is counted again once that one is given back."""
    a, b = people[0], people[1]
    checking, release = threading.Event(), threading.Event()
    base = SampleBusinessPort(loaded, PEPPER)

    class HeldPort(SampleBusinessPort):
        def check_pin(self, id_number: str, pin: str) -> PinCheck:
            if id_number == a.id_number:
                checking.set()
                assert release.wait(timeout=30)
            return base.check_pin(id_number, pin)

    results: dict[str, str] = {}
    paused: list[float] = []

    def pause(seconds: float) -> None:
        paused.append(seconds)
        release.set()  # the attempt in flight ends while this one waits
        first.join(timeout=30)

    limits = IdentifyLimits(caller_failures_per_day=1)

    async def pause_async(seconds: float) -> None:
        await asyncio.to_thread(pause, seconds)

    ids = Identifier(
        loaded,
        HeldPort(loaded, PEPPER),
        limits,
        id_secret=PEPPER,
        writer=counting,
        sleep=pause,
        async_sleep=pause_async,
    )
    switchboard = "057187654321"
    first = threading.Thread(
        target=lambda: results.update(a=outcome(ids, a.id_number, a.pin, call_id="s1", caller=switchboard))
    )
    first.start()
    assert checking.wait(timeout=30)
    assert outcome(ids, b.id_number, b.pin, call_id="s2", caller=switchboard) == "ok"
    assert results == {"a": "ok"} and paused == [BUDGET_RETRY_S[0]]


def test_a_right_pin_gives_the_callers_attempt_back(
    loaded: Store, people: list[SampleResident], counting: GroupWriter | None
) -> None:
    """With the group writer the give-back is queued without waiting; the writer commits in
    order, so the next attempt's count sees it."""
    ids = identifier(loaded, writer=counting, caller_failures_per_day=2)
    r = people[0]
    for n in range(5):
        assert outcome(ids, r.id_number, r.pin, call_id=f"c{n}", caller="13800000003") == "ok"
    assert outcome(ids, r.id_number, wrong(r), call_id="c8", caller="13800000003") == "failed:1"
    assert outcome(ids, r.id_number, wrong(r), call_id="c9", caller="13800000003") == "failed:2"
    assert outcome(ids, r.id_number, r.pin, call_id="c9", caller="13800000003") == "refused:caller_budget"


class SlowPort(SampleBusinessPort):
    """A business system that takes 50 ms to check a PIN: two calls overlap for sure."""

    def check_pin(self, id_number: str, pin: str) -> PinCheck:
        time.sleep(0.05)
        return super().check_pin(id_number, pin)


def test_parallel_wrong_pins_get_no_more_than_the_allowed_tries(
    loaded: Store, people: list[SampleResident], counting: GroupWriter | None
) -> None:
    """Seen by reading: the count was read before the PIN check and written after it, so
    calls at once all saw the same count and each got a try. The same with the count in the
    group writer's batches (each in its savepoint), as `hotline serve` counts."""
    r = people[0]
    port = SlowPort(loaded, PEPPER)
    checks = Counter[str]()
    real = port.check_pin

    def counted(id_number: str, pin: str) -> PinCheck:
        checks[id_number] += 1
        return real(id_number, pin)

    port.check_pin = counted  # type: ignore[method-assign]
    ids = identifier(loaded, port, counting, caller_failures_per_day=100)
    start = threading.Barrier(12)
    results: list[str] = []

    def attempt(n: int) -> None:
        start.wait(timeout=10)
        results.append(outcome(ids, r.id_number, wrong(r), call_id=f"p{n}", caller=f"1380000{n:04d}"))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert checks[r.id_number] == 5  # the PIN was tried five times in all, never more
    assert sorted(results) == sorted(["failed:1", "failed:2", "failed:3", "failed:4"] + ["locked"] * 8)
    assert outcome(ids, r.id_number, r.pin) == "locked"


def test_caller_keys_are_the_numbers_digits() -> None:
    forms = ("13800000002", "+86 138-0000-0002", "8613800000002", "008613800000002")
    assert {caller_key(f) for f in forms} == {"13800000002"}
    assert caller_key("0572-5123456") == caller_key("+86 572 5123456") == "05725123456"
    assert caller_key(None) == caller_key("") == caller_key("anonymous") == "anonymous"
    assert len(caller_key("1" * 300)) == 32
