"""The IVR beside a console under load: paced calls alone, then the same calls while the
console takes a flood of failed sign-ins and feeds open wallboard streams.

    python -m bench.console_load [--calls 100] [--think-ms 300] [--logins-per-s 50] [--streams 100]

One `hotline serve --only agi,web` process (FastAGI and the console in one process, as
`hotline serve` runs them) on a temporary SQLite file with the sample loaded, and a
supervisor account. Phase 1 (baseline): `--calls` balance-query calls paced like callers
keying their entries (`--think-ms` per entry, arrivals spread over one call's length),
all in progress together. Phase 2 (loaded): `--streams` wallboard event streams open (the
supervisor's, each re-sending the board every second when it changes), and failed
sign-ins at `--logins-per-s` from `--addresses` loopback addresses (127.0.1.x, so the
per-address limit does not turn most of them away: each is a full scrypt), then the same
calls again. Per-command latency is as in bench/fastagi_load.py: from the peer's reply to
the server's next command. The console's own streams caps are raised for the run (a
supervisor may have 4 at once by default).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import ClientError, ClientSession, ClientTimeout, CookieJar, TCPConnector

from bench.agi_peer import CallOutcome
from bench.fastagi_load import (
    PEPPER,
    RESIDENTS,
    call_failure,
    drive,
    load_sample,
    log_problems,
    percentile_ms,
    store_failure,
)
from bench.procs import ServerProcess, child_env, free_port
from core import sample
from core.db import Store
from core.sample import SampleResident

SUP_PW = "bench-supervisor-pw"
LOGIN_TIMEOUT_S = 30.0


@dataclass
class Load:
    """What the console load did while the calls ran."""

    logins: Counter[str] = field(default_factory=Counter)  # HTTP status (or error) -> count
    login_s: list[float] = field(default_factory=list)
    streams_open: int = 0
    events: int = 0
    stream_errors: Counter[str] = field(default_factory=Counter)


def per_command(outcomes: list[CallOutcome]) -> dict[str, list[float]]:
    """Turnarounds grouped by the command that ended them (GET DATA, STREAM FILE, ...)."""
    by_kind: dict[str, list[float]] = {}
    for o in outcomes:
        for wait, command in zip(o.turnarounds_s, o.commands[1:], strict=False):
            by_kind.setdefault(" ".join(command.split(" ")[:2]), []).append(wait)
    return by_kind


async def _login_token(http: ClientSession, base: str) -> str:
    page = await (await http.get(f"{base}/login")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    if found is None:
        raise RuntimeError("no CSRF token on the sign-in page")
    return found.group(1)


async def flood(base: str, per_s: float, addresses: int, load: Load, stop: asyncio.Event) -> None:
    """Failed sign-ins at `per_s`, spread over `addresses` source addresses."""
    sessions = [
        ClientSession(
            cookie_jar=CookieJar(unsafe=True),
            connector=TCPConnector(local_addr=(f"127.0.1.{1 + i % 250}", 0), limit=0),
            timeout=ClientTimeout(total=LOGIN_TIMEOUT_S),
        )
        for i in range(addresses)
    ]
    pending: set[asyncio.Task[None]] = set()
    try:
        tokens = await asyncio.gather(*(_login_token(s, base) for s in sessions))

        async def attempt(i: int) -> None:
            http, token = sessions[i % addresses], tokens[i % addresses]
            form = {"csrf": token, "username": f"agent{i % 500}", "password": f"guess-{i}"}
            start = time.perf_counter()
            try:
                async with http.post(f"{base}/login", data=form, allow_redirects=False) as r:
                    await r.read()
                    load.logins[str(r.status)] += 1
            except (ClientError, TimeoutError) as exc:
                load.logins[type(exc).__name__] += 1
            load.login_s.append(time.perf_counter() - start)

        loop, i = asyncio.get_running_loop(), 0
        begun = loop.time()
        while not stop.is_set():
            task = asyncio.create_task(attempt(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, begun + i / per_s - loop.time()))
        if pending:
            await asyncio.wait(pending, timeout=LOGIN_TIMEOUT_S)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*(s.close() for s in sessions))


async def streams(base: str, count: int, load: Load, opened: asyncio.Event, stop: asyncio.Event) -> None:
    """`count` wallboard streams of one signed-in supervisor, read until `stop`."""
    async with ClientSession(cookie_jar=CookieJar(unsafe=True), connector=TCPConnector(limit=0)) as http:
        token = await _login_token(http, base)
        form = {"csrf": token, "username": "sup", "password": SUP_PW}
        async with http.post(f"{base}/login", data=form, allow_redirects=False) as r:
            if r.status != 303:
                raise RuntimeError(f"the supervisor could not sign in: HTTP {r.status}")

        def settled() -> None:
            if load.streams_open + sum(load.stream_errors.values()) >= count:
                opened.set()

        async def one() -> None:
            first = True
            try:
                async with http.get(f"{base}/wallboard/stream") as r:
                    if r.status != 200:
                        load.stream_errors[str(r.status)] += 1
                        settled()
                        return
                    async for line in r.content:
                        if line.startswith(b"data: "):
                            load.events += 1
                            if first:
                                first = False
                                load.streams_open += 1
                                settled()
            except ClientError as exc:
                load.stream_errors[type(exc).__name__] += 1
                if first:
                    settled()

        readers = [asyncio.create_task(one()) for _ in range(count)]
        await stop.wait()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def loaded_calls(
    base: str, agi_port: int, people: list[SampleResident], args: argparse.Namespace
) -> tuple[list[CallOutcome], float, Load]:
    load, opened, stop = Load(), asyncio.Event(), asyncio.Event()
    readers = asyncio.create_task(streams(base, args.streams, load, opened, stop))
    await asyncio.wait_for(opened.wait(), 120)
    flooding = asyncio.create_task(flood(base, args.logins_per_s, args.addresses, load, stop))
    await asyncio.sleep(2.0)  # the flood reaches its pace before the calls come
    try:
        outcomes, wall = await drive(agi_port, people, args.calls, args.calls, args.think_ms / 1000)
    finally:
        stop.set()
        await asyncio.gather(readers, flooding)
    return outcomes, wall, load


def add_supervisor(tmp: Path, url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "users", "add", "sup", "--role", "supervisor", "--password-stdin"],
        cwd=tmp,
        env=child_env(HOTLINE_DATABASE_URL=url, HOTLINE_SECURITY_PIN_PEPPER=PEPPER),
        input=SUP_PW + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise SystemExit(f"users add failed: {done.stderr[-2000:]}")


def report(args: argparse.Namespace, base: list[CallOutcome], loaded: list[CallOutcome], load: Load) -> None:
    pace = f"{args.think_ms} ms per entry"
    print(f"\nConsole load beside the IVR: {args.calls} paced calls ({pace}), one `hotline serve --only agi,web`")
    print(
        f"load: {args.logins_per_s:g} failed sign-ins/s from {args.addresses} addresses, "
        f"{args.streams} wallboard streams"
    )
    print(f"{'command':<22}{'n':>6}{'alone p50':>11}{'alone p99':>11}{'loaded p50':>12}{'loaded p99':>12}{'p99 x':>8}")
    alone, under = per_command(base), per_command(loaded)
    rows = [("all commands", [t for o in base for t in o.turnarounds_s], [t for o in loaded for t in o.turnarounds_s])]
    rows += [(kind, alone[kind], under.get(kind, [])) for kind in sorted(alone)]
    for kind, a, b in rows:
        a99, b99 = percentile_ms(a, 0.99), percentile_ms(b, 0.99)
        print(
            f"{kind:<22}{len(b):>6}{percentile_ms(a, 0.5):>11.2f}{a99:>11.2f}"
            f"{percentile_ms(b, 0.5):>12.2f}{b99:>12.2f}{b99 / a99 if a99 else float('nan'):>8.2f}"
        )
    sent = sum(load.logins.values())
    print(
        f"sign-ins: {sent} sent ({dict(load.logins)}), answered p50 {percentile_ms(load.login_s, 0.5):.0f} ms, "
        f"p99 {percentile_ms(load.login_s, 0.99):.0f} ms"
    )
    print(
        f"streams: {load.streams_open} open, {load.events} events received, refused/errors {dict(load.stream_errors)}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--calls", type=int, default=100)
    cli.add_argument("--think-ms", type=int, default=300, help="a caller's time to key each entry")
    cli.add_argument("--logins-per-s", type=float, default=50.0)
    cli.add_argument("--addresses", type=int, default=100, help="source addresses of the failed sign-ins (<= 250)")
    cli.add_argument("--streams", type=int, default=100)
    args = cli.parse_args(argv)
    if not 1 <= args.addresses <= 250:
        cli.error("--addresses must be 1..250")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    people = sample.generate(residents=RESIDENTS)[1]
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as name:
        tmp = Path(name)
        url = f"sqlite:///{tmp}/bench.db"
        load_sample(tmp, url)
        add_supervisor(tmp, url)
        agi_port, web_port = free_port(), free_port()
        env = child_env(
            HOTLINE_DATABASE_URL=url,
            HOTLINE_SECURITY_PIN_PEPPER=PEPPER,
            HOTLINE_AGI_PORT=str(agi_port),
            HOTLINE_WEB_PORT=str(web_port),
            HOTLINE_WEB_STREAMS_PER_USER=str(args.streams),
            HOTLINE_WEB_STREAMS_PER_ADDRESS=str(args.streams),
        )
        server = ServerProcess("ours", ["-m", "hotline", "serve", "--only", "agi,web"], env, tmp, tmp / "serve.log")
        store = Store(url)
        try:
            base, _ = asyncio.run(drive(agi_port, people, args.calls, args.calls, args.think_ms / 1000))
            loaded, _, load = asyncio.run(loaded_calls(f"http://127.0.0.1:{web_port}", agi_port, people, args))
            failures = [
                f
                for run in (base, loaded)
                for i, o in enumerate(run)
                if (f := call_failure(o, None) or store_failure(store, o, people[i % len(people)])) is not None
            ]
        finally:
            server.stop()
            store.dispose()
        problems = log_problems(tmp / "serve.log")
    report(args, base, loaded, load)
    for problem in problems:
        print(f"  {problem}")
    for reason, count in Counter(failures).most_common(3):
        print(f"  failed calls: {count} x {reason}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
