"""Notice calls through real Asterisk: how many an hour the dialler completes at its cap,
and what they cost the inbound callers meanwhile.

    HOTLINE_AMI_SECRET=... python -m bench.notice_calls [--notices 24] [--cap 4] [--inbound 10]

Needs the local Asterisk 22 running (`hotline asterisk up`) and nothing on its FastAGI
port. If no trunk matches 127.0.0.2, Asterisk is given the test carrier's (as
bench/sip_calls.py does) and `hotline asterisk up` restores its configuration after. This
starts `hotline serve --only agi,ami` (FastAGI, the AMI monitor, the notice dialler) on a
temporary SQLite file with the sample, on a port of its own, behind a relay on Asterisk's
FastAGI port that stamps every line as it passes. An inbound command's turnaround is the
time from Asterisk's reply to the IVR's next command: what a caller waits on the IVR.
SIPp at 127.0.0.2 answers the notice calls as the residents, keying 2 eight seconds after the
answer (the opening said, the notice begun): each notice ends confirmed.

Round 1 (baseline): `--inbound` pension-balance calls at once (scripted Local channels), alone.
Round 2: `--notices` notices due at once, the dialler at its cap (`--cap` calls out); once
the cap is reached, the same inbound calls again. Printed: notices per minute and the
concurrent calls out seen; inbound calls completed and the per-command p50/p99/max alone
and beside the calls out, with the ratio; serve's peak RSS and CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import func, select, update

from bench.asterisk_calls import AGI_HOST, free_agi_port, run_round
from bench.fastagi_load import PEPPER, log_problems, percentile_ms
from bench.procs import ServerProcess, child_env, free_port
from bench.sip_calls import load_people, restore_asterisk, with_carrier
from core.db import Store
from core.models import VoiceNotice, utcnow
from core.preferences import parse, save
from core.sample import SampleResident
from core.settings import Settings, SmsSettings, load_settings
from ivr.asterisk import LocalAsterisk
from sms.intake import emit, intake
from tests.real.sip_setup import sip_toml
from tests.sip_peers.sipp import CarrierUas
from tests.store.sms_support import sample_port

NOTICES = 24
CAP = 4
INBOUND = 20
KEY_AFTER_S = 8.0  # past the opening (who calls), which takes no key
ROUND_LIMIT_S = 240.0
SCRIPT_IVR = "ivr"


@dataclass
class Session:
    script: str = ""
    last_reply: float | None = None
    turnarounds: list[float] = field(default_factory=list)


class AgiRelay:
    """Asterisk's FastAGI port to serve's: passes every byte, stamps replies and commands."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.sessions: list[Session] = []
        self.recording = True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session()
        if self.recording:
            self.sessions.append(session)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pump(reader, up_writer, session, from_asterisk=True),
            self._pump(up_reader, writer, session, from_asterisk=False),
            return_exceptions=True,
        )

    async def _pump(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, session: Session, *, from_asterisk: bool
    ) -> None:
        try:
            while line := await src.readline():
                now = time.perf_counter()
                if from_asterisk:
                    if line.startswith(b"agi_network_script:"):
                        session.script = line.split(b":", 1)[1].strip().decode(errors="replace")
                    elif line.startswith(b"200 "):
                        session.last_reply = now
                elif session.last_reply is not None:
                    session.turnarounds.append(now - session.last_reply)
                    session.last_reply = None
                dst.write(line)
                await dst.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                dst.close()

    def inbound(self) -> list[float]:
        return [t for s in self.sessions if s.script == SCRIPT_IVR for t in s.turnarounds]


@dataclass
class Inbound:
    calls: int
    ok: int
    failures: list[str]
    turnarounds: list[float]

    def line(self, name: str) -> str:
        t = self.turnarounds
        return (
            f"{name:<22}{self.ok:>4}/{self.calls:<4}{len(t):>6}{percentile_ms(t, 0.5):>9.2f}"
            f"{percentile_ms(t, 0.99):>9.2f}{max(t, default=0) * 1000:>9.2f}"
        )


async def inbound_round(settings: Settings, store: Store, relay: AgiRelay, people: list[SampleResident]) -> Inbound:
    """bench/asterisk_calls.py's round of balance queries, the relay's stamps of it kept."""
    relay.sessions = []
    done = await run_round(settings, store, people)
    return Inbound(done.calls, done.ok, done.failures, relay.inbound())


