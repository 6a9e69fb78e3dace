"""Real Asterisk: how many concurrent scripted balance-query calls complete with no failure.

    HOTLINE_AMI_SECRET=... python -m bench.asterisk_calls

Needs the local Asterisk 22 running (`hotline asterisk up`) with its dialplan sending
12333 to FastAGI on 127.0.0.1:4573, and nothing else listening there: this starts
`hotline serve --only agi` on that port, on a temporary SQLite file with the sample
loaded. For N in 10, 25, 50, 75, 100 it originates N scripted callers at once (AMI
Originate, as `ivr.caller.place_call`, over one AMI session that listens for hang-ups
before the first call), waits until all hung up, and checks that each call's stored
trail holds the caller's pension balance. It stops at the first N with a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.fastagi_load import PEPPER, RESIDENTS, load_sample, log_problems
from bench.procs import ServerProcess, child_env, port_in_use
from core import sample
from core.db import Store
from core.errors import HotlineError
from core.sample import SampleResident
from core.settings import Settings, load_settings
from ivr.caller import ScriptedCaller
from ivr.dialplan import AGI_SERVER_SEPARATOR, GLOBAL_AGI_SERVERS
from ivr.trail import find_call_id, show_call

ROUNDS = (10, 25, 50, 75, 100)
AGI_HOST = "127.0.0.1"
LEAD_S = 1.0
TAIL_S = 4.0
HANGUP_LIMIT_S = 90.0  # one call lasts ~20 s
TRAIL_LIMIT_S = 15.0
TOTAL_LIMIT_S = 300.0


@dataclass
class Round:
    calls: int
    ok: int
    failures: list[str]
    wall_s: float


def keypad(r: SampleResident) -> str:
    return f"1W1W1W{r.id_number.replace('X', '*')}W{r.pin}"


async def agi_port(settings: Settings) -> int:
    """The FastAGI port Asterisk's dialplan tries first (global HOTLINE_AGI_SERVERS, host:port&...)."""
    async with ScriptedCaller(settings) as ami:
        reply = (await ami.send({"Action": "Getvar", "Variable": GLOBAL_AGI_SERVERS}))[0]
    first = str(reply.get("Value") or "").split(AGI_SERVER_SEPARATOR)[0]
    host, _, port = first.rpartition(":")
    if host != AGI_HOST or not port.isdigit():
        raise SystemExit(f"Asterisk sends FastAGI to {reply.get('Value')!r}, not to {AGI_HOST}:<port>")
    return int(port)


def listener(port: int) -> str:
    """Who listens on the port, as far as this user may see."""
    with contextlib.suppress(psutil.AccessDenied, psutil.NoSuchProcess):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                command = " ".join(proc.cmdline()).replace("\n", " ")
                return f"pid {conn.pid} ({command[:100]})"
    return "an unknown process"


async def one_call(ami: ScriptedCaller, r: SampleResident, caller_id: str) -> str:
    """Place one call and wait for its hang-up; returns the Uniqueid."""
    uid = await ami.originate_caller(keypad(r), lead_s=LEAD_S, tail_s=TAIL_S, caller_id=caller_id)
    await ami.wait_hangup(uid, HANGUP_LIMIT_S)
    return uid


async def trail_failure(store: Store, uid: str, r: SampleResident) -> str | None:
    """None if the call's trail holds the right balance; waits for the session to end."""
    deadline = time.monotonic() + TRAIL_LIMIT_S
    while True:
        call_id = await asyncio.to_thread(find_call_id, store, uniqueid=uid)
        call = await asyncio.to_thread(show_call, store, call_id, actor="bench") if call_id else None
        if call is not None and call["ended_at"]:
            break
        if time.monotonic() > deadline:
            return "no call recorded" if call is None else "call not ended in the store"
        await asyncio.sleep(0.2)
    results = [s for s in call["trail"] if s["kind"] == "result" and s["query"] == "pension"]
    if not results:
        return f"no pension result (last node {call['last_node']}, outcome {call['outcome']})"
    if results[0]["data"]["balance_fen"] != r.pension_balance_fen:
        return "wrong balance"
    return None


