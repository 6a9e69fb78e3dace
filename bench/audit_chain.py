"""Appending to the audit chain: a screen-pop-like transaction with its audit row and without.

    python -m bench.audit_chain [--seconds 3] [--max 20000] [--writers 1,4] [--db sqlite,postgresql]

Each writer is a thread with a store of its own (its own connections, as another process
would have), running back to back for `--seconds` (at most `--max` each) the transaction an
agent's screen pop is: the agent, the call and the call's trail read through an ORM
session, then, with audit, the `view:screen_pop` entry appended under the chain's lock
(core.audit.record). The baseline is the same transaction without the entry, measured in
the same run on the same store just before. Every writer's agent is on a call of its own.
With audit, transactions per second are audit rows appended per second; the chain is
verified afterwards. PostgreSQL is a fresh cluster from tools/pg.sh (fsync off; BENCH_PG_URL
for an empty database of yours), SQLite a file in WAL mode.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from bench.fastagi_load import percentile_ms
from bench.procs import postgres_url
from core import audit
from core.audit_log import verify
from core.db import Store
from core.models import Agent, Call, CallStep, utcnow

STEPS = 12  # a call's trail by the time it reaches an agent: menu nodes, prompts, digits, queries
JOIN_S = 60.0
WARM_UP = 20  # untimed transactions of each kind per writer (psycopg prepares a statement on its 5th use)


@dataclass
class Result:
    db: str
    writers: int
    audited: bool
    count: int
    wall_s: float
    latencies_s: list[float]

    @property
    def per_s(self) -> float:
        return self.count / self.wall_s if self.wall_s else float("nan")


def _fill(store: Store, agents: int) -> None:
    with store.session() as s:
        for n in range(agents):
            agent_id, call_id = f"{1001 + n}", f"bench-call-{n}"
            s.add(Call(id=call_id, caller_number="13800000000", started_at=utcnow(), resident_id=n + 1))
            s.add(Agent(id=agent_id, name=f"agent {agent_id}", interface=f"PJSIP/{agent_id}", current_call_id=call_id))
            s.add_all(
                CallStep(call_id=call_id, seq=i, kind="node" if i % 2 else "prompt", node=f"n{i}", detail={})
                for i in range(STEPS)
            )


def _screen_pop(store: Store, agent_id: str, audited: bool) -> None:
    """The reads of ivr.screenpop.screen_pop, and its audit entry in the same transaction."""
    with store.session() as s:
        agent = s.get(Agent, agent_id)
        assert agent is not None and agent.current_call_id is not None
        call = s.get(Call, agent.current_call_id)
        assert call is not None
        steps = list(s.scalars(select(CallStep).where(CallStep.call_id == call.id).order_by(CallStep.seq)))
        assert len(steps) == STEPS
        if audited:
            audit.record(
                s, actor=f"console:{agent_id}", action="view:screen_pop", resident_id=call.resident_id, call_id=call.id
            )


def _run(stores: list[Store], db: str, audited: bool, seconds: float, most: int) -> Result:
    start = threading.Barrier(len(stores) + 1)
    latencies: list[list[float]] = [[] for _ in stores]
    failures: list[BaseException] = []

    def writer(k: int) -> None:
        mine, agent_id = latencies[k], f"{1001 + k}"
        try:
            start.wait(timeout=JOIN_S)
            end = time.perf_counter() + seconds
            while len(mine) < most and time.perf_counter() < end:
                began = time.perf_counter()
                _screen_pop(stores[k], agent_id, audited)
                mine.append(time.perf_counter() - began)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(k,), daemon=True) for k in range(len(stores))]
    for t in threads:
        t.start()
    start.wait(timeout=JOIN_S)
    began = time.perf_counter()
    for t in threads:
        t.join(timeout=seconds + JOIN_S)
    wall = time.perf_counter() - began
    if failures or any(t.is_alive() for t in threads):
        raise SystemExit(f"{db}: a writer failed: {failures[:1] or 'still running'}")
    flat = [x for mine in latencies for x in mine]
    return Result(db, len(stores), audited, len(flat), wall, flat)


def run(db: str, url: str, writers: list[int], seconds: float, most: int) -> list[Result]:
    store = Store(url)
    store.migrate()
    _fill(store, max(writers))
    results, warmed = [], 0
    for n in writers:
        stores = [Store(url) for _ in range(n)]
        try:
            for k in range(n):  # connections opened and statements prepared before the clock starts
                for audited in [False, True] * WARM_UP:
                    _screen_pop(stores[k], f"{1001 + k}", audited)
                warmed += WARM_UP
            for audited in (False, True):
                results.append(_run(stores, db, audited, seconds, most))
        finally:
            for s in stores:
                s.dispose()
    verdict = verify(store)
    appended = warmed + sum(r.count for r in results if r.audited)
    store.dispose()
    if not verdict.ok or verdict.rows != appended:
        raise SystemExit(f"{db}: the chain does not hold: {verdict.as_json()} after {appended} appends")
    return results


def report(results: list[Result], seconds: float) -> None:
    print(f"\nAudit chain: a screen pop's transaction (agent, call, {STEPS} trail steps read) with its audit row")
    print(f"and without (the baseline, same run and store), {seconds:g} s per row; with audit, txn/s = appends/s")
    columns = f"{'txns':>8}{'txn/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'rate x':>8}{'p50 x':>7}"
    print(f"{'db':<11}{'writers':>8}{'audit':>7}{columns}")
    baseline: dict[tuple[str, int], Result] = {}
    for r in results:
        p50, p99 = percentile_ms(r.latencies_s, 0.5), percentile_ms(r.latencies_s, 0.99)
        ratios = ""
        if r.audited:
            b = baseline[(r.db, r.writers)]
            ratios = f"{r.per_s / b.per_s:>8.2f}{p50 / percentile_ms(b.latencies_s, 0.5):>7.2f}"
        else:
            baseline[(r.db, r.writers)] = r
        print(
            f"{r.db:<11}{r.writers:>8}{'yes' if r.audited else 'no':>7}{r.count:>8}{r.per_s:>9.0f}"
            f"{p50:>9.2f}{p99:>9.2f}{ratios}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="per run (writers x with/without audit x db)")
    parser.add_argument("--max", type=int, default=20_000, help="transactions per writer and run, at most")
    parser.add_argument("--writers", default="1,4")
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    writers = [int(n) for n in args.writers.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")  # pg.sh runs initdb as postgres under it
    results: list[Result] = []
    try:
        for db in args.db.split(","):
            if db == "sqlite":
                results += run(db, f"sqlite:///{tmp}/bench.db", writers, args.seconds, args.max)
            elif db == "postgresql":
                for url in postgres_url(tmp):
                    results += run(db, url, writers, args.seconds, args.max)
            else:
                raise SystemExit(f"--db: unknown database {db!r} (sqlite, postgresql)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, args.seconds)


if __name__ == "__main__":
    main()
