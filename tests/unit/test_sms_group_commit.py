"""The dispatcher's group commit: records wait out a store outage; a shutdown with the store
still out of reach ends after `give_up_s` instead of hanging, and says what it left."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import StoreUnavailable
from sms.group_commit import GroupCommit
from tests.waiting import until


async def test_records_wait_for_the_store_and_are_written_when_it_returns() -> None:
    written: list[list[int]] = []
    outage = [True, True]

    def write(items: list[int]) -> None:
        if outage:
            outage.pop()
            raise StoreUnavailable("connection refused")
        written.append(items)

    batcher: GroupCommit[int] = GroupCommit(write, 0.01, "test")
    stop = asyncio.Event()
    runner = asyncio.create_task(batcher.run(stop))
    await asyncio.wait_for(asyncio.gather(batcher.put(1), batcher.put(2)), 10)
    stop.set()
    await asyncio.wait_for(runner, 5)
    assert written == [[1, 2]]


async def test_a_shutdown_with_the_store_gone_ends_and_tells_the_waiters(caplog: pytest.LogCaptureFixture) -> None:
    def write(_items: list[int]) -> None:
        raise StoreUnavailable("connection refused")

    batcher: GroupCommit[int] = GroupCommit(write, 0.01, "receipts", give_up_s=0.5)
    stop = asyncio.Event()
    runner = asyncio.create_task(batcher.run(stop))
    waiter = asyncio.create_task(batcher.put(7))
    await until(lambda: "records wait for the store" in caplog.text, "a write refused by the store", 10)
    stop.set()
    await asyncio.wait_for(runner, 10)  # returns: the shutdown is not held forever
    with pytest.raises(StoreUnavailable):
        await waiter
    assert "1 records not written" in caplog.text


async def test_an_urgent_record_is_written_without_waiting_out_the_interval() -> None:
    written: list[list[int]] = []
    batcher: GroupCommit[int] = GroupCommit(written.append, 30.0, "test")  # a gathering interval no test waits out
    stop = asyncio.Event()
    runner = asyncio.create_task(batcher.run(stop))
    quiet = asyncio.create_task(batcher.put(1))
    await asyncio.sleep(0.05)
    assert written == [] and not quiet.done()  # an ordinary record waits for company
    await asyncio.wait_for(batcher.put(2, urgent=True), 5)  # the urgent one takes it along
    assert written == [[1, 2]] and quiet.done()
    runner.cancel()  # (a stop is noticed only after four intervals of quiet)
    await asyncio.gather(runner, return_exceptions=True)


async def test_a_write_that_raises_fails_its_waiters_and_ends_the_run_loudly() -> None:
    """Found in review: a fault other than the store's ended the run and left its waiters
    (sends, receipts waiting to be answered) waiting for ever, with nothing said."""

    def write(_items: list[int]) -> None:
        raise RuntimeError("a row refused")

    commit: GroupCommit[int] = GroupCommit(write, 0.01, "test")
    stop = asyncio.Event()
    runner = asyncio.create_task(commit.run(stop))
    with pytest.raises(RuntimeError, match="a row refused"):
        await asyncio.wait_for(commit.put(1), 5)
    with pytest.raises(RuntimeError, match="a row refused"):
        await asyncio.wait_for(runner, 5)
