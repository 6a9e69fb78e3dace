"""The store's part of a backup: a consistent dump, and its restore, on SQLite or PostgreSQL.

SQLite: the online backup API (`sqlite3.Connection.backup`, one step, so one read
transaction: in WAL mode `hotline serve` goes on writing meanwhile and the copy is the
database as of the step's start). PostgreSQL: `pg_dump --format=custom` under a snapshot
exported by our own REPEATABLE READ transaction, which also reads the audit chain's head and
the Alembic revision, so the three describe one instant. The password goes to pg_dump and
pg_restore in PGPASSWORD, never on their command line (`ps` shows that to every user).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, select, text
from sqlalchemy.engine import URL, make_url

from core.audit import AUDIT, GENESIS
from core.audit_log import Head
from hotline.errors import BackupRefused, BackupToolFailed

log = logging.getLogger(__name__)
SQLITE_FILE = "store.sqlite"
PG_FILE = "store.pgdump"
# libpq's environment for the URL's query options a site may set (PostgreSQL manual, 34.15).
_LIBPQ_QUERY = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}


@dataclass(frozen=True)
class Dumped:
    """What a dump holds: its file name in the backup, and, read in the same snapshot, the
    schema's Alembic revision and the audit chain's head."""

    file: str
    revision: str | None
    head: Head


def kind_of(url: str) -> str:
    """`sqlite` or `postgresql`, the database kind a backup records and a restore checks."""
    return make_url(url).get_backend_name()


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupRefused(f"a SQLite database in memory cannot be backed up or restored: {kind_of(url)}")
    return Path(database)


def dump(url: str, directory: Path) -> Dumped:
    """Write the store's consistent copy into `directory`."""
    if kind_of(url) == "sqlite":
        return _dump_sqlite(_sqlite_path(url), directory / SQLITE_FILE)
    return _dump_postgresql(url, directory / PG_FILE)


def _head_and_revision(conn: Connection) -> tuple[str | None, Head]:
    revision = MigrationContext.configure(conn).get_current_revision()
    row = conn.execute(select(AUDIT.c.seq, AUDIT.c.row_hash).order_by(AUDIT.c.seq.desc()).limit(1)).first()
    return revision, Head(0, GENESIS) if row is None else Head(int(row.seq), str(row.row_hash))


def _dump_sqlite(source: Path, target: Path) -> Dumped:
    if not source.is_file():
        raise BackupRefused(f"no SQLite database at {source}")
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        os.chmod(target, 0o600)
        src.backup(dst)  # pages=-1: all in one step, one snapshot
        # The copy stands alone: no -wal file beside it to lose.
        dst.execute("PRAGMA journal_mode=DELETE").fetchall()
    finally:
        dst.close()
        src.close()
    engine = create_engine(f"sqlite:///{target}", hide_parameters=True)
    try:
        with engine.connect() as conn:
            revision, head = _head_and_revision(conn)
    finally:
        engine.dispose()
    return Dumped(target.name, revision, head)


def _libpq_env(url: URL) -> dict[str, str]:
    """The environment for pg_dump/pg_restore: the URL's parts as libpq's PG* variables
    (any PG* of our own environment dropped, so the settings' URL alone decides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for value, name in (
        (url.host, "PGHOST"),
        (url.port, "PGPORT"),
        (url.username, "PGUSER"),
        (url.password, "PGPASSWORD"),
        (url.database, "PGDATABASE"),
    ):
        if value:
            env[name] = str(value)
    for key, name in (*_LIBPQ_QUERY.items(), ("host", "PGHOST"), ("port", "PGPORT")):
        option = url.query.get(key)
        if isinstance(option, str):
            env[name] = option
    return env


def _tool(name: str) -> str:
    """The newest installed pg_dump/pg_restore (Debian keeps one per major version under
    /usr/lib/postgresql/N/bin; a newer one reads and writes older servers' data)."""
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if versions:
        return str(versions[-1])
    found = shutil.which(name)
    if found is None:
        raise BackupToolFailed(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return found


def _run(argv: list[str], env: dict[str, str]) -> None:
    name = Path(argv[0]).name
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise BackupToolFailed(f"{name} exited {result.returncode}: {' / '.join(detail[-3:]) or 'no message'}")


def _dump_postgresql(url: str, target: Path) -> Dumped:
    engine = create_engine(url, isolation_level="REPEATABLE READ", hide_parameters=True)
    try:
        with engine.connect() as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            revision, head = _head_and_revision(conn)
            # The snapshot is usable by pg_dump while this transaction stays open.
            argv = [_tool("pg_dump"), "--format=custom", "--no-password", f"--snapshot={snapshot}"]
            target.touch(mode=0o600)
            _run([*argv, f"--file={target}"], _libpq_env(make_url(url)))
            conn.rollback()
    finally:
        engine.dispose()
    return Dumped(target.name, revision, head)


def tables(url: str) -> list[str]:
    """The tables the target database holds already (none for a restore onto an empty one)."""
    if kind_of(url) == "sqlite":
        path = _sqlite_path(url)
        if not path.exists() or path.stat().st_size == 0:
            return []
    engine = create_engine(url, hide_parameters=True)
    try:
        with engine.connect() as conn:
            return sorted(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def restore(url: str, dumped: Path, *, force: bool) -> None:
    """Put the dump `dumped` into the settings' database (checked empty, or `force`)."""
    if kind_of(url) == "sqlite":
        _restore_sqlite(dumped, _sqlite_path(url))
        return
    argv = [_tool("pg_restore"), "--no-password", "--exit-on-error", "--single-transaction"]
    # Owners and grants belong to the source server's roles, which the target may not have:
    # the objects belong to the restoring user (the settings' one), as migrations make them.
    argv += ["--no-owner", "--no-privileges"]
    if force:
        argv += ["--clean", "--if-exists"]
    database = make_url(url).database
    if not database:
        raise BackupRefused("the settings' PostgreSQL URL names no database to restore into")
    env = _libpq_env(make_url(url))
    with tempfile.TemporaryDirectory(prefix="hotline-restore-") as tmp:
        listing = Path(tmp) / "toc"
        listing.write_text(_without_extension_entries(_toc(dumped, env), force=force), encoding="utf-8")
        _run([*argv, f"--use-list={listing}", f"--dbname={database}", str(dumped)], env)


def _toc(dumped: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [_tool("pg_restore"), "--list", str(dumped)], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupToolFailed(f"pg_restore --list exited {result.returncode}: {result.stderr.strip()[-300:]}")
    return result.stdout


def _without_extension_entries(toc: str, *, force: bool) -> str:
    """The dump's table of contents without `COMMENT ON EXTENSION`, and with `force` (the
    database has the schema already, pg_trgm with it) without the extension itself: only the
    extension's owner may comment on it or drop it (`--clean`), and where a superuser created
    pg_trgm beforehand (operations.md, "Migration 0023") the user restoring is not its owner."""
    unwanted = (" COMMENT - EXTENSION ", " EXTENSION - ") if force else (" COMMENT - EXTENSION ",)
    return "".join(line for line in toc.splitlines(keepends=True) if not any(u in line for u in unwanted))


def _restore_sqlite(dumped: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".restoring")
    shutil.copyfile(dumped, partial)
    os.chmod(partial, 0o600)
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    # A -wal or -shm beside an older file would be replayed onto the restored one.
    for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)
    os.replace(partial, target)
