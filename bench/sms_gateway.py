"""SMS gateway: business events to the SMSC simulator, with receipts, on SQLite and PostgreSQL;
over SMPP and over CMPP.

    python -m bench.sms_gateway [--events 20000] [--db sqlite,postgresql] [--pg-dispatchers 1,2]
                                [--window 200] [--batch-share S] [--transport smpp,cmpp]
                                [--cmpp-version 3.0]

Measured in the same run, for each transport against one simulator process, `hotline
smsc-sim` (SMPP) or `hotline ismg-sim` (CMPP), no TPS cap, receipts after 50 ms, every
message delivered:

  ceiling   SMPP: smpp34's own client (the Rust codec, independent of aiosmpplib) sending the
            same segments as fast as it can with the same window, until every receipt is in;
            CMPP: a bare asyncio client on our codec (`bench/cmpp_ceiling.py`) sending the
            same parts with the same window, until every status report is answered
  sqlite    one `hotline serve --only sms` on SQLite
  postgres  one, then two `hotline serve --only sms` on one PostgreSQL (a fresh cluster each,
            fsync off: the data is disposable)

End to end means from the commit of the events (one statement, as a batch load does) until
every message is `delivered` in the store: claimed, rendered, submitted, its submit_sm_resp
recorded and its receipt matched. While the batch runs, instant reminders (pension credited)
are inserted one by one, each in its own transaction; their latency is from that commit to
the SMSC's acceptance being recorded (`submitted_at`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import smpp34
from sqlalchemy import func, insert, select

from bench.cmpp_ceiling import SOURCE, SRC_ID, cmpp_ceiling
from bench.procs import ROOT, MemorySampler, ServerProcess, child_env, free_port
from core.db import Store
from core.models import BusinessEvent, Resident, SmsMessage, utcnow
from sms.cmpp_results import Version
from sms.cmpp_text import split_text
from sms.encoding import encode
from sms.templates import render

PEPPER = "bench-pepper"
WINDOW = 200
INSTANT_EVERY_S = 0.1
LIMIT_S = 600.0
SYSTEM_ID, PASSWORD = "hotline", "bench"
CMPP_SECRET = "bench-cmpp"
BATCH_TYPE = "account_statement"  # a batch category ("statement")
CONFIG = """\
[sms]
quiet_hours = {}   # the benchmark runs at any hour
claim_batch = %d
poll_s = 0.05
[smpp]
window = %d
tps = 100000
"""


@dataclass
class Result:
    name: str
    messages: int
    seconds: float
    instant_ms: list[float]
    peak_rss: int = 0
    cpu: str = ""  # CPU seconds by process kind, over the run

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


def people(n: int, first: int = 0) -> list[dict[str, object]]:
    return [
        {
            "id": 1_000_000 + i,
            "id_number": f"9{i:016d}X",
            "name": f"居民{i % 1000}",
            "phone": f"139{i:08d}",
            "pin_hash": "-",
            "card_number": f"C{i:09d}",
        }
        for i in range(first, first + n)
    ]


def statement(person: dict[str, object]) -> dict[str, object]:
    i = int(str(person["id"])) - 1_000_000
    return {
        "event_type": BATCH_TYPE,
        "subject_kind": "person",
        "subject_id": person["id_number"],
        "payload": {"name": person["name"], "year": "2025", "pension": 1_234_500 + i, "medical": 56_700 + i},
        "idempotency_key": f"statement:2025:{person['id_number']}",
    }


# --- the ceiling: smpp34's client --------------------------------------------------------


async def ceiling(port: int, texts: list[str], window: int) -> Result:
    client = smpp34.Client("127.0.0.1", port, SYSTEM_ID, PASSWORD, window_size=window)
    smsc = await client.connect()
    pdus = []
    for i, text in enumerate(texts):
        encoded = encode(text, i & 0xFFFF)
        for segment in encoded.segments:
            pdus.append((f"139{i:08d}", segment.short_message, encoded.data_coding, encoded.esm_class))
    queue = iter(pdus)
    receipts = 0
    all_in = asyncio.Event()

    async def sender() -> None:
        for dest, body, coding, esm in queue:
            resp = await smsc.submit_sm(
                dest, body, source_addr="12333", data_coding=coding, esm_class=esm, registered_delivery=1
            )
            assert resp.is_success, resp.command_status

    async def listener() -> None:
        nonlocal receipts
        while receipts < len(pdus):
            event = await smsc.next()
            if isinstance(event, smpp34.Disconnected):
                raise RuntimeError("the simulator closed the ceiling client's session")
            receipts += 1
        all_in.set()

    start = time.monotonic()
    listening = asyncio.create_task(listener())
    async with asyncio.timeout(LIMIT_S):
        await asyncio.gather(*(sender() for _ in range(window)))
        await listening
    seconds = time.monotonic() - start
    await smsc.unbind()
    await client.stop()
    return Result("ceiling (smpp34 client)", len(texts), seconds, [])


# --- end to end ----------------------------------------------------------------------------


class Simulator:
    def __init__(self, tmp: Path, name: str, transport: str = "smpp", cmpp_version: str = "3.0") -> None:
        self.port, self.control = free_port(), free_port()
        self.transport = transport
        if transport == "cmpp":  # its reports come 50 ms after the SUBMIT_RESP by default
            argv = ["-m", "hotline", "ismg-sim", "--port", str(self.port), "--control-port", str(self.control)]
            argv += ["--version", cmpp_version, "--account", f"{SOURCE}:{CMPP_SECRET}"]
        else:
            argv = ["-m", "hotline", "smsc-sim", "--port", str(self.port), "--control-port", str(self.control)]
            argv += ["--receipt-delay", "0.05"]
        self.proc = ServerProcess(f"{argv[2]} ({name})", argv, child_env(), ROOT, tmp / f"sim-{name}.log")

    def receipts_answered(self) -> int:
        prefix = "report_" if self.transport == "cmpp" else "receipts_"
        return sum(v for k, v in self.stats().items() if k.startswith(prefix) and k != "receipts_held")

    def accepted(self) -> int:
        return int(self.stats().get("result_0" if self.transport == "cmpp" else "accepted", 0))

    def stats(self) -> dict[str, int]:
        with socket.create_connection(("127.0.0.1", self.control), timeout=5) as s:
            s.sendall(b"stats\n")
            counts: dict[str, int] = json.loads(s.makefile().readline())["counts"]
        return counts


@dataclass(frozen=True)
class Link:
    """Which transport a run uses, and its CMPP version."""

    transport: str = "smpp"
    cmpp_version: str = "3.0"

    def env(self, port: int, window: int, batch_share: float | None) -> dict[str, str]:
        if self.transport == "smpp":
            return {"HOTLINE_SMPP_PORT": str(port), "HOTLINE_SMPP_PASSWORD": PASSWORD}
        share = {} if batch_share is None else {"HOTLINE_CMPP_BATCH_SHARE": str(batch_share)}
        return {
            "HOTLINE_SMS_TRANSPORT": "cmpp",
            "HOTLINE_CMPP_PORT": str(port),
            "HOTLINE_CMPP_SP_ID": SOURCE,
            "HOTLINE_CMPP_SECRET": CMPP_SECRET,
            "HOTLINE_CMPP_SRC_ID": SRC_ID,
            "HOTLINE_CMPP_VERSION": self.cmpp_version,
            "HOTLINE_CMPP_WINDOW": str(window),
            **share,
        }


def end_to_end(
    name: str, url: str, n: int, dispatchers: int, tmp: Path, window: int, batch_share: float | None, link: Link
) -> Result:
    store = Store(url)
    store.migrate()
    batch = people(n)
    instants = people(max(1, int(LIMIT_S / INSTANT_EVERY_S)), first=n)
    with store.transaction() as c:
        c.execute(insert(Resident), batch + instants)
    config = tmp / f"{name}.toml"
    share = "" if batch_share is None else f"batch_share = {batch_share}\n"
    config.write_text(CONFIG % (window, window) + share, encoding="utf-8")
    sim = Simulator(tmp, name, link.transport, link.cmpp_version)
    env = child_env(
        HOTLINE_CONFIG=str(config),
        HOTLINE_DATABASE_URL=url,
        HOTLINE_SECURITY_PIN_PEPPER=PEPPER,
        **link.env(sim.port, window, batch_share),
    )
    procs = [
        ServerProcess(
            f"dispatcher {i}", ["-m", "hotline", "serve", "--only", "sms"], env, ROOT, tmp / f"{name}-{i}.log"
        )
        for i in range(dispatchers)
    ]
    samplers = [MemorySampler(p.proc.pid) for p in procs]
    for s in samplers:
        s.__enter__()
    inserted: dict[str, dt.datetime] = {}  # idempotency key -> commit time
    cpu = CpuClock({"dispatchers": [p.proc.pid for p in procs], "simulator": [sim.proc.proc.pid]})
    try:
        with store.transaction() as c:
            c.execute(insert(BusinessEvent), [statement(p) for p in batch])
        start = time.monotonic()  # the events are committed: the dispatchers may see them
        cpu.start()
        # Instant reminders while the batch is under way, until the last batch message is final.
        done = 0
        next_instant = next_count = time.monotonic() + 0.5
        while done < n:
            now = time.monotonic()
            if now - start > LIMIT_S:
                raise RuntimeError(f"{name}: {done} of {n} delivered after {LIMIT_S:.0f} s; see {tmp}")
            if now >= next_instant and len(inserted) < len(instants):
                person = instants[len(inserted)]
                key = f"pension:bench:{person['id_number']}"
                with store.transaction() as c:
                    c.execute(
                        insert(BusinessEvent).values(
                            event_type="pension_credited",
                            subject_kind="person",
                            subject_id=person["id_number"],
                            payload={"name": person["name"], "period": "2026-11", "amount": 250_000},
                            idempotency_key=key,
                        )
                    )
                inserted[key] = utcnow()
                next_instant = now + INSTANT_EVERY_S
            if now >= next_count:
                # Counting costs the database too: twice a second (the end is known to 0.5 s),
                # and only once the simulator has had as many receipts answered as the batch
                # has messages (asking it costs the database nothing).
                next_count = now + 0.5
                if sim.receipts_answered() >= n:
                    done = _delivered(store, n)
            time.sleep(0.01)
        seconds = time.monotonic() - start
        used = cpu.stop()
        latencies = _instant_latencies(store, inserted, limit_s=30)
    finally:
        for s in samplers:
            s.__exit__(None, None, None)
        for p in procs:
            p.stop()
        counts, accepted = sim.stats(), sim.accepted()
        sim.proc.stop()
        store.dispose()
    if accepted != n + len(inserted):
        print(f"  note: the gateway accepted {accepted} submits for {n + len(inserted)} messages: {counts}")
    label = f"{link.transport} {name.split('-')[0]} ({dispatchers} dispatcher{'s' if dispatchers > 1 else ''})"
    spent = ", ".join(f"{kind} {v:.1f}" for kind, v in used.items())
    spent += f"; dispatchers {used['dispatchers'] * 1000 / (n + len(inserted)):.2f} ms a message"
    return Result(label, n, seconds, latencies, sum(s.peak_bytes for s in samplers), spent)


class CpuClock:
    """CPU seconds (user + system) used by groups of processes between start() and stop();
    "database": every postgres process, "bench": this one."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.begin: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for kind, pids in self.groups.items():
            out[kind] = sum(_cpu(psutil.Process(pid)) for pid in pids)
        out["database"] = sum(_cpu(p) for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres")
        out["bench"] = _cpu(psutil.Process())
        return out

    def start(self) -> None:
        self.begin = self._now()

    def stop(self) -> dict[str, float]:
        return {kind: v - self.begin.get(kind, 0.0) for kind, v in self._now().items()}


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def _delivered(store: Store, n: int) -> int:
    """Batch messages delivered, once none is left in flight (a shrinking index range)."""
    with store.transaction() as c:
        left = c.execute(
            select(func.count()).where(
                SmsMessage.status.in_(("queued", "sending", "submitted")), SmsMessage.category == "statement"
            )
        ).scalar_one()
        if left:
            return 0
        delivered: int = c.execute(
            select(func.count()).where(SmsMessage.category == "statement", SmsMessage.status == "delivered")
        ).scalar_one()
        return delivered


def _instant_latencies(store: Store, inserted: dict[str, dt.datetime], limit_s: float) -> list[float]:
    """Milliseconds from each instant event's commit to its message's recorded submission."""
    deadline = time.monotonic() + limit_s
    while True:
        with store.transaction() as c:
            rows = c.execute(
                select(BusinessEvent.idempotency_key, SmsMessage.submitted_at)
                .join(SmsMessage, SmsMessage.event_id == BusinessEvent.id)
                .where(BusinessEvent.event_type == "pension_credited", SmsMessage.submitted_at.is_not(None))
            ).all()
        if len(rows) == len(inserted) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return [(sent - inserted[key]).total_seconds() * 1000 for key, sent in rows if sent is not None]


# --- report --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(results: list[Result], top: Result) -> None:
    print(
        f"{'run':34} {'messages':>9} {'seconds':>8} {'msg/s':>8} {'vs ceiling':>10} "
        f"{'instant p50':>11} {'p95':>7} {'n':>4} {'peak RSS':>9}"
    )
    for r in results:
        ratio = r.rate / top.rate if top.rate else 0.0
        p50 = f"{statistics.median(r.instant_ms):.0f} ms" if r.instant_ms else "-"
        p95 = f"{pct(r.instant_ms, 0.95):.0f} ms" if r.instant_ms else "-"
        rss = f"{r.peak_rss / 2**20:.0f} MiB" if r.peak_rss else "-"
        print(
            f"{r.name:34} {r.messages:9d} {r.seconds:8.1f} {r.rate:8.0f} {ratio:10.2f} "
            f"{p50:>11} {p95:>7} {len(r.instant_ms) or '-':>4} {rss:>9}"
        )


def _pg_up(tmp: Path, name: str) -> tuple[str, Path]:
    """A fresh cluster per run (BENCH_PG_URL: an empty database of yours, for one run)."""
    given = os.environ.get("BENCH_PG_URL")
    if given:
        return given, Path()
    data = tmp / name
    port = free_port()
    out = subprocess.run([str(ROOT / "tools" / "pg.sh"), "up", str(data), str(port)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {out.stderr}")
    return out.stdout.strip(), data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--window", type=int, default=WINDOW)
    parser.add_argument("--pg-dispatchers", default="1,2", help="dispatcher processes on PostgreSQL, one run each")
    parser.add_argument("--batch-share", type=float, help="the dispatchers' batch_share (default: the setting's)")
    parser.add_argument("--transport", default="smpp,cmpp", help="smpp, cmpp or both, each with its own ceiling")
    parser.add_argument("--cmpp-version", choices=("2.0", "3.0"), default="3.0")
    args = parser.parse_args()
    n = args.events
    tmp = Path(tempfile.mkdtemp(prefix="bench-sms-"))
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres")  # pg.sh runs initdb as postgres under it
    texts = [render(BATCH_TYPE, statement(p)["payload"]) for p in people(n)]
    segments = sum(len(encode(t).segments) for t in texts)
    parts = sum(len(split_text(t).parts) for t in texts)
    share = "" if args.batch_share is None else f" (batch share {args.batch_share})"
    print(
        f"SMS gateway: {n} events ({segments} SMPP segments, {parts} CMPP parts), window {args.window}{share}, "
        "simulator receipts after 50 ms"
    )
    for transport in args.transport.split(","):
        if transport not in ("smpp", "cmpp"):
            raise SystemExit(f"--transport: unknown transport {transport!r} (smpp, cmpp)")
        link = Link(transport, args.cmpp_version)
        results = [_ceiling(tmp, texts, args.window, link)]
        for db in args.db.split(","):
            results += _runs(db, tmp, n, args, link)
        print(f"-- {transport}" + (f" {args.cmpp_version}" if transport == "cmpp" else ""))
        report(results, results[0])
        for r in results[1:]:
            print(f"  CPU seconds during {r.name}: {r.cpu}")
    print(f"logs in {tmp}")


def _ceiling(tmp: Path, texts: list[str], window: int, link: Link) -> Result:
    sim = Simulator(tmp, f"ceiling-{link.transport}", link.transport, link.cmpp_version)
    try:
        if link.transport == "smpp":
            return asyncio.run(ceiling(sim.port, texts, window))
        version = Version.V20 if link.cmpp_version == "2.0" else Version.V30
        seconds = asyncio.run(cmpp_ceiling(sim.port, CMPP_SECRET, texts, window, version))
        return Result("ceiling (bare CMPP client)", len(texts), seconds, [])
    finally:
        sim.proc.stop()


def _runs(db: str, tmp: Path, n: int, args: argparse.Namespace, link: Link) -> list[Result]:
    name = f"{db}-{link.transport}"
    if db == "sqlite":
        url = f"sqlite:///{tmp}/bench-{link.transport}.db"
        return [end_to_end(name, url, n, 1, tmp, args.window, args.batch_share, link)]
    if db != "postgresql":
        raise SystemExit(f"--db: unknown database {db!r} (sqlite, postgresql)")
    out = []
    for count in (int(d) for d in args.pg_dispatchers.split(",")):
        url, data = _pg_up(tmp, f"pg{count}-{link.transport}")
        try:
            out.append(
                end_to_end(
                    f"postgresql-{count}-{link.transport}", url, n, count, tmp, args.window, args.batch_share, link
                )
            )
        finally:
            if data != Path():
                subprocess.run([str(ROOT / "tools" / "pg.sh"), "down", str(data)], check=False)
    return out


if __name__ == "__main__":
    main()
