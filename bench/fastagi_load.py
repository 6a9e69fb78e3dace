"""FastAGI load: N concurrent complete balance-query calls against three servers.

    python -m bench.fastagi_load [--calls 500] [--concurrency 500] [--think-ms 1000]
        [--db sqlite|postgresql] [--one-caller] [--profile OUT]

Targets, each in its own process on an ephemeral loopback port:
  a  ours:  `hotline serve --only agi` on a temporary SQLite file (or, with `--db
     postgresql`, a fresh PostgreSQL cluster from tools/pg.sh, or BENCH_PG_URL) with the
     sample loaded
  b  floor: stock panoramisk `Application` replaying the commands (a) sent for one call
  c  pyst2: pyst2's FastAGI server (ForkingTCPServer + `AGI`) replaying the same commands

Per-command latency: from the peer's write of a reply to its receipt of the server's next
command (the server's turnaround). Setup: from the write of the environment to the first
command. A call is complete when the server's last command was
`SET VARIABLE HOTLINE_ACTION "hangup"` and it then closed the connection; for (a) the
pension balance in the call's stored trail must equal the resident's, for (b) and (c) the
commands must be exactly the recorded ones. By default the calls have no think time:
every target runs flat out, so at high concurrency latency is mostly queueing for the
server's CPU. `--think-ms` paces each entry like a caller keying it. `--one-caller` gives
every call the same calling number (an employer's switchboard, a village's one phone):
they share one identification budget row. `--profile OUT` runs py-spy against (a) and its
worker processes for the measured calls and writes collapsed stacks to OUT (`--profile-what
idle`: idle threads too, for where they wait; `gil`: only the thread holding the GIL, for
Python's own CPU, which py-spy's idle detection otherwise blurs with short waits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.agi_peer import CallOutcome, run_call
from bench.procs import MemorySampler, ServerProcess, child_env, free_port, postgres_url
from core import sample, stage_times
from core.db import Store
from core.sample import SampleResident
from ivr.trail import show_call

PEPPER = "bench-pepper"
RESIDENTS = 1200
CALL_LIMIT_S = 60.0
RUN_LIMIT_S = 240.0
ASYNCIO_BACKLOG = 100  # asyncio.start_server's default listen queue, used by (a) and (b)
TARGET_CALLS_PER_S = 200.0
TARGET_P99_OVER_FLOOR_MS = 5.0
TARGET_RSS_MB = 200.0
# Issue 23's targets: the step after the PIN (identification and the chosen query) paced,
# every other step beside the floor's, CPU per call, and a burst's share of the floor.
TARGET_AFTER_PIN_P99_MS = 50.0
TARGET_CPU_PER_CALL_MS = 8.0
TARGET_BURST_RATIO = 0.3
AFTER_PIN = "id.ok"  # the prompt that follows a right PIN: its command ends the identification's wait
SWITCHBOARD = "057187654321"  # --one-caller: every call's calling number


def entries(r: SampleResident) -> list[str]:
    """Keys of a pension balance query: social insurance, pension, ID (* for X), PIN, then 2."""
    return ["1", "1", "1", r.id_number.replace("X", "*"), r.pin, "2"]


def percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Run:
    name: str
    outcomes: list[CallOutcome]
    failures: list[str]  # one per failed call
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    notes: list[str] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)  # (a) with --stages: core.stage_times

    @property
    def ok(self) -> int:
        return len(self.outcomes) - len(self.failures)

    @property
    def calls_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def turnaround_ms(self, q: float) -> float:
        return percentile_ms([t for o in self.outcomes for t in o.turnarounds_s], q)

    def setup_ms(self, q: float) -> float:
        return percentile_ms([o.setup_s for o in self.outcomes if o.setup_s is not None], q)


async def drive(
    port: int,
    people: list[SampleResident],
    calls: int,
    concurrency: int,
    think_s: float = 0.0,
    caller: str | None = None,
) -> tuple[list[CallOutcome], float]:
    """Run `calls` calls, at most `concurrency` at once; returns outcomes and wall time.

    With think time, callers also arrive spread over one call's length (as they do on a
    real line) instead of all in the same millisecond. `caller`: every call's calling number
    (else each resident's own)."""
    gate = asyncio.Semaphore(concurrency)
    rng = random.Random(12333)
    spread_s = think_s * len(entries(people[0]))
    offsets = [rng.uniform(0, spread_s) for _ in range(calls)]

    async def one(i: int) -> CallOutcome:
        r = people[i % len(people)]
        await asyncio.sleep(offsets[i])
        async with gate:
            number = caller or r.phone
            return await run_call(port, entries(r), f"1795835831.{i}", number, CALL_LIMIT_S, think_s)

    start = time.perf_counter()
    async with asyncio.timeout(RUN_LIMIT_S):
        outcomes = await asyncio.gather(*(one(i) for i in range(calls)))
    return list(outcomes), time.perf_counter() - start


def call_failure(o: CallOutcome, expected: list[str] | None) -> str | None:
    """Why a call is not complete, or None."""
    if o.error:
        return o.error
    if not o.ended_with_hangup:
        return f"last command {o.commands[-1] if o.commands else None!r}"
    if not o.closed_by_server:
        return "server did not close"
    if expected is not None and o.commands != expected:
        return "commands differ from the recorded call"
    return None


def store_failure(store: Store, o: CallOutcome, r: SampleResident) -> str | None:
    """For (a): the stored trail's pension result must be the resident's balance."""
    if o.call_id is None:
        return "no HOTLINE_CALL_ID set"
    call = show_call(store, o.call_id, actor="bench")
    results = [s for s in call["trail"] if s["kind"] == "result" and s["query"] == "pension"]
    if not results or results[0]["data"]["balance_fen"] != r.pension_balance_fen:
        return "store: pension balance missing or wrong"
    if call["outcome"] != "completed":
        return f"store: outcome {call['outcome']}"
    return None


def tree_cpu_s(proc: psutil.Process) -> float:
    """CPU seconds of a process, its reaped children, and its live ones (FastAGI workers)."""
    total = sum(proc.cpu_times()[:4])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            continue
    return float(total)


def measure(
    name: str,
    server: ServerProcess,
    port: int,
    people: list[SampleResident],
    args: argparse.Namespace,
    check: Callable[[int, CallOutcome], str | None],
) -> Run:
    proc = psutil.Process(server.proc.pid)
    cpu0 = tree_cpu_s(proc)
    with MemorySampler(server.proc.pid) as mem:
        caller = SWITCHBOARD if args.one_caller else None
        outcomes, wall = asyncio.run(drive(port, people, args.calls, args.concurrency, args.think_ms / 1000, caller))
        cpu1 = tree_cpu_s(proc)
    cpu = cpu1 - cpu0
    failures = [f for i, o in enumerate(outcomes) if (f := check(i, o)) is not None]
    return Run(name, outcomes, failures, wall, mem.peak_bytes / 2**20, cpu)


def load_sample(tmp: Path, url: str) -> None:
    loader = subprocess.run(
        [sys.executable, "-m", "hotline", "sample", "load", "--residents", str(RESIDENTS)],
        cwd=tmp,
        env=child_env(HOTLINE_DATABASE_URL=url, HOTLINE_SECURITY_PIN_PEPPER=PEPPER),
        capture_output=True,
        text=True,
        timeout=180,
    )
    if loader.returncode != 0:
        raise SystemExit(f"sample load failed: {loader.stderr[-2000:]}")


def log_problems(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = [line for line in lines if " ERROR " in line or "Traceback" in line]
    return [f"server log: {len(bad)} ERROR/Traceback lines, first: {bad[0][:160]}"] if bad else []


class Profiler:
    """py-spy recording a process and its children (our FastAGI workers) while in the block;
    collapsed stacks (`--format raw`) into `out`, one line per stack with its sample count."""

    def __init__(self, pid: int, out: Path | None, what: str) -> None:
        self.pid = pid
        self.out = out
        self.what = what
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        if self.out is None:
            return self
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        argv = [spy, "record", "--pid", str(self.pid), "--subprocesses", "--threads", "--nonblocking"]
        argv += ["--rate", "200", "--format", "raw", "--output", str(self.out)]
        argv += {"idle": ["--idle"], "gil": ["--gil"]}.get(self.what, [])
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy attaches to every process before the first call
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        _, err = self.proc.communicate(timeout=60)
        if self.proc.returncode not in (0, -signal.SIGINT):
            print(f"py-spy: {err.decode(errors='replace')[-500:]}", file=sys.stderr)


def run_ours(tmp: Path, url: str, people: list[SampleResident], args: argparse.Namespace) -> tuple[Run, list[str]]:
    """Target (a) on the store at `url`; also returns the commands of one recorded call, for (b) and (c)."""
    load_sample(tmp, url)
    port = free_port()
    env = child_env(
        HOTLINE_DATABASE_URL=url,
        HOTLINE_SECURITY_PIN_PEPPER=PEPPER,
        HOTLINE_AGI_HOST="127.0.0.1",
        HOTLINE_AGI_PORT=str(port),
        HOTLINE_AGI_MAX_SESSIONS="2000",  # the benchmark's highest --concurrency: measure the server, not the cap
    )
    stages = tmp / "stages"
    if args.stages:
        stages.mkdir(exist_ok=True)
        env[stage_times.ENV] = str(stages)
    argv = ["-m", "hotline", "serve", "--only", "agi", "--workers", str(args.workers)]
    server = ServerProcess("ours", argv, env, tmp, tmp / "ours.log")
    store = Store(url)
    try:
        recorded = asyncio.run(run_call(port, entries(people[-1]), "1795835830.1", people[-1].phone, CALL_LIMIT_S))
        if (problem := call_failure(recorded, None)) is not None:
            raise SystemExit(f"recording call against our server failed: {problem}")
        callers = people[:-1]

        def check(i: int, o: CallOutcome) -> str | None:
            return call_failure(o, None) or store_failure(store, o, callers[i % len(callers)])

        name = f"a ours ({args.workers} proc{', PG' if url.startswith('postgresql') else ''})"
        with Profiler(server.proc.pid, args.profile, args.profile_what):
            run = measure(name, server, port, callers, args, check)
    finally:
        server.stop()
        store.dispose()
    run.notes += log_problems(tmp / "ours.log")
    if args.stages:
        run.stages = stage_times.load(stages)
    return run, recorded.commands


def run_replay(
    name: str, argv: list[str], tmp: Path, commands: list[str], people: list[SampleResident], args: argparse.Namespace
) -> Run:
    path = tmp / "commands.json"
    path.write_text(json.dumps(commands), encoding="utf-8")
    server = ServerProcess(name, ["-m", *argv, str(path)], child_env(), tmp, tmp / f"{argv[0]}.log")
    port = int(server.ready_line.split()[-1])
    try:
        return measure(name, server, port, people, args, lambda i, o: call_failure(o, commands))
    finally:
        server.stop()


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def by_step(run: Run) -> dict[str, list[float]]:
    """Per-command turnarounds grouped by the step they lead into (the command that ended the wait)."""
    steps: dict[str, list[float]] = {}
    for o in run.outcomes:
        # turnaround i ends with command i + 1 (the first command ends the setup)
        for wait, command in zip(o.turnarounds_s, o.commands[1:], strict=False):
            kind = " ".join(command.split(" ")[:3])
            steps.setdefault(kind, []).append(wait)
    return steps


def slowest_steps(run: Run) -> list[tuple[str, float, float]]:
    """Steps by p99, slowest first."""
    rows = [(k, percentile_ms(v, 0.5), percentile_ms(v, 0.99)) for k, v in by_step(run).items()]
    return sorted(rows, key=lambda r: -r[2])


def after_pin(run: Run) -> tuple[float, float]:
    """p50 and p99 of the step after the PIN (the wait for identification and the chosen query)."""
    waits = [w for kind, ws in by_step(run).items() if kind.endswith(AFTER_PIN) for w in ws]
    return percentile_ms(waits, 0.5), percentile_ms(waits, 0.99)


def worst_other_step(run: Run, floor: Run) -> tuple[str, float]:
    """Of every step but the one after the PIN, the one furthest above the floor's p99 of the
    same step, and by how much (ms)."""
    floor_steps = by_step(floor)
    rows = [
        (kind, percentile_ms(ws, 0.99) - percentile_ms(floor_steps.get(kind, []), 0.99))
        for kind, ws in by_step(run).items()
        if not kind.endswith(AFTER_PIN)
    ]
    return max(rows, key=lambda r: r[1], default=("-", float("nan")))


def issue_23_targets(ours: Run, floor: Run, runs: list[Run], args: argparse.Namespace) -> str:
    cpu_ms = 1000 * ours.cpu_s / max(1, len(ours.outcomes))
    if args.think_ms:
        _, p99 = after_pin(ours)
        kind, over = worst_other_step(ours, floor)
        return (
            f"targets (issue 23, paced): after the PIN p99 <= {TARGET_AFTER_PIN_P99_MS:g} ms: "
            f"{verdict(p99 <= TARGET_AFTER_PIN_P99_MS)} ({p99:.1f})"
            f"; other steps p99 <= floor + {TARGET_P99_OVER_FLOOR_MS:g} ms: "
            f"{verdict(over <= TARGET_P99_OVER_FLOOR_MS)} (worst {kind} {over:+.2f})"
            f"; CPU/call <= {TARGET_CPU_PER_CALL_MS:g} ms: {verdict(cpu_ms <= TARGET_CPU_PER_CALL_MS)} ({cpu_ms:.1f})"
            f"; RSS < {TARGET_RSS_MB:g} MB: {verdict(ours.peak_rss_mb < TARGET_RSS_MB)}"
        )
    ratio = ours.calls_per_s / floor.calls_per_s if floor.calls_per_s else float("nan")
    pyst2 = [r for r in runs if r.name.startswith("c ")]
    ahead = all(ours.calls_per_s > r.calls_per_s for r in pyst2)
    return (
        f"targets (issue 23, burst): calls/s >= x{TARGET_BURST_RATIO:g} the floor's: "
        f"{verdict(ratio >= TARGET_BURST_RATIO)} (x{ratio:.2f})"
        + (f"; ahead of pyst2: {verdict(ahead)}" if pyst2 else "")
    )


def print_stages(ours: Run) -> None:
    """The server's own stage times (--stages), all processes merged."""
    if not ours.stages:
        return
    print(f"{ours.name}: stages inside the server (core.stage_times; ms unless a count)")
    print(f"  {'stage':<32}{'n':>7}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'sum s':>8}")
    for stage, values in sorted(ours.stages.items()):
        count = stage.endswith("_size")  # a batch's size, not seconds: shown as it is
        shown = [percentile_ms(values, q) / (1000 if count else 1) for q in (0.5, 0.9, 0.99, 1.0)]
        cells = "".join(f"{v:>9.2f}" for v in shown)
        print(f"  {stage:<32}{len(values):>7}{cells}{'' if count else f'{sum(values):>8.2f}'}")


def report(runs: list[Run], floor: Run, args: argparse.Namespace) -> None:
    pace = f"{args.think_ms} ms think time per entry" if args.think_ms else "no think time"
    callers = f", every call from {SWITCHBOARD}" if args.one_caller else ""
    print(f"\nFastAGI load: {args.calls} balance-query calls, {args.concurrency} at once, {pace}{callers}, loopback")
    print(f"(a)'s store: {args.db}")
    print("per-command = reply sent -> next command received; setup = environment sent -> first command")
    print(
        f"{'target':<24}{'ok':>5}{'fail':>5}{'calls/s':>9}{'cmd p50':>9}{'cmd p99':>9}{'cmd max':>9}"
        f"{'setup p99':>10}{'peak RSS':>9}{'CPU/call':>9}"
    )
    print(f"{'':<24}{'':>5}{'':>5}{'':>9}{'ms':>9}{'ms':>9}{'ms':>9}{'ms':>10}{'MB':>9}{'ms':>9}")
    for r in runs:
        print(
            f"{r.name:<24}{r.ok:>5}{len(r.failures):>5}{r.calls_per_s:>9.1f}{r.turnaround_ms(0.5):>9.2f}"
            f"{r.turnaround_ms(0.99):>9.2f}{r.turnaround_ms(1.0):>9.1f}{r.setup_ms(0.99):>10.1f}"
            f"{r.peak_rss_mb:>9.1f}{1000 * r.cpu_s / max(1, len(r.outcomes)):>9.2f}"
        )
    for r in runs:
        if r is not floor:
            ratio = r.calls_per_s / floor.calls_per_s if floor.calls_per_s else float("nan")
            print(
                f"{r.name} vs floor: cmd p99 {r.turnaround_ms(0.99) - floor.turnaround_ms(0.99):+.2f} ms, "
                f"cmd p50 {r.turnaround_ms(0.5) - floor.turnaround_ms(0.5):+.2f} ms, calls/s x{ratio:.2f}"
            )
        for reason, count in Counter(r.failures).most_common(3):
            print(f"  {r.name}: {count} x {reason}")
        for note in r.notes:
            print(f"  {r.name}: {note}")
    ours = runs[0]
    print(f"{ours.name}: slowest steps by p99 (the command that ended the wait):")
    for kind, p50, p99 in slowest_steps(ours)[:3]:
        print(f"  {kind:<42} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms")
    pin50, pin99 = after_pin(ours)
    print(f"{ours.name}: the step after the PIN p50 {pin50:.2f} ms, p99 {pin99:.2f} ms")
    print_stages(ours)
    print(issue_23_targets(ours, floor, runs, args))
    over = ours.turnaround_ms(0.99) - floor.turnaround_ms(0.99)
    print(
        f"targets (ours): cmd p99 <= floor + {TARGET_P99_OVER_FLOOR_MS:g} ms: "
        f"{verdict(over <= TARGET_P99_OVER_FLOOR_MS)}"
        f"; >= {TARGET_CALLS_PER_S:g} calls/s: {verdict(ours.calls_per_s >= TARGET_CALLS_PER_S)}"
        f"; RSS < {TARGET_RSS_MB:g} MB: {verdict(ours.peak_rss_mb < TARGET_RSS_MB)}"
        f"; every call complete: {verdict(not ours.failures and not ours.notes)}"
    )
    print("RSS: VmHWM of the server process, or the sampled sum over it and its children (our workers, pyst2's forks)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--calls", type=int, default=500, help="calls per target (default 500)")
    cli.add_argument("--concurrency", type=int, default=500, help="calls in progress at once (default 500)")
    cli.add_argument(
        "--pyst2-backlog",
        type=int,
        default=ASYNCIO_BACKLOG,
        help="pyst2's listen queue (default 100 as asyncio's; socketserver's own 5 drops most of a 500-call burst)",
    )
    cli.add_argument("--pyst2-children", type=int, default=40, help="pyst2's max_children (ForkingMixIn default 40)")
    cli.add_argument(
        "--think-ms", type=int, default=0, help="a caller's time to key each entry (0: a burst, no think time)"
    )
    cli.add_argument("--workers", type=int, default=2, help="our FastAGI processes (hotline serve --workers)")
    cli.add_argument("--only", default="abc", help="targets, e.g. ab ((a) always runs: it records the commands)")
    cli.add_argument("--db", default="sqlite", choices=("sqlite", "postgresql"), help="(a)'s store (default sqlite)")
    cli.add_argument("--one-caller", action="store_true", help=f"every call from one calling number ({SWITCHBOARD})")
    cli.add_argument("--profile", type=Path, help="py-spy: (a)'s collapsed stacks while measured, into this file")
    cli.add_argument("--stages", action="store_true", help="(a)'s stage times (core.stage_times), printed")
    cli.add_argument(
        "--profile-what",
        choices=("cpu", "idle", "gil"),
        default="cpu",
        help="with --profile: running threads (py-spy's default), idle ones too (wall time), or the GIL's holder",
    )
    args = cli.parse_args(argv)
    if not 1 <= args.concurrency <= 2000 or not 1 <= args.calls <= 20000:
        cli.error("--concurrency must be 1..2000 and --calls 1..20000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    people = sample.generate(residents=RESIDENTS)[1]
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as name:
        tmp = Path(name)
        if args.db == "postgresql":
            if os.geteuid() == 0:
                shutil.chown(tmp, "postgres")  # pg.sh runs initdb as postgres under it
            for url in postgres_url(tmp):
                ours, commands = run_ours(tmp, url, people, args)
        else:
            ours, commands = run_ours(tmp, f"sqlite:///{tmp}/bench.db", people, args)
        print(f"recorded call: {len(commands)} commands, first {commands[0]!r}, last {commands[-1]!r}")
        floor = run_replay("b floor (panoramisk)", ["bench.floor_server"], tmp, commands, people, args)
        runs = [ours, floor]
        if "c" in args.only:
            pyst2 = ["bench.pyst2_server", "--backlog", str(args.pyst2_backlog)]
            pyst2 += ["--max-children", str(args.pyst2_children)]
            runs.append(run_replay("c pyst2 (forking)", pyst2, tmp, commands, people, args))
    report(runs, floor, args)
    return 0 if not ours.failures and not ours.notes else 1


if __name__ == "__main__":
    sys.exit(main())