async def run_round(settings: Settings, store: Store, people: list[SampleResident]) -> Round:
    start = time.perf_counter()
    async with ScriptedCaller(settings) as ami:
        placed = await asyncio.gather(
            *(one_call(ami, r, f"1380000{i:04d}") for i, r in enumerate(people)), return_exceptions=True
        )
    wall = time.perf_counter() - start
    failures: list[str] = []
    for r, uid in zip(people, placed, strict=True):
        if isinstance(uid, HotlineError):
            failures.append(f"{type(uid).__name__}: {uid}")
        elif isinstance(uid, BaseException):
            raise uid
        elif (problem := await trail_failure(store, uid, r)) is not None:
            failures.append(problem)
    return Round(len(people), len(people) - len(failures), failures, wall)


async def run_rounds(settings: Settings, store: Store, people: list[SampleResident]) -> list[Round]:
    rounds: list[Round] = []
    deadline = time.monotonic() + TOTAL_LIMIT_S
    used = 0
    for n in ROUNDS:
        if time.monotonic() + HANGUP_LIMIT_S > deadline:
            print(f"N={n}: skipped, the {TOTAL_LIMIT_S:.0f} s budget is spent")
            break
        result = await run_round(settings, store, people[used : used + n])
        used += n
        rounds.append(result)
        print(f"N={n:>3}: {result.ok:>3} ok, {len(result.failures):>3} failed, wall {result.wall_s:5.1f} s", flush=True)
        for reason in sorted(set(result.failures))[:3]:
            print(f"        {result.failures.count(reason)} x {reason}")
        if result.failures:
            break
    return rounds


def free_agi_port(tool: str, settings: Settings) -> int | None:
    """The FastAGI port the running Asterisk sends calls to, if nothing listens there yet;
    else None, with the reason printed for `tool`'s user."""
    if not settings.ami.secret:
        print(f"{tool}: set HOTLINE_AMI_SECRET (the running Asterisk's AMI secret)", file=sys.stderr)
        return None
    try:
        port = asyncio.run(agi_port(settings))
    except HotlineError as exc:  # AMI down or login refused
        print(f"{tool}: is the local Asterisk up (`hotline asterisk up`)? {exc}", file=sys.stderr)
        return None
    if port_in_use(port):
        print(f"{tool}: {listener(port)} already listens on {AGI_HOST}:{port}; stop it first", file=sys.stderr)
        return None
    return port


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    environ = {k: v for k, v in os.environ.items() if k.startswith("HOTLINE_")}
    settings = load_settings(None, environ)
    port = free_agi_port("asterisk_calls", settings)
    if port is None:
        return 2
    people = sample.generate(residents=RESIDENTS)[1]
    with tempfile.TemporaryDirectory(prefix="hotline-bench-ast-") as name:
        tmp = Path(name)
        url = f"sqlite:///{tmp}/calls.db"
        load_sample(tmp, url)
        env = child_env(
            HOTLINE_DATABASE_URL=url,
            HOTLINE_SECURITY_PIN_PEPPER=PEPPER,
            HOTLINE_AGI_HOST=AGI_HOST,
            HOTLINE_AGI_PORT=str(port),
        )
        server = ServerProcess("ours", ["-m", "hotline", "serve", "--only", "agi"], env, tmp, tmp / "serve.log")
        store = Store(url)
        try:
            print(f"real Asterisk, scripted pension-balance callers, FastAGI server on {AGI_HOST}:{port}")
            rounds = asyncio.run(run_rounds(settings, store, people))
        finally:
            server.stop()
            store.dispose()
        problems = log_problems(tmp / "serve.log")
    for note in problems:
        print(f"  {note}")
    clean = [r.calls for r in rounds if not r.failures]
    print(f"largest N with no failure: {max(clean) if clean else 'none'}")
    return 0 if rounds and not rounds[-1].failures and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
