"""Real SIP calls from a carrier (SIPp) through the full IVR, beside the same calls as Local channels.

    HOTLINE_AMI_SECRET=... python -m bench.sip_calls [--rate 10] [--steps 10,25,50,100]

Needs the local Asterisk 22 running (`hotline asterisk up`) and nothing listening on its
FastAGI port: this starts `hotline serve --only agi` there, on a temporary SQLite file with
the sample loaded. If no trunk of the settings matches 127.0.0.2, the running Asterisk is
given the test carrier's trunk (tests/real/sip_setup.py) for the run and `hotline asterisk
up` restores its own configuration afterwards.

For each concurrency N in the steps, two rounds of N pension-balance queries, started at
`--rate` calls per second and all under way together:
- SIP: SIPp, bound to 127.0.0.2 as the carrier, sends N INVITEs over UDP with PCMA and keys
  the caller's ID number and PIN as RFC 4733 events (tests/sip_peers), hangs up 4 s after;
- Local: the same calls as scripted Local channels over AMI (as bench/asterisk_calls.py).
A call counts as completed when it ended as planned and its stored trail holds the
resident's balance. Printed per round: completed, failed, wall time, and CPU seconds per call
of Asterisk and of the FastAGI server (psutil, user+system), and of SIPp for the SIP
rounds; then the SIP/Local ratio, and the largest N whose SIP round had no failure. It
stops at the first N with a SIP failure, or when the time budget is spent.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psutil
from sqlalchemy import select

from bench.asterisk_calls import AGI_HOST, LEAD_S, TAIL_S, free_agi_port, one_call, trail_failure
from bench.fastagi_load import PEPPER, log_problems
from bench.procs import ServerProcess, child_env
from core import sample
from core.db import Store
from core.errors import HotlineError
from core.models import Call
from core.sample import SampleResident
from core.settings import Settings, load_settings
from ivr.asterisk import LocalAsterisk
from ivr.caller import ScriptedCaller
from tests.real.sip_setup import CARRIER_ADDR, with_test_sip
from tests.sip_peers.sipp import CarrierCall, UacPlan, hotline_address, place_calls

STEPS = (10, 25, 50, 100)
RATE_PER_S = 10.0
RESIDENTS = 60
TOTAL_LIMIT_S = 280.0
ROUND_LIMIT_S = 60.0  # a call lasts ~21 s


@dataclass
class Round:
    mode: str
    calls: int
    failures: list[str]
    wall_s: float
    asterisk_cpu_s: float
    agi_cpu_s: float
    sipp_cpu_s: float = 0.0

    @property
    def ok(self) -> int:
        return self.calls - len(self.failures)

    def line(self) -> str:
        per = f"asterisk {self.asterisk_cpu_s / self.calls:6.3f}  fastagi {self.agi_cpu_s / self.calls:6.3f}"
        sipp = f"  sipp {self.sipp_cpu_s / self.calls:6.3f}" if self.mode == "sip" else ""
        return (
            f"N={self.calls:>3} {self.mode:<5}: {self.ok:>3} completed, {len(self.failures):>3} failed, "
            f"wall {self.wall_s:5.1f} s, CPU s/call: {per}{sipp}"
        )


def keys(r: SampleResident) -> str:
    return f"1W1W1W{r.id_number.replace('X', '*')}W{r.pin}"


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def caller_number(step: int, i: int) -> str:
    return f"139{step:02d}{i:06d}"


async def record_failure(store: Store, number: str, r: SampleResident) -> str | None:
    """None if the call from `number` was recorded, ended, with the right balance."""
    deadline = time.monotonic() + 15
    while True:
        with store.session() as s:
            uid = s.scalar(select(Call.asterisk_uniqueid).where(Call.caller_number == number))
        if uid:
            return await trail_failure(store, uid, r)
        if time.monotonic() > deadline:
            return "no call recorded"
        await asyncio.sleep(0.2)


def sip_round(
    settings: Settings, store: Store, r: SampleResident, n: int, step: int, rate: float, tmp: Path
) -> list[str]:
    calls = tuple(CarrierCall(caller_number(step, i)) for i in range(n))
    plan = UacPlan(calls, dtmf=keys(r), lead_s=LEAD_S, tail_s=TAIL_S, rate_per_s=rate, concurrency=n)
    result = place_calls(hotline_address(settings), plan, tmp / f"sip-{n}", name="carrier")
    failures = [f"SIP: INVITE {c.invite_codes}, BYE {c.bye_code}" for c in result.calls if not c.completed]
    failures += ["SIP: no INVITE sent"] * (n - len(result.calls))
    for c in result.calls:
        if c.completed and c.caller and (problem := asyncio.run(record_failure(store, c.caller, r))):
            failures.append(problem)
    return failures


async def local_round(settings: Settings, store: Store, r: SampleResident, n: int, rate: float) -> list[str]:
    async def paced(ami: ScriptedCaller, i: int) -> str:
        await asyncio.sleep(i / rate)
        return await one_call(ami, r, f"1380000{i:04d}")

    async with ScriptedCaller(settings) as ami:
        placed = await asyncio.gather(*(paced(ami, i) for i in range(n)), return_exceptions=True)
    failures: list[str] = []
    for uid in placed:
        if isinstance(uid, HotlineError):
            failures.append(f"{type(uid).__name__}: {uid}")
        elif isinstance(uid, BaseException):
            raise uid
        elif (problem := await trail_failure(store, uid, r)) is not None:
            failures.append(problem)
    return failures


def measured(mode: str, n: int, pids: tuple[int, int], work: Callable[[], list[str]]) -> Round:
    """Run `work()` and charge the CPU that Asterisk, the FastAGI server and our reaped
    children (SIPp) used meanwhile to its N calls."""
    before = (cpu_s(pids[0]), cpu_s(pids[1]), children_cpu_s(), time.perf_counter())
    failures = work()
    after = (cpu_s(pids[0]), cpu_s(pids[1]), children_cpu_s(), time.perf_counter())
    d = [a - b for a, b in zip(after, before, strict=True)]
    return Round(mode, n, failures, d[3], d[0], d[1], d[2] if mode == "sip" else 0.0)


def local_round_sync(settings: Settings, store: Store, r: SampleResident, n: int, rate: float) -> list[str]:
    return asyncio.run(local_round(settings, store, r, n, rate))


def run_steps(
    settings: Settings,
    store: Store,
    people: list[SampleResident],
    pids: tuple[int, int],
    rate: float,
    concurrency: tuple[int, ...],
    tmp: Path,
) -> list[tuple[Round, Round]]:
    rounds: list[tuple[Round, Round]] = []
    deadline = time.monotonic() + TOTAL_LIMIT_S
    for step, n in enumerate(concurrency):
        if time.monotonic() + 2 * ROUND_LIMIT_S > deadline:
            print(f"N={n}: skipped, the {TOTAL_LIMIT_S:.0f} s budget is spent")
            break
        r = people[step % len(people)]
        sip = measured("sip", n, pids, partial(sip_round, settings, store, r, n, step, rate, tmp))
        print(sip.line(), flush=True)
        local = measured("local", n, pids, partial(local_round_sync, settings, store, r, n, rate))
        print(local.line(), flush=True)
        for reason in sorted(set(sip.failures + local.failures))[:3]:
            print(f"        {(sip.failures + local.failures).count(reason)} x {reason}")
        rounds.append((sip, local))
        if sip.failures:
            break
    return rounds


def ratio(a: float, b: float) -> str:
    return f"{a / b:4.2f}" if b > 0 else "  - "


def report(rounds: list[tuple[Round, Round]]) -> None:
    print("SIP / Local CPU per call:")
    for sip, local in rounds:
        print(
            f"  N={sip.calls:>3}: asterisk {ratio(sip.asterisk_cpu_s, local.asterisk_cpu_s)}, "
            f"fastagi {ratio(sip.agi_cpu_s, local.agi_cpu_s)}"
        )
    clean = [sip.calls for sip, _ in rounds if not sip.failures]
    print(f"largest SIP concurrency with no failure: {max(clean) if clean else 'none'}")


def with_carrier(settings: Settings) -> tuple[Settings, bool]:
    """The settings with a trunk that matches the carrier's address; True if it had to be added."""
    here = ipaddress.ip_address(CARRIER_ADDR)
    if any(here in ipaddress.ip_network(m, strict=False) for t in settings.sip.trunks for m in t.match):
        return settings, False
    return with_test_sip(settings), True


