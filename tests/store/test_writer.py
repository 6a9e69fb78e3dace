"""The group writer: batches commit together, a bad write fails alone, an outage is reported."""

from __future__ import annotations

import asyncio
import functools

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from core.db import Store
from core.models import AuditEntry, utcnow
from core.writer import GroupWriter


def add(s: Session, *, actor: str) -> None:
    s.execute(insert(AuditEntry).values(at=utcnow(), actor=actor, action="read:pension", resident_id=1))


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
