"""Migrations keep the data that is there, and end where the models are, on both databases."""

from __future__ import annotations

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