def restore_asterisk() -> None:
    """`hotline asterisk up` again: its own settings and phones, without the test carrier."""
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "asterisk", "up"], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        print(f"sip_calls: `hotline asterisk up` to restore the configuration failed: {done.stderr[-500:]}")


def load_people(tmp: Path, url: str) -> list[SampleResident]:
    subprocess.run(
        [sys.executable, "-m", "hotline", "sample", "load", "--residents", str(RESIDENTS)],
        cwd=tmp,
        env=child_env(HOTLINE_DATABASE_URL=url, HOTLINE_SECURITY_PIN_PEPPER=PEPPER),
        capture_output=True,
        timeout=180,
        check=True,
    )
    return sample.generate(residents=RESIDENTS)[1]


def bench(settings: Settings, local: LocalAsterisk, port: int, args: argparse.Namespace) -> int:
    asterisk_pid = local.running_pid()
    if asterisk_pid is None:
        print("sip_calls: the local Asterisk is not running (`hotline asterisk up`)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="hotline-bench-sip-") as name:
        tmp = Path(name)
        url = f"sqlite:///{tmp}/calls.db"
        people = load_people(tmp, url)
        env = child_env(
            HOTLINE_DATABASE_URL=url,
            HOTLINE_SECURITY_PIN_PEPPER=PEPPER,
            HOTLINE_AGI_HOST=AGI_HOST,
            HOTLINE_AGI_PORT=str(port),
        )
        server = ServerProcess("ours", ["-m", "hotline", "serve", "--only", "agi"], env, tmp, tmp / "serve.log")
        store = Store(url)
        try:
            print(
                f"real Asterisk, pension-balance calls at {args.rate:g}/s: SIP from SIPp at {CARRIER_ADDR} "
                f"to {':'.join(map(str, hotline_address(settings)))} (UDP, RFC 4733), and as Local channels"
            )
            pids = (asterisk_pid, server.proc.pid)
            rounds = run_steps(settings, store, people, pids, args.rate, args.steps, tmp)
        finally:
            server.stop()
            store.dispose()
        problems = log_problems(tmp / "serve.log")
    for note in problems:
        print(f"  {note}")
    report(rounds)
    return 0 if rounds and not rounds[-1][0].failures and not problems else 1


def steps(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=RATE_PER_S, help="new calls per second")
    parser.add_argument("--steps", type=steps, default=STEPS, help="concurrency steps, e.g. 10,25,50,100")
    args = parser.parse_args(argv)
    environ = {k: v for k, v in os.environ.items() if k.startswith("HOTLINE_")}
    settings, added = with_carrier(load_settings(None, environ))
    port = free_agi_port("sip_calls", settings)
    if port is None:
        return 2
    local = LocalAsterisk(settings)
    if added:
        local.up()  # the running Asterisk reloads with the test carrier's trunk
    try:
        return bench(settings, local, port, args)
    finally:
        if added:
            restore_asterisk()


if __name__ == "__main__":
    sys.exit(main())
