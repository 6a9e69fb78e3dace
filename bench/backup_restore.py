"""How long `hotline backup` and `hotline restore` take for a county's year of traffic.

    python -m bench.backup_restore [--days 365] [--recording-days 30] [--db sqlite,postgresql]

The store is filled by `hotline simulate` (its defaults: 110 calls a weekday, a quarter at
weekends, 300 texts a day) for `--days` up to 2025-12-31, plus the audit rows such calls
leave (an identification and a read per IVR query, a screen pop per agent call), appended
to the chain in batches. Recordings: for each call an agent answered in the last
`--recording-days` days, a WAV of its talk time (8 kHz 16-bit mono, 16,000 bytes a second,
as Asterisk's MixMonitor writes). Then, timed: a full backup, `backup --verify`, a second
backup with nothing new (every recording hard-linked), and a restore onto an empty database
and directory, followed by `audit verify` against the backup's head. PostgreSQL: a fresh
cluster from tools/pg.sh (BENCH_PG_URL for a server of yours: two databases are created on
it and dropped).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

from sqlalchemy import create_engine, select, text

from bench.procs import postgres_url
from core import audit
from core.audit_log import Head, verify
from core.db import Store
from core.models import Call, CallStep
from core.settings import Settings, load_settings
from hotline import backup, simulate

LAST = dt.date(2025, 12, 31)
ZONE = "Asia/Shanghai"
BYTES_PER_S = 16_000
P = ParamSpec("P")
R = TypeVar("R")
_BLOCK = os.urandom(1 << 20)


def _settings(url: str, recordings: Path) -> Settings:
    return load_settings(
        None,
        {
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SECURITY_PIN_PEPPER": "bench-pepper",
            "HOTLINE_RECORDINGS_DIR": str(recordings),
        },
    )


def _audit_rows(store: Store) -> int:
    """Two entries per IVR query (identify, read) and one per agent call (the screen pop)."""
    with store.transaction() as c:
        queries = c.execute(select(CallStep.call_id, CallStep.node).where(CallStep.kind == "query")).all()
        answered = c.execute(select(Call.id).where(Call.disposition == "agent")).scalars().all()
    entries = [
        audit.Entry.of("ivr", a, None, q.call_id, "", None) for q in queries for a in ("identify", f"read:{q.node}")
    ]
    entries += [audit.Entry.of("console:1001", "view:screen_pop", None, call_id, "", None) for call_id in answered]
    for i in range(0, len(entries), 5000):
        with store.transaction() as c:
            audit.append(c, entries[i : i + 5000])
    return len(entries)


def _recordings(store: Store, root: Path, days: int) -> tuple[int, int]:
    since = dt.datetime.combine(LAST - dt.timedelta(days=days - 1), dt.time(), dt.UTC)
    with store.transaction() as c:
        calls = c.execute(
            select(Call.id, Call.started_at, Call.talk_s).where(Call.disposition == "agent", Call.started_at >= since)
        ).all()
    total = 0
    for call in calls:
        path = root / "calls" / call.started_at.date().isoformat() / f"{call.id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = int(call.talk_s or 0) * BYTES_PER_S
        with path.open("wb") as f:
            f.write(b"RIFF" + uuid.uuid4().bytes)  # not a playable WAV: the bytes, not the header, are timed
            left = size
            while left > 0:
                f.write(_BLOCK[: min(left, len(_BLOCK))])
                left -= len(_BLOCK)
        total += size
    return len(calls), total


def _size(path: Path) -> int:
    seen, total = set(), 0
    for p in path.rglob("*"):
        st = p.stat()
        if p.is_file() and st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_size
    return total


def _store_size(url: str) -> int:
    if url.startswith("sqlite"):
        return Path(url.removeprefix("sqlite:///")).stat().st_size
    engine = create_engine(url)
    with engine.connect() as c:
        size = int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    engine.dispose()
    return size


def _timed(label: str, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    print(f"  {label:<42}{time.perf_counter() - start:>8.1f} s", flush=True)
    return result


def run(db: str, source: str, target: str, tmp: Path, days: int, recording_days: int) -> None:
    first = LAST - dt.timedelta(days=days - 1)
    store = Store(source)
    store.migrate()
    start = time.perf_counter()
    written = simulate.simulate(store, first, LAST, ZONE, simulate.Traffic())
    rows = _audit_rows(store)
    files, recorded = _recordings(store, tmp / "recordings", recording_days)
    store.dispose()
    print(
        f"{db}: {first} .. {LAST}: {written['calls']} calls, {written['messages']} texts, {rows} audit rows "
        f"(filled in {time.perf_counter() - start:.0f} s); store {_store_size(source) / 1e6:.1f} MB; "
        f"{files} recordings of the last {recording_days} days, {recorded / 1e9:.2f} GB",
        flush=True,
    )
    settings = _settings(source, tmp / "recordings")
    _timed("backup (full)", backup.backup, settings, tmp / "b" / "1", since=None, settings_file=None)
    print(f"  {'  backup size':<42}{_size(tmp / 'b' / '1') / 1e9:>8.2f} GB")
    _timed("backup --verify", backup.verify, tmp / "b" / "1")
    _timed(
        "second backup (recordings linked)", backup.backup, settings, tmp / "b" / "2", since=None, settings_file=None
    )
    print(f"  {'  its own new bytes':<42}{(_size(tmp / 'b') - _size(tmp / 'b' / '1')) / 1e6:>8.1f} MB")
    restored = _settings(target, tmp / "restored")
    manifest = _timed("restore onto an empty server", backup.restore, restored, tmp / "b" / "2", force=False)
    check = Store(target)
    verdict = _timed("audit verify --expect-head", verify, check, Head.parse(manifest.audit_head))
    check.dispose()
    if not verdict.ok:
        raise SystemExit(f"{db}: the restored chain does not verify: {verdict.as_json()}")


def _databases(base: str) -> Iterator[tuple[str, str]]:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    names = [f"bench_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("src", "dst")]
    with admin.connect() as c:
        for name in names:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + names[0], base.rsplit("/", 1)[0] + "/" + names[1]
    finally:
        with admin.connect() as c:
            for name in names:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=365, help="days of simulated traffic, up to 2025-12-31")
    parser.add_argument("--recording-days", type=int, default=30, help="days of agent calls with a recording file")
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")  # pg.sh runs initdb as postgres under it
    try:
        for db in args.db.split(","):
            work = tmp / db
            work.mkdir()
            if db == "sqlite":
                run(
                    db,
                    f"sqlite:///{work}/hotline.db",
                    f"sqlite:///{work}/restored.db",
                    work,
                    args.days,
                    args.recording_days,
                )
            elif db == "postgresql":
                for url in postgres_url(tmp):
                    for source, target in _databases(url):
                        run(db, source, target, work, args.days, args.recording_days)
            else:
                raise SystemExit(f"--db: unknown database {db!r} (sqlite, postgresql)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
