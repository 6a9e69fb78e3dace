"""Real SIP calls through the cluster's SIP edge: what the edge costs, and a node killed mid-run.

    python -m bench.cluster_calls [--calls 20] [--rate 10] [--failover-rate 4] [--failover-s 40] [--json FILE]

As root (Asterisk runs chrooted; SIPp and the nodes bind loopback addresses of their own),
with Kamailio and SIPp installed (`make deps`) and the prompts built (`make prompts`);
HOTLINE_CONFIG as for bench/sip_calls.py. It starts a PostgreSQL of its own (tools/pg.sh on
a free port, or BENCH_PG_URL) with the sample loaded and two `hotline serve --only agi` on
free ports, as tests/real/test_cluster.py does; it refuses to run while a cluster is up.

1. N pension-balance queries at once (`--calls`, started at `--rate` a second): SIPp at
   127.0.0.2 as the carrier keys the ID number and PIN (RFC 4733), in three setups:
   (a) straight to the local Asterisk on sip.bind:5060, given the test carrier's trunk for
   the run and left as found (stopped if this started it, else `hotline asterisk up`
   again); (b) through the edge (127.0.0.1:5180) to one node; (c) to two nodes (127.0.0.11
   and .12, SIP on 5160). A call counts as completed when SIPp's call ended as planned and
   its stored trail shows the pension result with status ok and the right balance. Printed
   per setup: completed, failed, wall time, answer time, and CPU seconds per call (psutil,
   user+system over the round) of the edge (Kamailio and all its children), each Asterisk
   and the FastAGI servers (their sum is the total compared), and of PostgreSQL and SIPp;
   then (b)/(a) of the total CPU per call and of the wall time: the edge's overhead.
2. Failover: short calls (answered, no keys, the caller hangs up 4 s after the answer) at
   `--failover-rate` a second for `--failover-s` through the edge to two nodes; at a third
   of the run node1's Asterisk is killed (-9). Printed: calls started and completed per 5 s
   by each call's start (its INVITE's time in SIPp's message log), when the edge took node1
   out, how long until calls started after the kill succeed again, the calls lost on node1
   and any others; then `Cluster.up(2)` and the seconds until the edge has node1 active.
3. From (c)'s CPU per call, the cores a city and a province would need (bench/cluster_sizing.py).
The cluster is left down, and every process started here stopped, whatever happened.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import psutil

from bench.asterisk_calls import LEAD_S, TAIL_S
from bench.call_records import calls_per_node, trail_problem, wait_ended
from bench.cluster_failover import print_failover, run_failover
from bench.cluster_sizing import SITES, Assumptions, PerCall, estimate
from bench.fastagi_load import PEPPER, log_problems
from bench.procs import ROOT, ServerProcess, child_env, free_port, postgres_url
from bench.sip_calls import children_cpu_s, keys, load_people
from core.cluster_settings import ClusterSettings
from core.db import Store
from core.sample import SampleResident
from core.settings import Settings, load_settings
from ivr.asterisk import LocalAsterisk
from ivr.asterisk_config import ETC_DIR
from ivr.asterisk_root import resolve_in_root
from ivr.cluster import Cluster
from tests.real.sip_setup import CARRIER_ADDR, with_test_sip
from tests.sip_peers.sipp import CallResult, CarrierCall, UacPlan, hotline_address, place_calls

EDGE_PORT: Final = 5180  # beside the local Asterisk on 5060, as in tests/real/test_cluster.py
NODE_SIP_PORT: Final = 5160
CLUSTER_RTP: Final = (30000, 31999)  # the nodes' share; the local Asterisk keeps sip.rtp_*
CALLS: Final = 20
RATE_PER_S: Final = 10.0
FAILOVER_RATE: Final = 4.0
FAILOVER_S: Final = 40.0
IDLE_S: Final = 5.0  # each part's CPU with no call, measured before each round
SETUPS: Final = ("(a) one Asterisk", "(b) edge + 1 node", "(c) edge + 2 nodes")


def tree_cpu_s(pid: int | None) -> float:
    """User+system CPU seconds of a process and its children alive now (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


@dataclass(frozen=True)
class Cpu:
    """CPU seconds over one round, per part."""

    edge: float
    asterisks: tuple[float, ...]
    fastagi: float
    postgres: float | None  # None: an outside PostgreSQL (BENCH_PG_URL)
    sipp: float

    @property
    def total(self) -> float:
        """What the setups are compared by: the edge, the Asterisks and the FastAGI servers."""
        return self.edge + sum(self.asterisks) + self.fastagi


@dataclass(frozen=True)
class Meter:
    """The processes whose CPU a round is charged."""

    edge: int | None
    asterisks: tuple[int, ...]
    fastagi: tuple[int, ...]
    postgres: int | None

    def read(self) -> tuple[float, ...]:
        return (
            tree_cpu_s(self.edge),
            *(tree_cpu_s(p) for p in self.asterisks),
            sum(tree_cpu_s(p) for p in self.fastagi),
            tree_cpu_s(self.postgres),
            children_cpu_s(),  # our reaped children: SIPp
        )

    def spent(self, before: tuple[float, ...], after: tuple[float, ...]) -> Cpu:
        d = [a - b for a, b in zip(after, before, strict=True)]
        return Cpu(d[0], tuple(d[1:-3]), d[-3], d[-2] if self.postgres else None, d[-1])


@dataclass
class Round:
    setup: str
    calls: int
    failures: list[str]
    wall_s: float
    cpu: Cpu
    idle: Cpu  # over IDLE_S just before the round
    answer_s: list[float] = field(repr=False)
    held_s: list[float] = field(repr=False)  # from the answer to the caller's BYE
    spread: dict[str, int]

    @property
    def completed(self) -> int:
        return self.calls - len(self.failures)

    def per_call(self, seconds: float | None) -> float | None:
        return None if seconds is None else seconds / self.calls


@dataclass
class Bench:
    args: argparse.Namespace
    local: Settings  # the one Asterisk's settings
    cluster: Settings
    store: Store
    people: list[SampleResident]
    fastagi: tuple[int, ...]
    postgres: int | None
    tmp: Path


def timings(calls: Sequence[CallResult]) -> tuple[list[float], list[float]]:
    """Each answered call's answer time (INVITE to 200) and time held (200 to our BYE)."""
    answers, held = [], []
    for c in calls:
        start, answered, bye = c.invited_at, c.answered_at, c.bye_sent_at
        if start and answered:
            answers.append((answered - start).total_seconds())
            if bye:
                held.append((bye - answered).total_seconds())
    return answers, held


# --- (1) pension-balance calls at once ---------------------------------------------------


def pension_round(b: Bench, index: int, target: tuple[str, int], meter: Meter) -> Round:
    n, r = b.args.calls, b.people[index % len(b.people)]
    callers = [f"1390{index}{i:06d}" for i in range(n)]
    plan = UacPlan(
        tuple(CarrierCall(c) for c in callers), dtmf=keys(r), lead_s=LEAD_S, tail_s=TAIL_S, rate_per_s=b.args.rate
    )
    idle_from = meter.read()
    time.sleep(IDLE_S)
    before = meter.read()
    idle = meter.spent(idle_from, before)
    start = time.perf_counter()
    result = place_calls(target, plan, b.tmp / f"round-{index}", name="carrier")
    wall = time.perf_counter() - start
    wait_ended(b.store, callers)
    cpu = meter.spent(before, meter.read())
    failures = [f"SIP: INVITE {c.invite_codes}, BYE {c.bye_code}" for c in result.calls if not c.completed]
    failures += ["SIP: no INVITE sent"] * (n - len(result.calls))
    for c in result.calls:
        if c.completed and c.caller and (problem := trail_problem(b.store, c.caller, r)):
            failures.append(problem)
    answers, held = timings(result.calls)
    return Round(SETUPS[index], n, failures, wall, cpu, idle, answers, held, calls_per_node(b.store, callers))


def hang_up_local(local: LocalAsterisk) -> int:
    """Hang up whatever calls the local Asterisk still has; how many there were."""
    words = local.cli("core show channels count").split()
    up = int(words[words.index("active") - 1]) if "active" in words else 0
    if up:
        local.cli("channel request hangup all")
    return up


def node_pids(cluster: Cluster) -> tuple[int, ...]:
    pids = [a.running_pid() for a in cluster.asterisks(cluster.nodes())]
    if None in pids:
        raise RuntimeError(f"a node's Asterisk is not running: {cluster.status()}")
    return tuple(p for p in pids if p is not None)


def run_rounds(b: Bench, local: LocalAsterisk, cluster: Cluster) -> list[Round]:
    edge = (b.cluster.cluster.edge_address, b.cluster.cluster.edge_port)
    pid = local.running_pid()
    assert pid is not None
    rounds = [pension_round(b, 0, hotline_address(b.local), Meter(None, (pid,), b.fastagi, b.postgres))]
    print(line(rounds[-1]), flush=True)
    if left := hang_up_local(local):
        print(f"  the local Asterisk still had {left} calls up: hung up")
    for index, count in ((1, 1), (2, 2)):
        status = cluster.up(count)
        if [n.state for n in status.nodes] != ["active"] * count:
            raise RuntimeError(f"the cluster is not up with {count} active nodes: {status}")
        meter = Meter(cluster.edge_pid(), node_pids(cluster), b.fastagi, b.postgres)
        rounds.append(pension_round(b, index, edge, meter))
        print(line(rounds[-1]), flush=True)
    return rounds


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def line(r: Round) -> str:
    asterisks = "+".join(fmt(r.per_call(s)) for s in r.cpu.asterisks)
    answers = f"{1000 * statistics.median(r.answer_s):.1f}/{1000 * max(r.answer_s):.1f}" if r.answer_s else "-"
    edge = fmt(r.per_call(r.cpu.edge)) if r.setup != SETUPS[0] else "-"
    return (
        f"{r.setup:<19} {r.completed:>4} {len(r.failures):>4} {r.wall_s:6.1f} {answers:>10}  "
        f"{edge:>6} {asterisks:>13} {fmt(r.per_call(r.cpu.fastagi)):>7} {fmt(r.per_call(r.cpu.total)):>6}  "
        f"{fmt(r.per_call(r.cpu.postgres)):>8} {fmt(r.per_call(r.cpu.sipp)):>6}  "
        + " ".join(f"{k} {v}" for k, v in r.spread.items())
    )


def idle_line(cpu: Cpu) -> str:
    def pct(seconds: float | None) -> str:
        return "-" if seconds is None else f"{100 * seconds / IDLE_S:.1f}"

    asterisks = "+".join(pct(s) for s in cpu.asterisks)
    return f"edge {pct(cpu.edge)}, asterisk {asterisks}, fastagi {pct(cpu.fastagi)}, postgres {pct(cpu.postgres)}"


HEADER: Final = (
    f"{'setup':<19} {'done':>4} {'fail':>4} {'wall s':>6} {'answer ms':>10}  "
    f"{'edge':>6} {'asterisk':>13} {'fastagi':>7} {'total':>6}  {'postgres':>8} {'sipp':>6}  calls per node"
)


def ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def overheads(rounds: Sequence[Round]) -> dict[str, float | None]:
    a, b, c = (r.cpu.total / r.calls for r in rounds)
    return {
        "b/a total CPU per call": ratio(b, a),
        "b/a wall": ratio(rounds[1].wall_s, rounds[0].wall_s),
        "c/b total CPU per call": ratio(c, b),
        "c/b wall": ratio(rounds[2].wall_s, rounds[1].wall_s),
    }


# --- (3) on paper ------------------------------------------------------------------------


def print_estimate(rounds: Sequence[Round]) -> list[dict[str, Any]]:
    c = rounds[2]
    per = PerCall(
        edge_s=c.cpu.edge / c.calls,
        asterisk_s=sum(c.cpu.asterisks) / c.calls,
        fastagi_s=c.cpu.fastagi / c.calls,
        postgres_s=(c.cpu.postgres or 0.0) / c.calls,
    )
    held = statistics.mean(c.held_s) if c.held_s else 20.0
    a = Assumptions()
    print(
        f"\nOn paper, from (c)'s CPU per call (a balance query keyed at once, held {held:.1f} s). Assumed: a "
        f"caller spends {a.ivr_s:.0f} s in the IVR; {a.agent_share:.0%} then talk {a.talk_s:.0f} s with an agent "
        f"(a second channel, a second leg through the edge); a call lasts {a.call_s:.0f} s on average; Asterisk "
        f"costs per channel-second, the rest per call; cores {a.busy:.0%} busy at the peak. "
        "Cores busy at the peak (cores to provide):"
    )
    print(
        f"{'site':<9} {'nodes':>5} {'at once':>7} {'calls/s':>7}  {'edge':<10} {'asterisk/node':<13} "
        f"{'asterisk':<9} {'fastagi':<10} {'postgres':<10}"
    )
    out = []
    for site in SITES:
        e = estimate(per, held, site, a)
        cells = [
            f"{e.edge:.3f} ({e.cores(e.edge)})",
            f"{e.asterisk_per_node:.2f} ({e.cores(e.asterisk_per_node)})",
            f"{e.asterisk:.2f}",
            f"{e.fastagi:.3f} ({e.cores(e.fastagi)})",
            f"{e.postgres:.3f} ({e.cores(e.postgres)})",
        ]
        print(
            f"{site.name:<9} {site.nodes:>5} {site.concurrent:>7} {e.calls_per_s:7.2f}  "
            f"{cells[0]:<10} {cells[1]:<13} {cells[2]:<9} {cells[3]:<10} {cells[4]:<10}"
        )
        out.append({**asdict(e), "asterisk_per_node": e.asterisk_per_node})
    return out


def print_verdict(rounds: Sequence[Round]) -> None:
    one, two = rounds[1], rounds[2]
    spread = ", ".join(f"{k} {v}" for k, v in two.spread.items())
    print(
        f"\nOn this machine (2 cores shared by the edge, the nodes, both FastAGI servers, PostgreSQL and SIPp) "
        f"two nodes ran {two.calls} calls in {two.wall_s:.1f} s against one node's {one.wall_s:.1f} s, at "
        f"{two.cpu.total / two.calls:.3f} against {one.cpu.total / one.calls:.3f} CPU s per call: a second node "
        f"on the same cores adds no capacity; it spreads the calls ({spread}) and keeps calls going when "
        "one node dies."
    )


# --- setting up and tearing down ---------------------------------------------------------


def running_secret(settings: Settings) -> str:
    """The AMI secret of the settings, else the running local Asterisk's, else a fresh one."""
    if settings.ami.secret:
        return settings.ami.secret
    local = LocalAsterisk(settings)
    if local.running_pid() is not None:
        text = resolve_in_root(local.root, f"{ETC_DIR}/manager.conf").read_text(encoding="utf-8")
        user = re.escape(settings.ami.user)
        found = re.search(rf"^\[{user}\]\s*$.*?^secret\s*=\s*(\S+)", text, re.MULTILINE | re.DOTALL)
        if found:
            return found.group(1)
    return "bench-" + os.urandom(12).hex()


def bench_settings(base: Settings, url: str, ports: Sequence[int]) -> tuple[Settings, Settings]:
    """The local Asterisk's settings (the test carrier's trunk, PostgreSQL, both FastAGI
    servers) and the cluster's (its ports and its share of RTP ports)."""
    local = with_test_sip(base)
    local = local.model_copy(
        update={
            "database": local.database.model_copy(update={"url": url}),
            "agi": local.agi.model_copy(update={"servers": tuple(f"127.0.0.1:{p}" for p in ports)}),
            "ami": local.ami.model_copy(update={"secret": running_secret(base)}),
        }
    )
    sip = local.sip.model_copy(update={"rtp_start": CLUSTER_RTP[0], "rtp_end": CLUSTER_RTP[1]})
    cluster = local.model_copy(
        update={
            "sip": sip,
            "cluster": ClusterSettings(name="bench-cluster", edge_port=EDGE_PORT, node_sip_port=NODE_SIP_PORT),
        }
    )
    return local, cluster


def refusal(base: Settings) -> str | None:
    """Why this cannot run here now, if it cannot."""
    if os.geteuid() != 0:
        return "run as root (Asterisk is chrooted, SIPp binds 127.0.0.2)"
    if shutil.which("sipp") is None:
        return "sipp is not installed (make deps)"
    if not any((base.ivr.prompts_dir / "build").glob("*/*.wav")):
        return f"no built prompts in {base.ivr.prompts_dir / 'build'} (make prompts)"
    cluster = Cluster(base)
    if cluster.edge_pid() is not None or any(a.running_pid() for a in cluster.asterisks(cluster.nodes())):
        return "a cluster is up on this machine (hotline cluster down, or make stop-cluster)"
    return None


def restore_local(local: LocalAsterisk, was_running: bool, secret: str) -> None:
    """Leave the local Asterisk as found: stopped, or with its own configuration again."""
    if not was_running:
        local.down()
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.setdefault("HOTLINE_AMI_SECRET", secret)
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "asterisk", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        print(f"cluster_calls: `hotline asterisk up` to restore its configuration failed: {done.stderr[-500:]}")


def start_fastagi(url: str, ports: Sequence[int], tmp: Path) -> list[ServerProcess]:
    servers: list[ServerProcess] = []
    try:
        for i, port in enumerate(ports, 1):
            env = child_env(
                HOTLINE_DATABASE_URL=url,
                HOTLINE_SECURITY_PIN_PEPPER=PEPPER,
                HOTLINE_AGI_HOST="127.0.0.1",
                HOTLINE_AGI_PORT=str(port),
            )
            argv = ["-m", "hotline", "serve", "--only", "agi"]
            servers.append(ServerProcess(f"fastagi{i}", argv, env, tmp, tmp / f"serve{i}.log"))
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers


def postmaster_pid(tmp: Path) -> int | None:
    """The PostgreSQL that postgres_url started under `tmp` (its data directory's first line)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((tmp / "pg" / "postmaster.pid").read_text().splitlines()[0])
    return None


def measure(b: Bench, local: LocalAsterisk, cluster: Cluster) -> dict[str, Any]:
    print(
        f"{b.args.calls} pension-balance calls at once ({b.args.rate:g}/s) from SIPp at {CARRIER_ADDR} "
        f"(UDP, RFC 4733), PostgreSQL, two FastAGI servers; {os.cpu_count()} cores"
    )
    print(
        "answer ms: INVITE to 200, median/max; then CPU seconds per call of the edge (Kamailio and its children), "
        "each Asterisk, the FastAGI servers, their total, and PostgreSQL and SIPp beside"
    )
    print(HEADER)
    rounds = run_rounds(b, local, cluster)
    print(f"idle, {IDLE_S:g} s before each round, % of one core: edge, each Asterisk, the FastAGI servers, PostgreSQL")
    for r in rounds:
        print(f"  {r.setup:<19} {idle_line(r.idle)}")
    ratios = overheads(rounds)
    print("edge overhead: " + ", ".join(f"{k} {fmt(v, 2)}" for k, v in ratios.items()))
    for r in rounds:
        for reason in sorted(set(r.failures))[:3]:
            print(f"  {r.setup}: {r.failures.count(reason)} x {reason}")
    node_answer_s = b.cluster.cluster.node_answer_ms / 1000
    fail = run_failover(cluster, b.store, b.args.failover_rate, b.args.failover_s, b.tmp / "failover")
    print_failover(fail, b.args.failover_rate, node_answer_s)
    sizing = print_estimate(rounds)
    print_verdict(rounds)
    return {
        "date": dt.date.today().isoformat(),
        "cores": os.cpu_count(),
        "args": {k: v for k, v in vars(b.args).items() if k != "json"},
        "rounds": [{**asdict(r), "completed": r.completed, "total_cpu_s": r.cpu.total} for r in rounds],
        "overheads": ratios,
        "failover": asdict(fail),
        "estimate": sizing,
        "assumptions": asdict(Assumptions()),
    }


def stop_fastagi(servers: Sequence[ServerProcess]) -> None:
    for s in servers:
        s.stop()
    for s in servers:
        for note in log_problems(s.log_path):
            print(f"  {s.name}: {note}")


def run(args: argparse.Namespace, base: Settings, tmp: Path) -> dict[str, Any]:
    # Undone in the reverse order, each step even if one before it failed: the cluster down,
    # the local Asterisk as found, the FastAGI servers stopped, PostgreSQL stopped.
    with contextlib.ExitStack() as undo:
        url = undo.enter_context(contextlib.contextmanager(postgres_url)(tmp))  # it yields once
        people = load_people(tmp, url)
        ports = (free_port(), free_port())
        local_settings, cluster_settings = bench_settings(base, url, ports)
        servers = start_fastagi(url, ports, tmp)
        undo.callback(stop_fastagi, servers)
        store = Store(url)
        undo.callback(store.dispose)
        local = LocalAsterisk(local_settings)
        undo.callback(restore_local, local, local.running_pid() is not None, local_settings.ami.secret)
        cluster = Cluster(cluster_settings)
        undo.callback(cluster.down)
        local.up()
        fastagi = tuple(s.proc.pid for s in servers)
        b = Bench(args, local_settings, cluster_settings, store, people, fastagi, postmaster_pid(tmp), tmp)
        return measure(b, local, cluster)
    raise AssertionError("unreachable")  # mypy: ExitStack may swallow exceptions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=CALLS, help="pension-balance calls at once per setup")
    parser.add_argument("--rate", type=float, default=RATE_PER_S, help="new calls per second in those rounds")
    parser.add_argument("--failover-rate", type=float, default=FAILOVER_RATE, help="short calls per second")
    parser.add_argument("--failover-s", type=float, default=FAILOVER_S, help="how long short calls are placed")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    base = load_settings(None, {k: v for k, v in os.environ.items() if k.startswith("HOTLINE_")})
    if why := refusal(base):
        print(f"cluster_calls: {why}", file=sys.stderr)
        return 2
    # A TERM (a supervisor giving up) unwinds like an error: the cluster down, all stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="hotline-bench-cluster-"))
    shutil.chown(tmp, "postgres")  # tools/pg.sh runs initdb as postgres under it
    try:
        figures = run(args, base, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    ok = all(not r["failures"] for r in figures["rounds"]) and figures["failover"]["lost_other"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