def queue_notices(store: Store, zone: str, people: list[SampleResident]) -> None:
    """A pension notice by call for each, held (due in a year) until the round lets them go."""
    with store.transaction() as c:
        for r in people:
            save(c, "person", r.id_number, "*", parse("voice,sms"))
    for i, r in enumerate(people):
        payload = {"name": r.name, "period": "2026-11", "amount": r.pension_balance_fen + i}
        emit(store, "pension_credited", "person", r.id_number, payload, f"bench-notice-{i}")
    intake(store, sample_port(store), SmsSettings(), zone)
    hold(store, utcnow() + dt.timedelta(days=365))


def hold(store: Store, due: dt.datetime) -> None:
    with store.transaction() as c:
        c.execute(update(VoiceNotice).where(VoiceNotice.status == "queued").values(next_attempt_at=due))


def counts(store: Store) -> dict[str, int]:
    with store.session() as s:
        rows = s.execute(select(VoiceNotice.status, func.count()).group_by(VoiceNotice.status)).all()
    return {status: int(n) for status, n in rows}


@dataclass
class Outbound:
    notices: int
    wall_s: float = 0.0
    peak_calling: int = 0
    states: dict[str, int] = field(default_factory=dict)

    @property
    def per_minute(self) -> float:
        return self.states.get("confirmed", 0) / self.wall_s * 60 if self.wall_s else 0.0


async def watch_outbound(store: Store, result: Outbound, cap: int, cap_reached: asyncio.Event, started: float) -> None:
    """Until every notice ended: the most calls out at once; `cap_reached` once at the cap."""
    final = ("confirmed", "heard", "unanswered", "opted_out", "cancelled")
    while time.perf_counter() - started < ROUND_LIMIT_S:
        now = await asyncio.to_thread(counts, store)
        calling = now.get("calling", 0)
        result.peak_calling = max(result.peak_calling, calling)
        if calling >= min(cap, result.notices):
            cap_reached.set()
        if sum(now.get(s, 0) for s in final) >= result.notices:
            result.wall_s = time.perf_counter() - started
            result.states = now
            cap_reached.set()
            return
        await asyncio.sleep(0.2)
    result.wall_s = time.perf_counter() - started
    result.states = await asyncio.to_thread(counts, store)
    cap_reached.set()


async def loaded_round(
    settings: Settings, store: Store, relay: AgiRelay, people: list[SampleResident], notices: int, cap: int
) -> tuple[Outbound, Inbound]:
    result = Outbound(notices)
    cap_reached = asyncio.Event()
    started = time.perf_counter()
    await asyncio.to_thread(hold, store, utcnow())  # all due now
    watcher = asyncio.create_task(watch_outbound(store, result, cap, cap_reached, started))
    await asyncio.wait_for(cap_reached.wait(), ROUND_LIMIT_S)
    inbound = await inbound_round(settings, store, relay, people)
    await watcher
    return result, inbound


def serve_cpu(pid: int) -> tuple[float, int]:
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    return times.user + times.system, proc.memory_info().rss


