"""`hotline serve`: which tasks run, signals, and an orderly shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import functools
import gc
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import audit_log, audit_seal, metrics, stage_times
from core.business import BusinessPort
from core.cluster_settings import ClusterNode
from core.db import Store
from core.errors import AuditTailBroken, StoreUnavailable
from core.health import Health
from core.notices import voice_unavailable
from core.settings import Settings
from hotline.errors import AgiUnavailable, WebUnavailable, WorkerFailed
from hotline.supervise import Supervisor
from hotline.wiring import business_port, ivr_services, open_store
from ivr import dialplan, recordings
from ivr.ami_monitor import AmiMonitor, Monitors
from ivr.asterisk import LocalAsterisk, ami_login
from ivr.cluster_config import ami_targets
from ivr.engine import Start
from ivr.errors import AmiError, AsteriskError
from ivr.fastagi import AgiChannel, AgiVoice, FastAgiServer, Route
from ivr.notice_calls import NoticeDialler
from ivr.notice_flow import notice_route
from ivr.queue_entry import LeaveMessage, queue_entry_route
from ivr.session import CallInfo, IvrServices, IvrSession
from ivr.survey import survey_route
from ivr.trail import next_seq_of, transferred_order

if TYPE_CHECKING:
    # Imported where they start (`_start_web`, `_start_sms`, ...): a FastAGI worker, and a
    # serve with `--only agi`, never load the console, the SMS gateway, casework or the
    # reports (aiohttp, jinja2, twilio and theirs: about 40 MB of each process's RSS).
    from aiohttp import web

    from sms.service import SmsService

log = logging.getLogger(__name__)
COMPONENTS = ("agi", "ami", "web", "sms")
# The whole shutdown, whatever the peers do (an SMSC that never answers, a stuck call);
# calls in progress get most of it to finish.
SHUTDOWN_DEADLINE_S = 10.0
SHUTDOWN_GRACE_S = 7.0
# After the deadline the remaining tasks are cancelled; if the process is still here this
# much later (a thread that does not return), it exits regardless.
SHUTDOWN_FORCE_AFTER_S = 3.0
QUERY_THREADS = 8


def ivr_route(services: IvrServices) -> Route:
    """The FastAGI route of the 12333 menu: one IvrSession per connection."""

    async def route(channel: AgiChannel) -> None:
        env = channel.env
        info = CallInfo(
            uniqueid=env.uniqueid,
            channel=env.channel,
            caller=env.callerid if env.callerid not in ("", "unknown") else None,
            order_12345=transferred_order(env.args[0] if env.args else ""),
        )
        await IvrSession(services, AgiVoice(channel), info).run()

    return route


def message_runner(services: IvrServices, store: Store, node: str) -> LeaveMessage:
    """Leave a message from the queue's offer: the menu's message node on the same channel,
    continuing the trail of the call the IVR recorded (a fresh record if it never reached
    the store)."""

    async def run(channel: AgiChannel, call_id: str, reason: str, lang: str) -> None:
        env = channel.env
        info = CallInfo(
            uniqueid=env.uniqueid,
            channel=env.channel,
            caller=env.callerid if env.callerid not in ("", "unknown") else None,
        )
        try:
            next_seq = await asyncio.to_thread(next_seq_of, store, call_id)
        except StoreUnavailable as exc:
            # No message could be stored either: the caller stays on the way to the queue.
            log.error("call %s: no voice message while the store is unavailable (%s); queueing", call_id, exc)
            return
        start = Start(language=lang, node=node, reason=reason)
        await IvrSession(services, AgiVoice(channel), info, call_id, start=start, next_seq=next_seq).run()

    return run


async def watch_asterisk(settings: Settings, stop: asyncio.Event) -> None:
    """Log clearly whether Asterisk's AMI answers, retrying with backoff until it does."""
    delay = 1.0
    attempt = 0
    while not stop.is_set():
        attempt += 1
        try:
            await asyncio.to_thread(
                ami_login, settings.ami.host, settings.ami.port, settings.ami.user, settings.ami.secret
            )
            log.info("Asterisk AMI at %s:%d answers (attempt %d)", settings.ami.host, settings.ami.port, attempt)
            return
        except (AsteriskError, AmiError, OSError) as exc:
            log.warning(
                "Asterisk AMI at %s:%d not ready (attempt %d: %s); retrying in %.0f s",
                settings.ami.host,
                settings.ami.port,
                attempt,
                exc,
                delay,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 30.0)


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_ENV = "SERVE_PARENT_PID"  # not HOTLINE_*: those are settings, and unknown ones are refused


