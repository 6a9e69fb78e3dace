"""The audit log on SQLite and PostgreSQL: one linear chain under concurrent writers,
UPDATE and DELETE refused, and an alteration or a deletion made behind the triggers'
back (as an attacker with the database's owner role could) found by verification."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from core import audit
from core.audit_log import verify
from core.db import MIGRATIONS, Store
from core.errors import AuditLockOrder
from core.models import AuditEntry, CallerFailures, utcnow
from core.writer import GroupWriter
from tests.conftest import postgres_only

THREADS = 6
EACH = 25


def _entry(store: Store, n: int, actor: str = "ivr") -> None:
    with store.transaction() as c:
        audit.record(c, actor=actor, action="read:pension", resident_id=n, call_id=f"call-{n}")


def _behind_the_triggers(store: Store, sql: str) -> None:
    """What an attacker holding the owner's role can do: switch the trigger off, change
    the row, switch it back on. (SQLite has no switch: drop and re-create.)"""
    with store.engine.begin() as c:
        if c.dialect.name == "postgresql":
            c.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
            c.exec_driver_sql(sql)
            c.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
        else:
            saved = {
                name: ddl
                for name, ddl in c.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
                )
            }
            for name in saved:
                c.exec_driver_sql(f"DROP TRIGGER {name}")
            c.exec_driver_sql(sql)
            for ddl in saved.values():
                c.exec_driver_sql(ddl)


def test_concurrent_writers_through_their_own_connections_keep_one_chain(store: Store) -> None:
    """Several processes' worth of writers (each its own engine and connections) and a group
    writer committing batches, all at once: seq runs 1..N without a gap or a fork."""
    stores = [Store(store.url) for _ in range(THREADS)]
    writer = GroupWriter(store)
    auditor = audit.Auditor(store, writer)
    start = threading.Barrier(THREADS + 1)
    failures: list[BaseException] = []

    def one_writer(own: Store, k: int) -> None:
        try:
            start.wait(timeout=30)
            for i in range(EACH):
                _entry(own, k * 1000 + i, actor=f"console:{k}")
        except BaseException as exc:
            failures.append(exc)

    def batches() -> None:
        start.wait(timeout=30)
        for i in range(EACH):  # queued without waiting: the writer commits them in batches
            auditor.record(actor="ivr", action="identify", resident_id=i, call_id=f"g-{i}", wait=False)
        auditor.record(actor="ivr", action="read:pension", resident_id=0, call_id="g-last")

    threads = [threading.Thread(target=one_writer, args=(s, k)) for k, s in enumerate(stores)]
    threads.append(threading.Thread(target=batches))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for s in stores:
        s.dispose()
    assert failures == []
    total = THREADS * EACH + EACH + 1
    verdict = verify(store)
    assert verdict.ok and verdict.rows == total and verdict.head_seq == total
    with store.session() as s:
        seqs = s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)).all()
        assert list(seqs) == list(range(1, total + 1))
        assert s.scalar(select(func.count(func.distinct(AuditEntry.prev_hash)))) == total


def test_update_and_delete_are_refused_by_the_database(store: Store) -> None:
    for n in range(3):
        _entry(store, n)
    for sql in ("UPDATE audit_log SET detail = 'edited' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 3"):
        with pytest.raises(DBAPIError, match="audit_log is append-only"), store.engine.begin() as c:
            c.execute(text(sql))
    if store.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="TRUNCATE refused"), store.engine.begin() as c:
            c.execute(text("TRUNCATE audit_log"))
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 3
        assert s.scalar(select(AuditEntry.detail).where(AuditEntry.seq == 2)) == ""
    assert verify(store).ok


def test_a_row_cannot_be_replaced_or_inserted_behind_the_head(store: Store) -> None:
    for n in range(4):
        _entry(store, n)
    with store.session() as s:
        second = s.scalars(select(AuditEntry).where(AuditEntry.seq == 2)).one()
        s.expunge(second)
    columns = (
        "id",
        "seq",
        "at",
        "actor",
        "action",
        "channel",
        "resident_id",
        "call_id",
        "detail",
        "prev_hash",
        "row_hash",
    )
    values = {c: getattr(second, c) for c in columns} | {"actor": "console:someone_else"}
    verb = "INSERT OR REPLACE" if store.engine.dialect.name == "sqlite" else "INSERT"
    sql = text(f"{verb} INTO audit_log ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})")
    with pytest.raises(DBAPIError), store.engine.begin() as c:
        c.execute(sql, values)
    behind = values | {"id": second.id + 1000, "seq": 3}  # a new id, an old place in the chain
    with pytest.raises(DBAPIError), store.engine.begin() as c:
        c.execute(sql, behind)
    with store.session() as s:
        assert s.scalar(select(AuditEntry.actor).where(AuditEntry.seq == 2)) == "ivr"
    verdict = verify(store)
    assert verdict.ok and verdict.rows == 4


def test_a_row_altered_in_the_database_fails_verification_there(store: Store) -> None:
    for n in range(5):
        _entry(store, n)
    assert verify(store).ok
    with store.session() as s:
        target = s.scalars(select(AuditEntry.id).where(AuditEntry.seq == 3)).one()
    _behind_the_triggers(store, "UPDATE audit_log SET resident_id = 4242 WHERE seq = 3")
    verdict = verify(store)
    assert verdict.broken is not None
    assert (verdict.broken.id, verdict.broken.seq, verdict.broken.problem) == (target, 3, "altered")
    assert verdict.rows == 2  # the two rows before it still verify


def test_a_deleted_row_fails_verification_at_the_row_after_it(store: Store) -> None:
    for n in range(5):
        _entry(store, n)
    _behind_the_triggers(store, "DELETE FROM audit_log WHERE seq = 2")
    verdict = verify(store)
    assert verdict.broken is not None
    assert (verdict.broken.seq, verdict.broken.problem) == (3, "gap")
    assert "row 2 missing" in verdict.broken.detail


def test_entries_written_through_an_orm_session_join_the_chain(store: Store) -> None:
    _entry(store, 1)
    with store.session() as s:
        audit.record(s, actor="console:1001", action="view:screen_pop", resident_id=1, call_id="c")
    _entry(store, 2)
    with store.session() as s:
        rows = s.execute(select(AuditEntry.seq, AuditEntry.channel).order_by(AuditEntry.seq)).all()
    assert [tuple(r) for r in rows] == [(1, "ivr"), (2, "screen_pop"), (3, "ivr")]
    assert verify(store).ok


# A chain as the code before core.audit.ChainLink wrote it (hashes computed then, by the
# nine-argument row_hash()): seq, at, actor, action, resident_id, call_id, detail, channel, row_hash.
WRITTEN_BEFORE = [
    (1, dt.datetime(2026, 12, 1, 8, 0, 0, tzinfo=dt.UTC), "ivr", "identify", 7, "c-1", "", "ivr",
     "b22372cf19afed7da2a0c6b8a975a5b74e7fa2d0e3aee7fda3a19152a80eb329"),
    (2, dt.datetime(2026, 12, 1, 8, 0, 1, 250000, tzinfo=dt.UTC), "ivr", "read:pension", 7, "c-1", "", "ivr",
     "eadad07f2f110c7772f17d6e1e2e4d6abc0535cf6c5bdcefb6e33e6ee0ce71ca"),
    (3, dt.datetime(2026, 12, 1, 8, 3, 0, tzinfo=dt.UTC), "console:1001", "view:screen_pop", 7, "c-1", "",
     "screen_pop", "ef9da0ef6829749c344564929bfaf2bf0579bb6d7012bfa224bafc2ad97aed05"),
    (4, dt.datetime(2026, 12, 1, 9, 0, 0, tzinfo=dt.UTC), "cli:root", "view:audit_log", None, None,
     "resident 3305**********1234: 3 rows", "cli", "3d6183bc98e29e5092c7a878fa85f8123b845f0aefbd4d7f8da3dbd0aa6a3663"),
]  # fmt: skip


def test_a_chain_written_before_still_verifies_and_grows(store: Store) -> None:
    prev = audit.GENESIS
    with store.engine.begin() as c:
        for seq, at, actor, action, rid, call, detail, channel, digest in WRITTEN_BEFORE:
            c.execute(
                insert(audit.AUDIT),
                {
                    "seq": seq, "at": at, "actor": actor, "action": action, "resident_id": rid, "call_id": call,
                    "detail": detail, "channel": channel, "prev_hash": prev, "row_hash": digest,
                },
            )  # fmt: skip
            prev = digest
    verdict = verify(store)
    assert verdict.ok and verdict.rows == 4 and verdict.head_hash == WRITTEN_BEFORE[-1][-1]
    _entry(store, 9)
    verdict = verify(store)
    assert verdict.ok and verdict.rows == 5
    with store.session() as s:
        assert s.scalar(select(AuditEntry.prev_hash).where(AuditEntry.seq == 5)) == WRITTEN_BEFORE[-1][-1]


def _upgrade(store: Store, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection_url"] = store.url
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_the_migration_chains_and_classifies_the_rows_already_there(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url)
    try:
        _upgrade(store, "0020")
        old = [
            ("ivr", "identify", 7, "c-1"),
            ("ivr", "read:pension", 7, "c-1"),
            ("console:1001", "view:screen_pop", 7, "c-1"),
            ("sms", "read:medical", 8, None),
            ("cli:root", "view:call_trail", 7, "c-1"),
        ]
        with store.engine.begin() as c:
            for actor, action, rid, call in old:
                c.execute(
                    text(
                        "INSERT INTO audit_log (at, actor, action, resident_id, call_id, detail)"
                        " VALUES (:at, :actor, :action, :rid, :call, '')"
                    ),
                    {"at": utcnow(), "actor": actor, "action": action, "rid": rid, "call": call},
                )
        store.migrate()
        verdict = verify(store)
        assert verdict.ok and verdict.rows == 5
        with store.session() as s:
            channels = s.scalars(select(AuditEntry.channel).order_by(AuditEntry.seq)).all()
        assert list(channels) == ["ivr", "ivr", "screen_pop", "sms_reply", "cli"]
        _entry(store, 9)  # new entries continue the chain
        assert verify(store).rows == 6
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as c:
            c.execute(text("DELETE FROM audit_log"))
    finally:
        store.dispose()


WRITERS = 3  # processes' worth of group writers, each with its own store
DIRECT = 2  # and transactions of their own (the console's, a CLI's)
REQUESTS = 40
SHARED = 3  # rows every writer updates, as calls without caller id share one failure budget
DAY = dt.date(2026, 12, 2)


def _bump(c: Connection, caller: str) -> None:
    c.execute(
        update(CallerFailures)
        .where(CallerFailures.caller == caller, CallerFailures.day == DAY)
        .values(failures=CallerFailures.failures + 1)
    )


def test_writers_that_also_write_shared_rows_neither_deadlock_nor_fork_the_chain(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Group writers and plain transactions, all at once, each appending audit entries in
    transactions that also update rows the others update too (the chain's lock taken after
    such a write could wait for a transaction that holds the lock and wants that row: on
    PostgreSQL a deadlock, one side aborted after a second and retried)."""
    with store.session() as s:
        s.add_all(CallerFailures(caller=f"caller-{n}", day=DAY, failures=0) for n in range(SHARED))
    stores = [Store(store.url) for _ in range(WRITERS + DIRECT)]
    writers = [GroupWriter(own) for own in stores[:WRITERS]]
    auditors = [audit.Auditor(own, w) for own, w in zip(stores, [*writers, *[None] * DIRECT], strict=True)]
    start = threading.Barrier(len(auditors))
    failures: list[BaseException] = []

    def one_writer(k: int, auditor: audit.Auditor) -> None:
        try:
            start.wait(timeout=30)
            for i in range(REQUESTS):
                bump = functools.partial(_bump, caller=f"caller-{(k + i) % SHARED}")
                last = i == REQUESTS - 1
                auditor.record(
                    actor=f"ivr:{k}", action="identify", resident_id=i, call_id=f"c-{k}-{i}", also=[bump], wait=last
                )
        except BaseException as exc:
            failures.append(exc)

    caplog.set_level(logging.WARNING)
    threads = [threading.Thread(target=one_writer, args=(k, a)) for k, a in enumerate(auditors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for s in stores:
        s.dispose()
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []  # no batch retried
    total = len(auditors) * REQUESTS
    verdict = verify(store)
    assert verdict.ok and verdict.rows == total and verdict.head_seq == total
    with store.session() as s:
        assert list(s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq))) == list(range(1, total + 1))
        assert s.scalar(select(func.sum(CallerFailures.failures))) == total  # every write stored, once


# SQLite has one write lock: a transaction that wrote holds it already.
@postgres_only
def test_an_entry_after_a_write_without_the_lock_first_is_refused_on_postgresql(store: Store) -> None:
    """The order that can deadlock is refused where it would, rather than left to chance."""
    with store.session() as s:
        s.add(CallerFailures(caller="caller-0", day=DAY, failures=0))
    with pytest.raises(AuditLockOrder, match="lock_chain first"), store.transaction() as c:
        _bump(c, "caller-0")
        audit.record(c, actor="ivr", action="identify", resident_id=1, call_id="late")
    with store.transaction() as c:
        audit.lock_chain(c)
        _bump(c, "caller-0")
        audit.record(c, actor="ivr", action="identify", resident_id=1, call_id="first")
        audit.record(c, actor="ivr", action="read:pension", resident_id=1, call_id="first")
    with store.session() as s:
        assert list(s.scalars(select(AuditEntry.call_id).order_by(AuditEntry.seq))) == ["first", "first"]
        assert s.scalar(select(CallerFailures.failures)) == 1
    assert verify(store).ok