async def run(settings: Settings, local: LocalAsterisk, tmp: Path, asterisk_port: int, args: argparse.Namespace) -> int:
    url = f"sqlite:///{tmp}/calls.db"
    people = load_people(tmp, url)
    (tmp / "hotline.toml").write_text(sip_toml(settings.sip), encoding="utf-8")
    upstream = free_port()
    env = child_env(
        HOTLINE_CONFIG=str(tmp / "hotline.toml"),
        HOTLINE_DATABASE_URL=url,
        HOTLINE_SECURITY_PIN_PEPPER=PEPPER,
        HOTLINE_AMI_SECRET=settings.ami.secret,
        HOTLINE_AMI_PORT=str(settings.ami.port),
        HOTLINE_AGI_HOST=AGI_HOST,
        HOTLINE_AGI_PORT=str(upstream),
        HOTLINE_NOTICES_MAX_CALLS=str(args.cap),
        HOTLINE_NOTICES_CALLING_HOURS="00:00,00:00",
        HOTLINE_NOTICES_POLL_S="0.2",
        HOTLINE_NOTICES_SPEECH_DIR=str(settings.notices.speech_dir.resolve()),
        HOTLINE_QUEUE_OPEN_TIME="00:00",
        HOTLINE_QUEUE_CLOSE_TIME="00:00",
        HOTLINE_QUEUE_OPEN_WEEKDAYS="1,2,3,4,5,6,7",
    )
    inbound_people, notice_people = people[: args.inbound], people[args.inbound : args.inbound + args.notices]
    store = Store(url)
    queue_notices(store, settings.queue.timezone, notice_people)
    relay = AgiRelay(upstream)
    listening = await asyncio.start_server(relay.handle, AGI_HOST, asterisk_port)
    server = ServerProcess("serve", ["-m", "hotline", "serve", "--only", "agi,ami"], env, tmp, tmp / "serve.log")
    trunk = settings.sip.outbound_trunk()
    assert trunk is not None and trunk.host  # with_carrier gave one
    uas = CarrierUas(
        tmp / "uas",
        trunk.port,
        address=trunk.host,
        mode="answer_keys",
        keys="2",
        lead_s=KEY_AFTER_S,
        lifetime_s=ROUND_LIMIT_S * 3,
        asterisk=local,
        trunk=trunk.name,
    )
    try:
        await asyncio.sleep(2.0)  # the AMI monitor logs in before the first call
        cpu0, _ = serve_cpu(server.proc.pid)
        alone = await inbound_round(settings, store, relay, inbound_people)
        cpu1, rss_alone = serve_cpu(server.proc.pid)
        outbound, loaded = await loaded_round(settings, store, relay, inbound_people, len(notice_people), args.cap)
        cpu2, rss_loaded = serve_cpu(server.proc.pid)
    finally:
        uas.kill()
        server.stop()
        listening.close()
        store.dispose()
    problems = log_problems(tmp / "serve.log")
    print(
        f"notice calls: {outbound.notices} notices, cap {args.cap}: {outbound.states.get('confirmed', 0)} confirmed "
        f"in {outbound.wall_s:.1f} s = {outbound.per_minute:.1f} notices/min "
        f"({outbound.per_minute * 60:.0f}/hour); peak {outbound.peak_calling} calls out at once; "
        f"states {dict(sorted(outbound.states.items()))}"
    )
    print(f"{'inbound IVR':<22}{'ok/calls':>9}{'cmds':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    print(alone.line("alone"))
    print(loaded.line(f"beside {args.cap} calls out"))
    ratio = percentile_ms(loaded.turnarounds, 0.99) / percentile_ms(alone.turnarounds, 0.99)
    print(f"inbound per-command p99 beside the calls out / alone: {ratio:.2f}x")
    print(
        f"serve: CPU {cpu1 - cpu0:.1f} s for the inbound round alone, {cpu2 - cpu1:.1f} s for the loaded round; "
        f"RSS {rss_alone / 2**20:.0f} MiB after the first, {rss_loaded / 2**20:.0f} MiB after the second"
    )
    for reason in sorted(set(alone.failures + loaded.failures))[:3]:
        print(f"  inbound failure: {reason}")
    for note in problems:
        print(f"  {note}")
    clean = not (alone.failures or loaded.failures or problems)
    return 0 if clean and outbound.states.get("confirmed", 0) == outbound.notices else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notices", type=int, default=NOTICES, help="notices called out in the loaded round")
    parser.add_argument("--cap", type=int, default=CAP, help="notices.max_calls: notice calls at once")
    parser.add_argument("--inbound", type=int, default=INBOUND, help="inbound calls per round")
    args = parser.parse_args(argv)
    environ = {k: v for k, v in os.environ.items() if k.startswith("HOTLINE_")}
    settings, added = with_carrier(load_settings(None, environ))
    port = free_agi_port("notice_calls", settings)
    if port is None:
        return 2
    local = LocalAsterisk(settings)
    if added:
        local.up()
    try:
        with tempfile.TemporaryDirectory(prefix="hotline-bench-notices-") as name:
            return asyncio.run(run(settings, local, Path(name), port, args))
    finally:
        if added:
            restore_asterisk()


if __name__ == "__main__":
    raise SystemExit(main())