class Workers:
    """The extra FastAGI processes of `agi.workers > 1`: each runs `hotline serve --worker`
    on the same port (SO_REUSEPORT) and stops when we do."""

    def __init__(self, count: int, config: Path | None) -> None:
        argv = [sys.executable, "-m", "hotline"]
        if config is not None:
            argv += ["--config", str(config)]
        env = {**os.environ, PARENT_ENV: str(os.getpid())}  # checked by the worker (_die_with_parent)
        self.procs = [
            subprocess.Popen([*argv, "serve", "--only", "agi", "--worker"], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(count)
        ]

    def wait_ready(self) -> None:
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "ready" not in line:
                self.stop()
                raise WorkerFailed(f"a FastAGI worker did not start (exit code {proc.poll()})")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(SHUTDOWN_DEADLINE_S + SHUTDOWN_FORCE_AFTER_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            metrics.process_gone(proc.pid)
            if proc.stdout is not None:
                proc.stdout.close()


@dataclass
class Running:
    """What `serve` started, for the orderly shutdown."""

    server: asyncio.Server | None = None
    agi: FastAgiServer | None = None
    workers: Workers | None = None
    monitor: AmiMonitor | Monitors | None = None
    web: web.AppRunner | None = None
    sms: SmsService | None = None
    supervisor: Supervisor | None = None
    health: Health = field(default_factory=Health)
    stage: str = "start"  # the shutdown's step now, for the log line if it overruns


async def _start_agi(
    settings: Settings, store: Store, port: BusinessPort, running: Running, *, worker: bool, config: Path | None
) -> None:
    # The callers' queries have threads of their own: a console under load cannot take them.
    queries = ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="ivr")
    services = ivr_services(settings, store, port, health=running.health, executor=queries, threads=QUERY_THREADS)
    agi = FastAgiServer(
        settings.agi.allowed_peers,
        settings.agi.header_timeout_s,
        settings.agi.command_timeout_s,
        settings.agi.max_sessions,
    )
    agi.add_route(dialplan.AGI_SCRIPT_IVR, ivr_route(services))
    agi.add_route(dialplan.AGI_SCRIPT_SURVEY, survey_route(store))
    agi.add_route(dialplan.AGI_SCRIPT_NOTICE, notice_route(store, settings.notices))
    node = services.menu.first_of_type("message")
    leave = message_runner(services, store, node) if node is not None else None
    agi.add_route(
        dialplan.AGI_SCRIPT_QUEUE_ENTRY,
        queue_entry_route(store, settings.queue, leave, settings.destinations, services.callers),
    )
    shared = worker or settings.agi.workers > 1
    running.agi = agi
    try:
        running.server = await agi.serve(settings.agi.host, settings.agi.port, reuse_port=shared)
    except OSError as exc:
        where = f"{settings.agi.host}:{settings.agi.port}"
        raise AgiUnavailable(f"FastAGI cannot listen on {where}: {exc.strerror} (another serve? agi.port)") from exc
    running.health.up("agi")
    processes = 1 if worker else settings.agi.workers
    if processes > 1:
        running.workers = Workers(processes - 1, config)
        await asyncio.to_thread(running.workers.wait_ready)
    log.info(
        "FastAGI listening on %s:%d (script %r, %d process%s)",
        settings.agi.host,
        settings.agi.port,
        dialplan.AGI_SCRIPT_IVR,
        processes,
        "" if processes == 1 else "es",
    )


def asterisk_records(settings: Settings, node: ClusterNode | None = None) -> tuple[Path | None, Path | None]:
    """queue_log and Master.csv for the monitor's catch-up: as set, else the local Asterisk's
    (or the local cluster node's)."""
    if settings.ami.queue_log or settings.ami.cdr_csv:
        return settings.ami.queue_log, settings.ami.cdr_csv
    local = LocalAsterisk(settings, node=node)
    if node is not None:
        return (local.queue_log, local.cdr_csv) if local.queue_log.parent.is_dir() else (None, None)
    if settings.ami.host in ("127.0.0.1", "localhost") and local.queue_log.parent.is_dir():
        return local.queue_log, local.cdr_csv
    return None, None


async def _start_web(settings: Settings, store: Store, port: BusinessPort, running: Running) -> None:
    from aiohttp import web

    from console.app import ConsoleDeps, make_app
    from ivr.agents import AgentControl

    d = ConsoleDeps(
        settings=settings,
        store=store,
        port=port,
        agents=AgentControl(settings, store),
        callers=running.monitor,
        health=running.health,
        phones=running.monitor,
    )
    running.web = web.AppRunner(make_app(d), access_log=None)
    await running.web.setup()
    # Live pages hold their event streams open: give them 2 s, not aiohttp's 60, at shutdown.
    site = web.TCPSite(running.web, settings.web.host, settings.web.port, shutdown_timeout=2.0)
    try:
        await site.start()
    except OSError as exc:
        await running.web.cleanup()
        raise WebUnavailable(f"web console cannot listen on {settings.web.host}:{settings.web.port}: {exc}") from exc
    running.health.up("web")
    log.info("web console on http://%s:%d/", settings.web.host, settings.web.port)


SEAL_EVERY_S = 600.0
SEAL_DAYS = 35  # a month's reports stay quick; older hours are summed by the first report asking


async def seal_report_hours(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    """Sum the hours that closed lately into the report tables, every ten minutes, so a
    supervisor's report of the last month never waits for it (reports.sums.seal)."""
    from reports import sums

    while not stop.is_set():
        now = dt.datetime.now(dt.UTC)
        try:
            sealed = await asyncio.to_thread(
                sums.seal_all, store, now - dt.timedelta(days=SEAL_DAYS), now, settings.queue.service_level_s, now
            )
            if sealed:
                log.info("reports: %d closed hours summed", sealed)
        except StoreUnavailable as exc:
            log.warning("reports: closed hours not summed now (%s); next try in %.0f s", exc, SEAL_EVERY_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SEAL_EVERY_S)


async def sweep_recordings(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    """Delete recordings past recordings.retention_days (and voice messages as old whose
    order is closed), keeping their rows with the reason, every recordings.sweep_interval_s
    (ivr.recordings.sweep)."""
    rec = settings.recordings
    while not stop.is_set():
        try:
            report = await asyncio.to_thread(recordings.sweep, store, rec.dir, rec.retention_days)
            if report:
                log.info("recordings: retention sweep: %s", report.summary())
        except StoreUnavailable as exc:
            log.warning("recordings: no retention sweep now (%s); next in %.0f s", exc, rec.sweep_interval_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rec.sweep_interval_s)


AUDIT_HEAD_EVERY_S = 3600.0


async def log_audit_head(
    store: Store, stop: asyncio.Event, every_s: float = AUDIT_HEAD_EVERY_S, key: bytes | None = None
) -> None:
    """The audit chain's head into the log at start and then hourly when it moved: a copy
    outside the database, for `hotline audit verify --expect-head` to detect rows deleted
    from the end or a chain rebuilt (core.audit_log.Head). With `key` (security.audit_key)
    the head is sealed too (core.audit_seal), and the line carries the seal's MAC."""
    last: audit_log.Head | None = None
    while not stop.is_set():
        try:
            now = await asyncio.to_thread(audit_log.head, store)
            if now != last:
                shown = now
                if key is not None:
                    seal = await asyncio.to_thread(audit_seal.seal_head, store, key)
                    shown = seal.head if seal is not None else now
                log.info("audit: chain head %s (hotline audit verify --expect-head %s)", now, shown)
                metrics.audit_tail(True)
                last = now
        except StoreUnavailable as exc:
            log.warning("audit: chain head not read now (%s); next in %.0f s", exc, every_s)
        except AuditTailBroken as exc:
            log.error("audit: the chain's head NOT sealed: %s; run `hotline audit verify`", exc)
            metrics.audit_tail(False)
            last = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def audit_key(settings: Settings) -> bytes | None:
    """The chain's sealing key, or None, said loudly outside the demo: then a copy of the
    database can be rebuilt into a chain that verifies."""
    key = settings.security.audit_seal_key()
    if key is None and not settings.security.demo:
        log.warning(
            "audit: security.audit_key (or security.audit_key_file) is NOT SET: the audit chain's head is "
            "logged but not sealed, and whoever copies the database can rebuild a chain that verifies"
        )
    return key


async def _shut_down(running: Running) -> None:
    """Stop taking calls, give calls in progress a grace period, then stop the rest."""
    running.stage = "FastAGI calls in progress"
    if running.server is not None:
        running.server.close()
    if running.agi is not None and running.agi.sessions:
        log.info("waiting up to %.0f s for %d calls in progress", SHUTDOWN_GRACE_S, len(running.agi.sessions))
        _, pending = await asyncio.wait(set(running.agi.sessions), timeout=SHUTDOWN_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    running.stage = "FastAGI workers"
    if running.workers is not None:
        await asyncio.to_thread(running.workers.stop)
    running.stage = "web console"
    if running.web is not None:
        await running.web.cleanup()
    running.stage = "SMS gateway"
    if running.sms is not None:
        await running.sms.stop()
    running.stage = "AMI monitor"
    if running.monitor is not None:
        await running.monitor.stop()
    running.stage = "supervised tasks"
    if running.supervisor is not None:
        for task in running.supervisor.tasks:
            task.cancel()
        await asyncio.gather(*running.supervisor.tasks, return_exceptions=True)


async def shut_down_within(running: Running, deadline_s: float) -> bool:
    """`_shut_down`, bounded: past `deadline_s` whatever has not stopped is named in the
    log and cancelled. False if the deadline was overrun."""
    shutdown = asyncio.create_task(_shut_down(running), name="shutdown")
    done, _ = await asyncio.wait({shutdown}, timeout=deadline_s)
    if shutdown in done:
        shutdown.result()
        return True
    me = asyncio.current_task()
    left = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    log.error(
        "shutdown: not done after %.0f s, stuck at the %s; cancelling what did not stop: %s",
        deadline_s,
        running.stage,
        _task_names(t for t in left if t is not shutdown),
    )
    for task in left:
        task.cancel()
    _, still = await asyncio.wait(left, timeout=1.0) if left else (set(), set())
    if still:
        log.error("shutdown: still running after cancellation: %s", _task_names(still))
    return False


def _task_names(tasks: Iterable[asyncio.Task[Any]]) -> str:
    """Named tasks by name; the unnamed (`Task-12`) by their coroutine, counted."""
    counts = Counter(
        getattr(t.get_coro(), "__qualname__", "?") if t.get_name().startswith("Task-") else t.get_name() for t in tasks
    )
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in sorted(counts.items())) or "-"


def _exit_regardless(after_s: float) -> threading.Timer:
    """The last resort of a bounded shutdown: a thread (a query, a worker's wait) that does
    not return keeps the interpreter from exiting, so exit without waiting for it."""

    def force() -> None:
        alive = sorted(t.name for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon)
        log.critical("shutdown: still here %.0f s after the deadline (threads: %s); exiting now", after_s, alive)
        logging.shutdown()
        os._exit(1)

    timer = threading.Timer(after_s, force)
    timer.daemon = True
    timer.start()
    return timer


def _start_ami(settings: Settings, store: Store, running: Running, stop: asyncio.Event, *, console: bool) -> None:
    """`console`: the web console runs here too, and asks which phones are registered."""
    assert running.supervisor is not None
    supervisor = running.supervisor
    monitors = []
    # One AMI link per Asterisk: the one, or each node of the cluster (cluster.enabled).
    for node, target in ami_targets(settings):
        name = "ami-watch" if node is None else f"ami-watch-{node.name}"
        supervisor.spawn(name, functools.partial(watch_asterisk, target, stop))
        monitors.append(AmiMonitor(target, store, logs=asterisk_records(target, node)))
    if settings.cluster.enabled and console:
        # Registered or not is the edge's to say: the nodes ring every phone through it.
        from ivr.cluster import Cluster, EdgePhones

        edge_phones = EdgePhones(Cluster(settings))
        supervisor.spawn("edge-phones", lambda: edge_phones.run(stop))
        running.monitor = Monitors(monitors, phones=edge_phones)
    else:
        running.monitor = monitors[0] if len(monitors) == 1 else Monitors(monitors)
    running.monitor.start()
    running.supervisor.spawn("recordings-sweep", lambda: sweep_recordings(settings, store, stop))
    why_not = voice_unavailable(settings)
    if why_not:
        log.info("notice calls: none placed (%s); notices chosen for a call go by the next channel", why_not)
    else:
        running.supervisor.spawn("voice-notices", lambda: NoticeDialler(settings, store, stop).run())


async def serve(
    settings: Settings, only: tuple[str, ...] = COMPONENTS, *, worker: bool = False, config: Path | None = None
) -> None:
    """Run the chosen components until SIGINT/SIGTERM. A `worker` serves FastAGI only and
    leaves migrations, the Asterisk watcher and further workers to its parent."""
    # Store work runs in threads: a caller's query hops loop -> worker -> group writer and
    # back. With the default 5 ms GIL switch interval each hop could wait 5 ms for the
    # GIL; 0.5 ms keeps a query's hops from adding up to tens of milliseconds of silence.
    sys.setswitchinterval(0.0005)
    if worker:
        _die_with_parent()
    made_metrics_dir = None if worker else _metrics_dir()
    metrics.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Query threads spend most of their time waiting (on SQLite, on scrypt outside the GIL,
    # on the group commit of their audit entry), so many more of them than cores pay off.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=QUERY_THREADS, thread_name_prefix="query"))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if "agi" in only:
        settings.require_secrets("security.pin_pepper")
    if "ami" in only:
        settings.require_strong_ami_secret()
    store = open_store(settings, migrate=not worker)
    port = business_port(settings, store)  # one door to the business system for every component
    running = Running()
    running.supervisor = Supervisor(running.health, stop)
    if "agi" in only:
        await _start_agi(settings, store, port, running, worker=worker, config=config)
    if "ami" in only and not worker:
        _start_ami(settings, store, running, stop, console="web" in only)
    if "web" in only and not worker:
        await _start_web(settings, store, port, running)
        running.supervisor.spawn("report-sums", lambda: seal_report_hours(settings, store, stop))
        # Casework beside the console that works the orders: voice messages become orders,
        # overdue ones are escalated, follow-ups go out (cases/tasks.py).
        from cases.tasks import casework_loop

        running.supervisor.spawn("casework", lambda: casework_loop(store, settings, stop))
        if settings.hotline12345.endpoints:  # tell 12345 of its orders (cases/sender12345.py)
            from cases.sender12345 import Sender12345

            sender12345 = Sender12345(settings.hotline12345, store, worker=f"{socket.gethostname()}:{os.getpid()}")
            running.supervisor.spawn("12345-outbox", lambda: sender12345.run(stop))
        seal_key = audit_key(settings)
        running.supervisor.spawn("audit-head", lambda: log_audit_head(store, stop, key=seal_key))
    if "sms" in only and not worker:
        from sms.service import SmsService

        running.sms = SmsService(settings, store, port, running.health)
        await running.sms.start(running.supervisor.spawn)
    # What start-up made (modules, settings, the store, compiled statements) lives as long
    # as the process: out of the collector's sight from now on, once its garbage is gone.
    # Each full collection walked it all with the event loop stalled: 90-120 ms every 3 s
    # while the SMS gateway was busy, the slowest instant reminders' delay.
    gc.collect()
    gc.freeze()
    stage_times.watch_gc()
    print("hotline serve: ready", flush=True)
    await stop.wait()
    log.info("shutting down (at most %.0f s)", SHUTDOWN_DEADLINE_S)
    _exit_regardless(SHUTDOWN_DEADLINE_S + SHUTDOWN_FORCE_AFTER_S)
    if await shut_down_within(running, SHUTDOWN_DEADLINE_S):
        log.info("shut down")
    store.dispose()
    stage_times.dump()
    if made_metrics_dir is not None:
        shutil.rmtree(made_metrics_dir, ignore_errors=True)


def _die_with_parent() -> None:
    """A FastAGI worker ends when the serve that started it does, however that one ended:
    a parent killed outright (SIGKILL, the OOM killer) left its workers running on the shared
    port (SO_REUSEPORT), taking a share of the next serve's calls with the old code and
    settings. Linux's PR_SET_PDEATHSIG (prctl(2)) sends this process SIGTERM, its orderly
    shutdown, when the parent goes; a parent already gone before that is checked here."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("FastAGI worker: prctl(PR_SET_PDEATHSIG) failed (errno %d)", ctypes.get_errno())
    started_by = os.environ.get(PARENT_ENV, "")
    if started_by and os.getppid() != int(started_by):
        raise WorkerFailed("the serve that started this FastAGI worker is gone")


def _metrics_dir() -> Path | None:
    """The directory where this serve and its FastAGI workers keep their metrics
    (core.metrics): the one named by PROMETHEUS_MULTIPROC_DIR, emptied of an earlier run's
    files, or a new temporary one, returned to be removed at the end."""
    given = metrics.multiproc_dir()
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        for stale in given.glob("*.db"):  # a dead run's values would be added to ours
            stale.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="hotline-metrics-"))
    os.environ[metrics.MULTIPROC_ENV] = str(made)  # inherited by the workers
    return made
