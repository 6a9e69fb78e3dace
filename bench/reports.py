"""The supervisors' half-year report over a million call records and a million messages.

    python -m bench.reports [--calls 1000000] [--messages 1000000] [--db sqlite,postgresql]

The store is filled with `hotline simulate`'s traffic model for 2013-07-01 .. 2013-12-31
(every call in that half-year, a query step for each self-service call, agent shifts,
messages), then `reports.report.build` runs for that half-year: once on the fresh store
(it sums the closed hours into the report tables, as the first report after loading
history does), then three times (median); beside it, in the same run and on the same store, the plainest query there
is over the same table: `SELECT count(*) FROM calls`. PostgreSQL is a fresh cluster
(fsync off), analysed after the load as autovacuum would; SQLite a file in WAL mode.
Target: the report under 2 s on either database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text

from bench.procs import postgres_url
from core.db import Store
from core.models import AgentEvent, Call, CallStep, SmsMessage
from core.settings import QueueSettings
from hotline import simulate
from reports.period import parse_period
from reports.report import build

FIRST, LAST = dt.date(2013, 7, 1), dt.date(2013, 12, 31)
ZONE = "Asia/Shanghai"
RUNS = 3
QUEUE = QueueSettings(timezone=ZONE)
# Weekdays at full volume, weekends at a quarter (simulate.day): days worth of full volume.
FULL_DAYS = sum(1.0 if (FIRST + dt.timedelta(days=i)).weekday() < 5 else 0.25 for i in range((LAST - FIRST).days + 1))


@dataclass
class Result:
    db: str
    calls: int
    messages: int
    load_s: float
    count_s: float
    report_s: list[float]
    first_s: float
    peak_mib: float


def _fill(store: Store, calls: int, messages: int) -> tuple[int, int]:
    traffic = simulate.Traffic(
        calls_per_day=round(calls / FULL_DAYS),
        messages_per_day=round(messages / FULL_DAYS),
        agents=tuple(str(1001 + i) for i in range(40)),
        seed=2013,
    )
    written_calls = written_messages = 0
    pg = store.engine.dialect.name == "postgresql"
    for rows in simulate.days(FIRST, LAST, ZONE, traffic):
        with store.transaction() as c:
            for model, batch in (
                (Call, rows.calls),
                (CallStep, rows.steps),
                (AgentEvent, rows.agent_events),
                (SmsMessage, rows.messages),
            ):
                if not batch:
                    continue
                if pg:
                    _copy(c, model, batch)
                else:
                    c.execute(insert(model), batch)
        written_calls += len(rows.calls)
        written_messages += len(rows.messages)
    return written_calls, written_messages


def _copy(c: Any, model: Any, batch: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY: a million rows in seconds rather than minutes."""
    columns = list(batch[0])
    table = model.__table__.name
    raw = c.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in batch:
            copy.write_row([_plain(row[k]) for k in columns])


def _plain(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else value


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(db: str, url: str, calls: int, messages: int) -> Result:
    store = Store(url)
    store.migrate()
    load_s, (n_calls, n_messages) = _timed(lambda: _fill(store, calls, messages))
    if db == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
    else:
        with store.transaction() as c:
            c.execute(text("ANALYZE"))
    period = parse_period(FIRST.isoformat(), LAST.isoformat(), ZONE)

    def count() -> int:
        with store.transaction() as c:
            return int(c.execute(select(func.count()).select_from(Call)).scalar_one())

    count()
    count_s = statistics.median(_timed(count)[0] for _ in range(RUNS))
    first_s, report = _timed(lambda: build(store, period, QUEUE))
    times = [_timed(lambda: build(store, period, QUEUE))[0] for _ in range(RUNS)]
    tracemalloc.start()  # after the timings: tracing slows Python down several times
    build(store, period, QUEUE)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    data = report.as_dict()
    assert data["calls"] == n_calls, (data["calls"], n_calls)  # every call counted, once
    assert data["sms"]["messages"] == n_messages
    store.dispose()
    return Result(db, n_calls, n_messages, load_s, count_s, times, first_s, peak / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")
    print(f"reports: the half-year {FIRST} .. {LAST} over ~{args.calls:,} calls and ~{args.messages:,} messages")
    results = []
    try:
        for db in args.db.split(","):
            if db == "sqlite":
                results.append(run(db, f"sqlite:///{tmp}/bench.db", args.calls, args.messages))
            elif db == "postgresql":
                for url in postgres_url(tmp):
                    results.append(run(db, url, args.calls, args.messages))
            else:
                raise SystemExit(f"--db: unknown database {db!r} (sqlite, postgresql)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{'db':11} {'calls':>10} {'messages':>10} {'load s':>7} {'count(*) s':>10} "
        f"{'report s (median)':>17} {'first (sums the hours)':>22} {'vs count':>8} {'peak MiB':>8}"
    )
    for r in results:
        median = statistics.median(r.report_s)
        print(
            f"{r.db:11} {r.calls:10,d} {r.messages:10,d} {r.load_s:7.0f} {r.count_s:10.3f} "
            f"{median:17.2f} {r.first_s:22.2f} {median / r.count_s:7.1f}x {r.peak_mib:8.1f}"
        )


if __name__ == "__main__":
    main()
