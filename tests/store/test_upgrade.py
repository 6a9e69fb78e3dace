"""Upgrading the schema under a running site: a migration that fails leaves the schema as
it was, and on PostgreSQL an upgrade that cannot get a table's lock quickly (a long
transaction holds it) gives up and changes nothing, instead of queueing every call's
writes behind it; once the lock is free it goes through."""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, insert, inspect, select, text

from core.db import MIGRATIONS, Store
from core.errors import MigrationBlocked
from core.models import Call, utcnow
from tests.conftest import postgres_only

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()  # the newest revision, whichever it is


def _with_extra_revision(tmp: Path, body: str) -> Path:
    """A copy of the migrations with one more revision after the newest."""
    where = tmp / "migrations"
    shutil.copytree(MIGRATIONS, where, ignore=shutil.ignore_patterns("__pycache__"))
    (where / "versions" / "9999_test.py").write_text(
        f'"""a revision for the test"""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f'revision = "9999"\ndown_revision = "{HEAD}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        f"def upgrade() -> None:\n{body}\n\n\ndef downgrade() -> None:\n    pass\n"
    )
    return where


def _version(store: Store) -> str:
    with store.transaction() as c:
        return str(c.scalar(text("SELECT version_num FROM alembic_version")))


def _columns(store: Store) -> set[str]:
    return {col["name"] for col in inspect(store.engine).get_columns("calls")}


def _a_call(store: Store) -> str:
    call_id = str(uuid.uuid4())
    with store.transaction() as c:
        c.execute(insert(Call).values(id=call_id, started_at=utcnow()))
    return call_id


def test_a_failed_migration_leaves_the_schema_as_it_was(store: Store, tmp_path: Path) -> None:
    assert _version(store) == HEAD
    failing = _with_extra_revision(
        tmp_path,
        '    op.add_column("calls", sa.Column("doomed", sa.Integer()))\n'
        '    raise RuntimeError("this migration fails half way")',
    )
    with pytest.raises(RuntimeError, match="half way"):
        store.migrate(script_location=failing)
    assert _version(store) == HEAD
    assert "doomed" not in _columns(store)
    assert _a_call(store)  # the site keeps working on the schema it had


# lock_timeout is PostgreSQL's; SQLite has one writer at a time anyway.
@postgres_only
def test_an_upgrade_behind_a_long_transaction_gives_up_and_changes_nothing(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    adding = _with_extra_revision(tmp_path, '    op.add_column("calls", sa.Column("added", sa.Integer()))')
    other = create_engine(store.url)
    try:
        with other.connect() as holder:
            holder.execute(text("BEGIN"))
            holder.execute(text("LOCK TABLE calls IN ROW EXCLUSIVE MODE"))  # what an open INSERT holds
            with caplog.at_level(logging.WARNING, logger="core.db"), pytest.raises(MigrationBlocked) as blocked:
                store.migrate(lock_timeout_s=0.2, pauses_s=(0.05, 0.05), script_location=adding)
            assert "nothing changed" in str(blocked.value)
            assert sum("rolled back, again" in r.getMessage() for r in caplog.records) == 2
            assert _version(store) == HEAD and "added" not in _columns(store)
            # The calls' writes were never left queued behind the upgrade.
            call_id = _a_call(store)
            holder.execute(text("ROLLBACK"))
        store.migrate(lock_timeout_s=0.2, pauses_s=(), script_location=adding)
        assert _version(store) == "9999" and "added" in _columns(store)
        with store.transaction() as c:
            assert c.scalar(select(Call.id).where(Call.id == call_id)) == call_id
    finally:
        other.dispose()


def test_an_index_built_concurrently_leaves_the_calls_writes_free(store: Store, tmp_path: Path) -> None:
    """The way tests/unit/test_migration_safety.py asks new indexes to be built: outside
    the upgrade's transaction (PostgreSQL builds CONCURRENTLY only there). On PostgreSQL,
    while a call's transaction is open on `calls` the build waits for it, and other calls'
    writes go on meanwhile: a plain CREATE INDEX would hold them all."""
    index = _with_extra_revision(
        tmp_path,
        "    with op.get_context().autocommit_block():\n"
        '        op.create_index("ix_calls_agent_test", "calls", ["agent"], postgresql_concurrently=True)',
    )
    if store.engine.dialect.name != "postgresql":
        store.migrate(script_location=index)
    else:
        other = create_engine(store.url)
        try:
            with other.connect() as holder:
                holder.execute(text("BEGIN"))
                holder.execute(insert(Call).values(id=str(uuid.uuid4()), started_at=utcnow()))
                upgrade = threading.Thread(target=store.migrate, kwargs={"script_location": index})
                upgrade.start()
                _wait_for_the_build_to_wait(store)
                with store.transaction() as c:  # another call's write, while the build waits
                    c.execute(text("SET LOCAL statement_timeout = '10s'"))  # fail, do not hang, if held
                    c.execute(insert(Call).values(id=str(uuid.uuid4()), started_at=utcnow()))
                holder.execute(text("COMMIT"))
                upgrade.join(timeout=60)
                assert not upgrade.is_alive()
        finally:
            other.dispose()
    assert _version(store) == "9999"
    assert "ix_calls_agent_test" in {i["name"] for i in inspect(store.engine).get_indexes("calls")}


def _wait_for_the_build_to_wait(store: Store) -> None:
    """Until PostgreSQL shows the CREATE INDEX CONCURRENTLY waiting (bounded: 30 s)."""
    for _ in range(300):
        with store.transaction() as c:
            waiting = c.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'CREATE INDEX CONCURRENTLY%'"
                    " AND wait_event_type IS NOT NULL"
                )
            )
        if waiting:
            return
        time.sleep(0.1)
    raise AssertionError("the index build never showed as waiting")
