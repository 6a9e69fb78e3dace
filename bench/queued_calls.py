"""Real Asterisk: how many callers can wait in the queue at once, with scripted agents
answering, and every call still end up with a complete record.

    HOTLINE_AMI_SECRET=... python -m bench.queued_calls

Needs the local Asterisk 22 running (`hotline asterisk up`) and nothing on its FastAGI
port: this starts `hotline serve --only agi,ami` there, on a temporary SQLite file. For N
in 25, 50, 100, 150 it logs N/4 scripted agents into hotline-12333 (ring 1 s, talk 5 s),
originates N callers at once who press 0 and wait, and when all have hung up checks each
call's live record (written by the AMI monitor) against what Asterisk's queue_log says
(imported into a second, empty store): a call is lost if its live record is missing,
unfinished, or disagrees on disposition, agent, wait or talk time. It stops at the first
N with a lost call. The baseline in the same run is queue_log itself: every caller that
Asterisk logged as entering the queue must have a live record.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.asterisk_calls import AGI_HOST, free_agi_port
from bench.fastagi_load import PEPPER, load_sample, log_problems
from bench.procs import ServerProcess, child_env
from core.db import Store
from core.errors import HotlineError
from core.models import Call
from core.settings import Settings, load_settings
from ivr.asterisk import LocalAsterisk
from ivr.caller import ScriptedCaller
from ivr.dialplan import QUEUE_GENERAL
from ivr.records import import_files

ROUNDS = (25, 50, 100, 150)
CALLERS_PER_AGENT = 4
TALK_S = 5
HANGUP_LIMIT_S = 240.0
SETTLE_LIMIT_S = 30.0
TOTAL_LIMIT_S = 900.0


@dataclass
class Round:
    calls: int
    agents: int
    answered: int = 0
    timed_out: int = 0
    lost: list[str] = field(default_factory=list)
    waits: list[int] = field(default_factory=list)
    wall_s: float = 0.0


def _agent(i: int) -> dict[str, str]:
    return {"Queue": QUEUE_GENERAL, "Interface": f"Local/7{i:03d}-1-{TALK_S}@hotline-agents/n"}


async def _members(ami: ScriptedCaller, count: int, action: str) -> None:
    for i in range(count):
        extra = {"MemberName": f"Bench {i:03d}"} if action == "QueueAdd" else {}
        await ami.send({"Action": action, **_agent(i), **extra}, as_list=False)


async def _one(ami: ScriptedCaller, i: int) -> str:
    # 0 at the welcome; the callers stay until the survey after their agent call ends it.
    uid = await ami.originate_caller("0", lead_s=1, tail_s=HANGUP_LIMIT_S - 30, caller_id=f"1390000{i:04d}")
    await ami.wait_hangup(uid, HANGUP_LIMIT_S)
    return uid


@dataclass(frozen=True)
class Rec:
    disposition: str | None
    agent: str | None
    wait: int | None
    talk: int | None


def _record(store: Store, uid: str) -> Rec | None:
    with store.session() as s:
        call = s.query(Call).filter(Call.asterisk_uniqueid == uid, Call.ended_at.is_not(None)).one_or_none()
        if call is None or call.disposition is None:
            return None
        return Rec(call.disposition, call.agent, call.queue_wait_s, call.talk_s)


def _close(a: int | None, b: int | None) -> bool:
    """Seconds agree within 1 (AMI and queue_log round at different moments), or both absent."""
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1)


async def _settled(live: Store, uids: list[str]) -> dict[str, Rec | None]:
    """The live records, once the monitor has written them all (or the time is up)."""
    deadline = time.monotonic() + SETTLE_LIMIT_S
    while True:
        records = {uid: await asyncio.to_thread(_record, live, uid) for uid in uids}
        if all(records.values()) or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.5)


def _compare(result: Round, got: Rec | None, want: Rec | None) -> None:
    if want is None:
        result.lost.append("not in queue_log (never queued)")
        return
    result.answered += want.disposition == "agent"
    result.timed_out += want.disposition == "timeout"
    if want.wait is not None:
        result.waits.append(want.wait)
    if got is None:
        result.lost.append("no finished live record")
    elif (got.disposition, got.agent) != (want.disposition, want.agent):
        result.lost.append(f"live {got.disposition}/{got.agent} but queue_log {want.disposition}/{want.agent}")
    elif not (_close(got.wait, want.wait) and _close(got.talk, want.talk)):
        result.lost.append(f"live wait/talk {got.wait}/{got.talk} but queue_log {want.wait}/{want.talk}")


async def run_round(settings: Settings, live: Store, n: int, tmp: Path) -> Round:
    result = Round(n, max(1, n // CALLERS_PER_AGENT))
    start = time.perf_counter()
    async with ScriptedCaller(settings) as ami:
        await _members(ami, result.agents, "QueueAdd")
        try:
            placed = await asyncio.gather(*(_one(ami, i) for i in range(n)), return_exceptions=True)
        finally:
            await _members(ami, result.agents, "QueueRemove")
    result.wall_s = time.perf_counter() - start
    uids = []
    for uid in placed:
        if isinstance(uid, HotlineError):
            result.lost.append(f"{type(uid).__name__}: {uid}")
        elif isinstance(uid, BaseException):
            raise uid
        else:
            uids.append(uid)
    records = await _settled(live, uids)
    # What Asterisk itself wrote, imported into an empty store: the reference.
    ref = Store(f"sqlite:///{tmp}/reference-{n}.db")
    ref.migrate()
    local = LocalAsterisk(settings)
    await asyncio.to_thread(import_files, ref, local.queue_log, None)
    for uid in uids:
        _compare(result, records[uid], await asyncio.to_thread(_record, ref, uid))
    ref.dispose()
    return result


def _report(r: Round) -> str:
    waits = sorted(r.waits)
    p50 = statistics.median(waits) if waits else 0
    p95 = waits[int(0.95 * (len(waits) - 1))] if waits else 0
    return (
        f"N={r.calls:>3} agents={r.agents:>2}: {r.calls - len(r.lost):>3} recorded, {len(r.lost):>2} lost; "
        f"{r.answered} answered, {r.timed_out} timed out; wait p50 {p50:.0f} s p95 {p95} s; wall {r.wall_s:.0f} s"
    )


async def run_rounds(settings: Settings, live: Store, tmp: Path, sizes: tuple[int, ...]) -> list[Round]:
    rounds: list[Round] = []
    deadline = time.monotonic() + TOTAL_LIMIT_S
    for n in sizes:
        if time.monotonic() + HANGUP_LIMIT_S > deadline:
            print(f"N={n}: skipped, the {TOTAL_LIMIT_S:.0f} s budget is spent")
            break
        result = await run_round(settings, live, n, tmp)
        rounds.append(result)
        print(_report(result), flush=True)
        for reason in sorted(set(result.lost))[:3]:
            print(f"        {result.lost.count(reason)} x {reason}")
        if result.lost:
            break
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=lambda v: tuple(int(n) for n in v.split(",")), default=ROUNDS)
    args = parser.parse_args(argv)
    environ = {k: v for k, v in os.environ.items() if k.startswith("HOTLINE_")}
    settings = load_settings(None, environ)
    port = free_agi_port("queued_calls", settings)
    if port is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="hotline-bench-queue-") as name:
        tmp = Path(name)
        url = f"sqlite:///{tmp}/calls.db"
        load_sample(tmp, url)
        env = child_env(
            HOTLINE_DATABASE_URL=url,
            HOTLINE_SECURITY_PIN_PEPPER=PEPPER,
            HOTLINE_AGI_HOST=AGI_HOST,
            HOTLINE_AGI_PORT=str(port),
            HOTLINE_AMI_SECRET=settings.ami.secret,
            # Live records only: the monitor's catch-up from queue_log would hide a lost call.
            HOTLINE_AMI_QUEUE_LOG=str(tmp / "no-queue-log"),
            HOTLINE_QUEUE_OPEN_TIME="00:00",
            HOTLINE_QUEUE_CLOSE_TIME="00:00",
            HOTLINE_QUEUE_OPEN_WEEKDAYS="1,2,3,4,5,6,7",
            HOTLINE_QUEUE_DEFAULT_TALK_S=str(TALK_S),
        )
        server = ServerProcess("ours", ["-m", "hotline", "serve", "--only", "agi,ami"], env, tmp, tmp / "serve.log")
        live = Store(url)
        try:
            print(f"real Asterisk, callers pressing 0 for {QUEUE_GENERAL}, 1 scripted agent per {CALLERS_PER_AGENT}")
            rounds = asyncio.run(run_rounds(settings, live, tmp, args.rounds))
        finally:
            server.stop()
            live.dispose()
        problems = log_problems(tmp / "serve.log")
    for note in problems:
        print(f"  {note}")
    clean = [r.calls for r in rounds if not r.lost]
    print(f"largest N queued at once with no lost record: {max(clean) if clean else 'none'}")
    return 0 if rounds and not rounds[-1].lost and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
