"""Migrations keep the data that is there, and end where the models are, on both databases."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text

from core.db import MIGRATIONS, Store
from core.models import Base, Call, CallStep, outside_models, utcnow


def _upgrade(store: Store, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection_url"] = store.url
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_altering_calls_keeps_every_calls_trail(db_url: str) -> None:
    """Seen in review: on SQLite, migration 0016 copied `calls` and dropped the old table,
    and the DROP cascaded to `call_steps`: every call lost its trail."""
    store = Store(db_url)
    try:
        _upgrade(store, "0015")
        now = utcnow()
        with store.engine.begin() as c:
            c.execute(
                text("INSERT INTO calls (id, transport, language, started_at) VALUES ('c-1', 'fastagi', 'zh', :t)"),
                {"t": now},
            )
            c.execute(
                text(
                    "INSERT INTO call_steps (call_id, seq, kind, node, detail, at)"
                    " VALUES ('c-1', 0, 'node', 'welcome', '{}', :t)"
                ),
                {"t": now},
            )
        store.migrate()
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(Call)) == 1
            assert s.scalar(select(func.count()).select_from(CallStep)) == 1
        with store.engine.connect() as c:
            assert (
                compare_metadata(MigrationContext.configure(c, opts={"include_name": outside_models}), Base.metadata)
                == []
            )
            if store.engine.dialect.name == "sqlite":
                assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # on again for the platform
    finally:
        store.dispose()


def test_one_order_per_call_stops_at_open_duplicates_and_names_them(db_url: str) -> None:
    """Before 0028 each re-save of a wrap-up made another order: the index cannot be built
    over them, and the migration says which to close rather than closing any itself."""
    store = Store(db_url)
    try:
        _upgrade(store, "0027")
        now = utcnow()
        insert = text(
            "INSERT INTO work_orders (kind, category, summary, status, call_id, created_by, created_at, due_at)"
            " VALUES ('call', 'how_to', 'x', :status, :call, 'test', :t, :t)"
        )
        with store.engine.begin() as c:
            for status, call in (("open", "c-dup"), ("answered", "c-dup"), ("open", "c-one"), ("closed", "c-one")):
                c.execute(insert, {"status": status, "call": call, "t": now})
        with pytest.raises(RuntimeError, match=r"call c-dup has 2 open orders \(the first 1\).*hotline orders close"):
            _upgrade(store, "0028")
        with store.engine.begin() as c:  # the supervisor closes the duplicate
            c.execute(text("UPDATE work_orders SET status = 'closed' WHERE id = 2"))
        store.migrate()
        with store.engine.begin() as c:
            assert c.execute(text("SELECT count(*) FROM work_orders")).scalar_one() == 4
    finally:
        store.dispose()
