"""AMI event ingestion: a generated AMI stream over TCP into call records.

    python -m bench.ami_ingest [--calls 2000]

The stream is the real Asterisk 22.10 recording of one queued call (shared fixtures),
repeated with fresh uniqueids. A local AMI stand-in answers Login and QueueStatus as
Asterisk does, then sends the whole stream. Measured in the same run:
  full     our AmiMonitor (panoramisk's Manager, the tracker, call records in SQLite)
  parse    panoramisk's Manager alone, counting events (the parse-only baseline)
  ours     our AmiParser alone on the same bytes
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from panoramisk import Manager
from sqlalchemy import func, select

from core.db import Store
from core.models import Call
from core.settings import load_settings
from ivr.ami_events import AmiParser, Message
from ivr.ami_monitor import AmiMonitor

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "ami-queue-call.txt"
UIDS = ("1795835802.20", "1795835802.21", "1795835803.22", "1795835803.23")
LIMIT_S = 300.0


def one_call() -> list[Message]:
    messages = AmiParser().feed(FIXTURE.read_bytes())
    return [m for m in messages if "Event" in m and m["Event"] not in ("FullyBooted", "SuccessfulAuth")]


def stream(calls: int) -> tuple[bytes, int]:
    """`calls` copies of the recorded call, each with its own uniqueids; returns bytes, events."""
    template = "".join("".join(f"{k}: {v}\r\n" for k, v in m.items()) + "\r\n" for m in one_call())
    pattern = re.compile("|".join(re.escape(u) for u in UIDS))
    chunks = []
    for i in range(calls):
        fresh = {u: f"{2000000000 + i}.{u.split('.')[1]}" for u in UIDS}
        chunks.append(pattern.sub(lambda m, f=fresh: f[m.group(0)], template))  # type: ignore[misc]
    return "".join(chunks).encode(), calls * len(one_call())


async def fake_ami(payload: bytes) -> tuple[asyncio.Server, int]:
    """Banner, Login and QueueStatus answered as Asterisk does, then the whole stream."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        parser = AmiParser()
        parser.banner = ""
        try:
            while data := await reader.read(4096):
                for action in parser.feed(data):
                    aid = action.get("ActionID", "")
                    name = action.get("Action", "").lower()
                    if name == "login":
                        writer.write(
                            f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted\r\n\r\n".encode()
                        )
                        writer.write(b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
                    elif name == "queuestatus":
                        writer.write(
                            f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n"
                            f"Message: Queue status will follow\r\n\r\nEvent: QueueStatusComplete\r\n"
                            f"ActionID: {aid}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n".encode()
                        )
                        writer.write(payload)
                    else:
                        writer.write(f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode())
                    await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def until(done: Callable[[], bool]) -> float:
    start = time.perf_counter()
    while not done():
        if time.perf_counter() - start > LIMIT_S:
            raise SystemExit("ingestion did not finish in time")
        await asyncio.sleep(0.02)
    return time.perf_counter() - start


async def run_full(payload: bytes, calls: int, tmp: Path) -> float:
    server, port = await fake_ami(payload)
    store = Store(f"sqlite:///{tmp}/ingest.db")
    store.migrate()
    settings = load_settings(None, {"HOTLINE_AMI_PORT": str(port), "HOTLINE_AMI_SECRET": "bench"})
    monitor = AmiMonitor(settings, store)
    monitor.start()

    def recorded() -> int:
        with store.session() as s:
            return s.scalar(select(func.count()).select_from(Call).where(Call.disposition == "agent")) or 0

    counted = 0

    def done() -> bool:
        nonlocal counted
        counted = recorded()
        return counted >= calls

    elapsed = await until(done)
    await monitor.stop()
    await asyncio.sleep(0.2)  # let the stand-in see the close and finish its handler
    server.close()
    store.dispose()
    return elapsed


async def run_parse_only(payload: bytes, events: int) -> float:
    server, port = await fake_ami(payload)
    seen = 0

    def count(_manager: object, _event: object) -> None:
        nonlocal seen
        seen += 1

    manager = Manager(
        host="127.0.0.1", port=port, username="bench", secret="bench", events="call,agent", ping_delay=600
    )
    manager.register_event("*", count)
    manager.on_login = lambda m: asyncio.ensure_future(m.send_action({"Action": "QueueStatus"}, as_list=True))
    manager.connect()
    elapsed = await until(lambda: seen >= events)
    manager.close()
    await asyncio.sleep(0.2)
    server.close()
    return elapsed


def parse_ours(payload: bytes) -> float:
    start = time.perf_counter()
    parser = AmiParser()
    for i in range(0, len(payload), 65536):
        parser.feed(payload[i : i + 65536])
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--calls", type=int, default=2000)
    args = cli.parse_args(argv)
    payload, events = stream(args.calls)
    print(f"\nAMI ingestion: {args.calls} queued calls, {events} events, {len(payload) / 2**20:.1f} MiB over TCP")
    with tempfile.TemporaryDirectory(prefix="hotline-ami-") as tmp:
        full = asyncio.run(run_full(payload, args.calls, Path(tmp)))
    parse = asyncio.run(run_parse_only(payload, events))
    ours = parse_ours(payload)
    print(f"{'path':<44}{'events/s':>12}{'calls/s':>10}")
    for name, secs in (
        ("full: AmiMonitor -> call records (SQLite)", full),
        ("parse only: panoramisk Manager", parse),
        ("parse only: our AmiParser (no socket)", ours),
    ):
        print(f"{name:<44}{events / secs:>12.0f}{args.calls / secs:>10.0f}")
    print(f"full vs panoramisk parse-only: x{parse / full:.2f} of its rate")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
