"""Database engine, sessions and migrations (Alembic, run programmatically)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ARRAY,
    JSON,
    ColumnElement,
    Connection,
    Engine,
    Text,
    any_,
    bindparam,
    column,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import MigrationBlocked, StoreUnavailable

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_TIMEOUT_S = 3.0  # the longest a schema upgrade may hold calls' writes behind it
MIGRATION_RETRY_S = (1.0, 2.0, 4.0, 8.0)
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for lock_timeout (Appendix A, class 55)
IDLE_PING_S = 1.0  # a PostgreSQL connection unused this long is pinged before use
T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets report readers run beside the FastAGI writers; busy_timeout queues writers
    # instead of failing them at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _sqlite_migration_engine(url: str) -> Engine:
    """An engine for one schema upgrade of a SQLite file, its DDL in one transaction.

    Python's sqlite3 module begins a transaction only before an INSERT, UPDATE or DELETE,
    so a migration's CREATE and ALTER ran outside one: a migration that failed half way left
    its first statements applied (tests/store/test_upgrade.py found it). As SQLAlchemy's
    docs on the pysqlite driver advise ("Serializable isolation / Savepoints / Transactional
    DDL"), the driver begins nothing here and the engine says BEGIN itself (IMMEDIATE: the
    write lock at once, waiting up to busy_timeout behind a running serve's writes).
    Foreign keys are off on its connections: SQLite alters a table by copying it and
    dropping the old one, and with them on that DROP deletes the rows and cascades (a call's
    trail went with a change to `calls`), as SQLite's docs on ALTER TABLE say; the pragma
    only takes effect outside a transaction, so it is set when the connection is made."""
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _own_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys=OFF")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# PostgreSQL's message for these classes of error may quote the bound value itself
# (22P02: `invalid input syntax for type integer: "1381234567x"`); SQLSTATE classes per
# the PostgreSQL manual, appendix A.
_VALUE_QUOTING_CLASSES = ("22",)
_QUOTED = re.compile(r'"[^"]*"')


def _driver_text_without_values(ctx: ExceptionContext) -> None:
    """Keep bound values (ID numbers, phone numbers, texts) out of every database error's
    text. `hide_parameters` drops SQLAlchemy's `[parameters: ...]`, but the driver's own
    message carries them too: PostgreSQL's DETAIL (`Key (id_number)=(3305...) already
    exists`, `Failing row contains (...)`) and CONTEXT lines. Only the primary message is
    kept, in the SQLAlchemy error and in the driver's error chained beneath it (a
    traceback prints both)."""
    orig = ctx.original_exception
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if not isinstance(primary, str):
        return  # SQLite's messages name the constraint, never the values
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate[:2] in _VALUE_QUOTING_CLASSES:
        primary = _QUOTED.sub('"…"', primary)
    orig.args = (primary,)
    wrapped = ctx.sqlalchemy_exception
    if wrapped is not None:
        wrapped.args = (f"({type(orig).__module__}.{type(orig).__name__}) {primary}",)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for a SQLite file or PostgreSQL; creates the SQLite file's folder. Errors
    never carry the statement's bound values (`hide_parameters`, `_driver_text_without_values`)."""
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_size=16, max_overflow=32, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_size=16, max_overflow=32, **kwargs)
    event.listen(engine, "handle_error", _driver_text_without_values)
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _checked_in(_dbapi_conn: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """A PostgreSQL connection idle for a while is tried before use (the server may have
    restarted); a dead one is replaced by the pool (DisconnectionError). A connection in
    steady use is not pinged: a round trip per transaction would cost the dispatcher a
    tenth of its time, and a restart is found by its next statement anyway (the pool then
    drops every connection it holds)."""
    if time.monotonic() - record.info.get("checked_in", float("-inf")) < IDLE_PING_S:
        return
    try:
        cursor = dbapi_conn.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as exc:  # whatever the driver raises for a dead connection
        raise DisconnectionError(str(exc)) from exc


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


@contextmanager
def _unavailable_as_ours() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailable(str(exc.orig).splitlines()[0] if exc.orig else str(exc)) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable("database connection lost") from exc
        raise


class Store:
    """The engine and a session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """An ORM transaction: committed on success, rolled back on error.

        Driver errors that mean the database is out of reach become StoreUnavailable.
        """
        with _unavailable_as_ours(), self._sessions.begin() as s:
            yield s

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core transaction, for the hot paths (a third of an ORM session's cost here)."""
        with _unavailable_as_ours(), self.engine.begin() as conn:
            yield conn

    def migrate(
        self,
        *,
        lock_timeout_s: float = MIGRATION_LOCK_TIMEOUT_S,
        pauses_s: Sequence[float] = MIGRATION_RETRY_S,
        script_location: Path = MIGRATIONS,
    ) -> None:
        """Bring the schema to the newest revision, all of it in one transaction: a
        migration that fails leaves the schema as it was (PostgreSQL's DDL is transactional;
        on SQLite the same holds for the statements Alembic's batch mode issues).

        On PostgreSQL beside a running `hotline serve`: a DDL statement queues for its
        table's lock behind the transactions holding it, and every call's INSERT queues
        behind the DDL. `lock_timeout` bounds that queue: a statement that waits longer
        gives up, the upgrade rolls back and is tried again after each of `pauses_s`
        (PostgreSQL's docs on lock_timeout; the practice of zero-downtime migrations).
        Still blocked after those, MigrationBlocked: nothing changed, try again later."""
        for pause in (*pauses_s, None):
            try:
                self._migrate_once(lock_timeout_s, script_location)
                return
            except DBAPIError as exc:
                if _sqlstate(exc) != LOCK_NOT_AVAILABLE:
                    raise
                if pause is None:
                    raise MigrationBlocked(
                        f"the schema upgrade waited more than {lock_timeout_s:g} s for a table's lock "
                        f"{len(pauses_s) + 1} times (a long transaction holds it: a report, a backup, an "
                        "open psql session); it was rolled back and nothing changed: try again"
                    ) from exc
                log.warning(
                    "schema upgrade: a table's lock was not free within %g s; rolled back, again in %g s",
                    lock_timeout_s,
                    pause,
                )
                time.sleep(pause)

    def _migrate_once(self, lock_timeout_s: float, script_location: Path) -> None:
        """One upgrade to head in the transaction core/migrations/env.py begins (Alembic's
        own, so that a revision may step out of it with `autocommit_block` to build an
        index CONCURRENTLY: tests/unit/test_migration_safety.py)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(script_location))
        cfg.attributes["connection_url"] = self.url
        sqlite = self.engine.dialect.name == "sqlite"
        engine = _sqlite_migration_engine(self.url) if sqlite else self.engine
        try:
            with engine.connect() as conn:
                if not sqlite:  # for this connection's every transaction, until RESET below
                    conn.exec_driver_sql(f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
                    conn.commit()
                try:
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                finally:
                    if not sqlite:
                        conn.rollback()
                        conn.exec_driver_sql("RESET lock_timeout")
                        conn.commit()
        finally:
            if sqlite:
                engine.dispose()

    def dispose(self) -> None:
        self.engine.dispose()


def chunks(values: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """`values` in slices of at most `size`: bounded IN lists (SQLite caps a statement's
    parameters) and bounded transactions."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


def pg_lock(conn: Connection, key: int | str) -> None:
    """On PostgreSQL, a transaction-level advisory lock on `key` (a number, or a name such
    as `mo:<phone>` hashed to one), held until the transaction ends: what it guards is read
    and written by one transaction at a time across processes. SQLite has one writer at a
    time already; there the caller's first statement must be its first write."""
    if conn.dialect.name != "postgresql":
        return
    number = func.hashtextextended(key, 0) if isinstance(key, str) else key
    conn.execute(select(func.pg_advisory_xact_lock(number)))


def begin_write(conn: Connection) -> None:
    """On SQLite, take the database's write lock now (BEGIN IMMEDIATE), unless this
    transaction holds it already. pysqlite begins a transaction only before its first write
    (and not before a SAVEPOINT, whose RELEASE would then commit). Elsewhere nothing."""
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    if raw is not None and not getattr(raw, "in_transaction", True):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def among(conn: Connection, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(array)`, one statement text for any
    number of values: psycopg prepares it after a few runs, where an IN list is new SQL for
    each length, parsed and planned by the server every time (a dispatcher runs hundreds
    such statements a second)."""
    return among_param(conn.dialect.name, column, None, values)


def upsert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT (PostgreSQL or SQLite), which has `on_conflict_do_nothing` and
    `on_conflict_do_update`; both databases speak the same ON CONFLICT."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def among_param(
    dialect: str, column: Any, name: str | None, values: Sequence[Any] | None = None
) -> ColumnElement[bool]:
    """`among` for the named dialect; without `values`, for a statement built once: the
    values come at execution as parameter `name` (a list)."""
    given: dict[str, Any] = {} if values is None else {"value": list(values)}
    if dialect == "postgresql":
        return cast(ColumnElement[bool], column == any_(bindparam(name, type_=ARRAY(column.type), **given)))
    return cast(ColumnElement[bool], column.in_(bindparam(name, expanding=True, **given)))


@cache
def _insert_statement(
    dialect: str, table: Any, names: tuple[str, ...], finish: Callable[[Any], Any] | None
) -> tuple[Any, bool]:
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    as_json = dialect == "postgresql"
    if as_json:
        document = cast_(bindparam("rows", type_=Text), JSON)
        rows = (
            func.json_to_recordset(document)
            .table_valued(*(column(name, table.c[name].type) for name in names))
            .render_derived(name="row", with_types=True)
        )
        insert = insert.from_select(list(names), select(*(rows.c[name] for name in names)))
    return (finish(insert) if finish is not None else insert), as_json


def _json_value(value: object) -> str:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")  # as UtcDateTime's own bind says
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a row for insert_rows")


def insert_rows(
    conn: Connection, table: Any, rows: Sequence[dict[str, Any]], finish: Callable[[Any], Any] | None = None
) -> None:
    """INSERT `rows` (dicts with the same keys); `finish` adds to the dialect's INSERT
    (`upsert`'s, so ON CONFLICT), and must be one function, not a new one per call: the
    statement is built once per table, columns and `finish`.

    On PostgreSQL one statement over the rows as one JSON document (`INSERT ... SELECT ...
    FROM json_to_recordset(...)`), the same text for any number of rows. psycopg's
    executemany runs the INSERT once per row (60-70 us of server time each, plus the
    client's per-row work); one array per column cost 6 us per value to dump, in Python
    (a regular expression per value); json.dumps writes them in C. Elsewhere an executemany."""
    if not rows:
        return
    names = tuple(rows[0])
    statement, as_json = _insert_statement(conn.dialect.name, table, names, finish)
    if as_json:
        conn.execute(statement, {"rows": json.dumps(rows, ensure_ascii=False, default=_json_value)})
    else:
        conn.execute(statement, list(rows))
