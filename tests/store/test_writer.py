"""The group writer: batches commit together, a bad write fails alone, an outage is reported."""

from __future__ import annotations

import asyncio
import functools

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from core import audit
from core.db import Store
from core.health import Health
from core.models import AuditEntry, utcnow
from core.writer import GroupWriter


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
    assert shown["state"] == "up" and "RuntimeError: a bug" in shown["last_error"]
    assert "13800001234" not in shown["last_error"]


async def test_a_fault_outside_the_writes_fails_every_waiter(store: Store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    writer = GroupWriter(store)

    def explode(self: object, batch: object) -> None:
        raise MemoryError("no room for the batch")

    monkeypatch.setattr(GroupWriter, "_commit", explode)
    waiting = [writer.write([functools.partial(add, actor=f"a{i}")], f"w{i}") for i in range(5)]
    assert await asyncio.wait_for(asyncio.gather(*waiting), 10) == [False] * 5
