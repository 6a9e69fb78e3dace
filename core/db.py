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

from core.errors import StoreUnavailable

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
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

    def migrate(self) -> None:
        """Bring the schema to the newest revision."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection_url"] = self.url
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            if sqlite:
                # SQLite alters a table by copying it and dropping the old one; with foreign
                # keys on, that DROP deletes its rows first and cascades (a call's trail went
                # with a change to `calls`). Off for the migration, as SQLite's docs on
                # ALTER TABLE say, and checked afterwards. (Outside a transaction: inside
                # one the pragma does nothing.)
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, "head")
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise StoreUnavailable(f"after the migration {len(broken)} rows break a foreign key")
            finally:
                if sqlite:
                    conn.rollback()
                    conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    conn.commit()

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
