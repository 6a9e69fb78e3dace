"""The live call records: an AMI monitor on panoramisk's Manager.

panoramisk reconnects at a fixed interval and logs a failed connect with a stack trace;
this Manager backs off (1, 2, 4 … 30 s) and says plainly what happened. After every
login it resyncs with QueueStatus, so callers already waiting when the link came (back)
are followed too; forgets calls that ended while it was away (Status lists the live
channels); and imports Asterisk's queue_log and Master.csv, so those calls, and any that
ended while `hotline serve` was down, are recorded. It also records how callbacks' calls
out ended (ivr/outbound.py), and notice calls that were not answered (ivr/notice_calls.py).
Finished calls are written through
`ivr.records.import_facts`, the same reconciling path as `hotline calls import`: a call seen
live and later imported from queue_log is one record.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from panoramisk import Manager

from core.db import Store
from core.errors import StoreUnavailable
from core.models import utcnow
from core.settings import Settings
from ivr.agents import AgentControl
from ivr.ami_events import COMPLETE_GRACE, CallTracker, DeviceStates, Message
from ivr.asterisk_logs import CallFacts
from ivr.conference import ConferenceChange, Conferences
from ivr.conference import change_of as conference_change
from ivr.monitor import MonitorChange, MonitorEvents, Monitoring
from ivr.monitor import apply as apply_monitor
from ivr.notice_calls import outcome_of as notice_outcome_of
from ivr.notice_calls import record_dial
from ivr.outbound import outcome_of, record_outcome
from ivr.recordings import RecordingChange, RecordingTracker, apply_change
from ivr.records import ImportReport, import_facts, import_files
from ivr.screenpop import agent_off_call, agent_on_call, clear_finished_agent_calls

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0


def _plain(event: Any) -> Message:
    """panoramisk's Message (repeated headers as lists) to our str -> str message."""
    out: Message = {}
    for key in event:
        value = event[key]
        out[key] = value[0] if isinstance(value, list) else str(value)
    return out


class MonitorManager(Manager):  # type: ignore[misc]  # panoramisk ships no type hints
    def __init__(self, on_event: Callable[[Message], None], on_login: Callable[[], None], **config: Any) -> None:
        super().__init__(events="call,agent,user,dtmf", **config)
        self.where = f"{config['host']}:{config['port']}"
        self.backoff = 1.0
        self.attempt = 0
        self._handle = on_event
        self._after_login = on_login
        self.register_event("*", lambda _manager, event: self._handle(_plain(event)))

    def _retry(self, why: str) -> None:
        log.warning(
            "AMI monitor: %s at %s (attempt %d); retrying in %.0f s", why, self.where, self.attempt, self.backoff
        )
        self.loop.call_later(self.backoff, self.connect)
        self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        self.attempt += 1
        if f.exception() is not None:
            self._retry(f"cannot connect ({f.exception()})")
            return
        super().connection_made(f)

    def login(self, future: asyncio.Future[Any]) -> bool:
        ok: bool = super().login(future)
        if ok:
            log.info("AMI monitor: logged in at %s (attempt %d)", self.where, self.attempt)
            self.backoff, self.attempt = 1.0, 0
            self._after_login()
        else:
            log.error("AMI monitor: %s refused our login (ami.user/ami.secret)", self.where)
        return ok

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        pinger = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        self._retry(f"connection lost ({exc or 'closed by Asterisk'})")


class AmiMonitor:
    """Follows queued calls over AMI and writes each one when it ends."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Callable[[], dt.datetime] = utcnow,
        logs: tuple[Path | None, Path | None] = (None, None),
    ) -> None:
        self.settings = settings
        self.logs = logs  # queue_log, Master.csv: imported after every login
        self.store = store
        self.clock = clock
        self.tracker = CallTracker()
        self.recordings = RecordingTracker()
        self._recording_order = asyncio.Lock()
        self.monitor_events = MonitorEvents()  # supervisors' listen / whisper / barge (ivr/monitor.py)
        self.monitoring = Monitoring(settings, store, clock)
        self._monitor_order = asyncio.Lock()
        self.conferences = Conferences(settings, store, clock)  # three-party calls (ivr/conference.py)
        self._conference_order = asyncio.Lock()
        self.devices = DeviceStates()  # agents' phones: registered or not, for the console
        self.pending: set[asyncio.Task[None]] = set()
        self.manager = MonitorManager(
            self.on_event,
            self.on_login,
            host=settings.ami.host,
            port=settings.ami.port,
            username=settings.ami.user,
            secret=settings.ami.secret,
            ping_delay=10,
            ping_interval=10,
        )

    def on_event(self, msg: Message) -> None:
        if self.devices.feed(msg):
            return
        event = msg.get("Event")
        if event in ("AgentConnect", "AgentComplete") and msg.get("Interface"):
            # Who may see this caller's data on their console: the agent now on the call.
            if event == "AgentConnect":
                self._spawn(asyncio.to_thread(agent_on_call, self.store, msg["Interface"], msg.get("Uniqueid", "")))
            else:
                self._spawn(asyncio.to_thread(agent_off_call, self.store, msg["Interface"]))
        outcome = outcome_of(msg)
        if outcome is not None:  # a callback's call out ended (ivr/outbound.py)
            self._spawn(asyncio.to_thread(record_outcome, self.store, outcome))
        ended = notice_outcome_of(msg)
        if ended is not None:  # a notice call's dialing half ended (ivr/notice_calls.py)
            self._spawn(asyncio.to_thread(record_dial, self.store, ended, self.settings.notices))
        self._on_the_floor(msg)
        change = self.recordings.feed(msg, self.clock())
        if change is not None:
            self._spawn(self._record(change))
        done = self.tracker.feed(msg, self.clock())
        if done is not None:
            if event == "AgentComplete" and done.ended_at is not None and done.queue_exit is not None:
                late = (self.clock() - done.ended_at).total_seconds()
                if late > COMPLETE_GRACE.total_seconds():
                    log.info(
                        "AMI monitor: AgentComplete for call %s came %.1f s after its hang-up", done.uniqueid, late
                    )
            self._spawn(self._write(done))
        elif event == "Hangup" and self.tracker.closing(msg.get("Uniqueid", "")):
            # Waiting for its AgentComplete: written when that comes, or without it after the grace.
            grace = COMPLETE_GRACE.total_seconds() + 0.1
            asyncio.get_running_loop().call_later(grace, self._write_overdue)

    def _on_the_floor(self, msg: Message) -> None:
        """Supervisors listening in and three-party calls (ivr/monitor.py, ivr/conference.py)."""
        conference = conference_change(msg)
        if conference is not None:
            self._spawn(self._conference(conference))
        spying = self.monitor_events.feed(msg)
        if spying is not None:
            self._spawn(self._monitor(spying))

    def _write_overdue(self) -> None:
        for facts in self.tracker.overdue(self.clock()):
            log.warning(
                "AMI monitor: no AgentComplete for call %s %.0f s after its hang-up; talk time %s s as seen,"
                " queue_log's import completes it",
                facts.uniqueid,
                COMPLETE_GRACE.total_seconds(),
                facts.talk_s,
            )
            self._spawn(self._write(facts))

    async def _record(self, change: RecordingChange) -> None:
        # In the order the events came: a recording's agent or end never overtakes its row.
        async with self._recording_order:
            await asyncio.to_thread(apply_change, self.store, self.settings.recordings.dir, change)

    async def _monitor(self, change: MonitorChange) -> None:
        # In the order the events came: a session's mode change never overtakes its answer.
        async with self._monitor_order:
            await asyncio.to_thread(apply_monitor, self.monitoring, change)

    async def _conference(self, change: ConferenceChange) -> None:
        # In the order the events came: a leg's leave never overtakes its join.
        async with self._conference_order:
            await self.conferences.apply(change, self.settings)

    def on_login(self) -> None:
        self._spawn(self._device_states())
        self._spawn(self._resync_then_catch_up())
        self._spawn(self._restore_agents())

    async def _resync_then_catch_up(self) -> None:
        await self._resync()
        await self._prune()
        queue_log, cdr_csv = (p if p is not None and p.exists() else None for p in self.logs)
        if not (queue_log or cdr_csv):
            log.info("AMI monitor: caught up (no Asterisk records to read)")
        else:
            try:
                report = await asyncio.to_thread(
                    import_files, self.store, queue_log, cdr_csv, instance=self.settings.asterisk.instance
                )
            except OSError as exc:
                log.error("AMI monitor: cannot read Asterisk's records (%s); run `hotline calls import`", exc)
                return
            log.info("AMI monitor: caught up from Asterisk's records: %s", report.summary())

    async def _restore_agents(self) -> None:
        """After every login, the first or after Asterisk restarted, put logged-in agents
        back in their queues as the store says they were."""
        restored = await AgentControl(self.settings, self.store, targets=[self.settings]).restore()
        log.info("AMI monitor: %d logged-in agents restored to their queues", restored)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(work))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    @staticmethod
    async def _guard(work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except StoreUnavailable as exc:
            # queue_log keeps what happened: `hotline calls import` completes it later.
            log.error("AMI monitor: store unavailable, an update waits for the next import: %s", exc)
        except asyncio.CancelledError:
            raise
        except Exception:  # a fault of ours in one event's update: said now, not at exit
            # The same path as an outage: the call's record is completed from queue_log at
            # the monitor's next login or by `hotline calls import`; the monitor goes on.
            log.exception("AMI monitor: an update failed; queue_log's import will complete the call")

    async def _device_states(self) -> None:
        """DeviceStateList (write class call) lists every device's state as DeviceStateChange
        events: the phones that registered or went away while the link was down."""
        replies = await self.manager.send_action({"Action": "DeviceStateList"}, as_list=True)
        fresh = DeviceStates()
        for reply in replies or []:
            fresh.feed(_plain(reply))
        self.devices.states.update(fresh.states)
        log.info("AMI monitor: %d PJSIP device states read", len(fresh.states))

    def phone_registered(self, interface: str) -> bool | None:
        """For the console: whether the agent's phone (`PJSIP/<endpoint>`) is registered."""
        return self.devices.phone_registered(interface)

    async def _resync(self) -> None:
        """QueueStatus lists the callers waiting now; follow the ones we did not know."""
        replies = await self.manager.send_action({"Action": "QueueStatus"}, as_list=True)
        now = self.clock()
        joined = 0
        for reply in replies or []:
            msg = _plain(reply)
            if msg.get("Event") == "QueueEntry" and msg.get("Uniqueid") not in self.tracker.calls:
                wait = int(msg.get("Wait", "0") or 0)
                self.tracker.calls[msg["Uniqueid"]] = CallFacts(
                    msg["Uniqueid"],
                    started_at=now - dt.timedelta(seconds=wait),
                    queue=msg.get("Queue"),
                    queue_entered_at=now - dt.timedelta(seconds=wait),
                    disposition="timeout",
                    caller=msg.get("CallerIDNum") or None,
                )
                joined += 1
        log.info("AMI monitor: resynced, %d callers waiting now (%d new to us)", len(self.tracker.calls), joined)

    async def _prune(self) -> None:
        """Forget calls that ended while the link was down (Status lists the live channels),
        and agents' calls that are over (QueueStatus says who is in a call): queue_log
        completes those records, and the wallboard must not show them as waiting."""
        live = {
            msg.get("Uniqueid")
            for msg in map(_plain, await self.manager.send_action({"Action": "Status"}, as_list=True) or [])
            if msg.get("Event") == "Status"
        }
        gone = [uid for uid in self.tracker.calls if uid not in live and not self.tracker.closing(uid)]
        for uid in gone:
            self.tracker.forget(uid)
        members = await self.manager.send_action({"Action": "QueueStatus"}, as_list=True)
        busy = {
            msg.get("StateInterface", "")
            for msg in map(_plain, members or [])
            if msg.get("Event") == "QueueMember" and msg.get("InCall") == "1"
        }
        cleared = await asyncio.to_thread(clear_finished_agent_calls, self.store, busy)
        if gone or cleared:
            log.info("AMI monitor: %d calls ended and %d agents hung up while we were away", len(gone), cleared)

    async def _write(self, facts: CallFacts) -> None:
        await asyncio.to_thread(import_facts, self.store, {facts.uniqueid: facts}, ImportReport())

    def waiting(self) -> list[tuple[str, dt.datetime]]:
        """The callers waiting in a queue now (queue, since when), for the wallboard."""
        return self.tracker.waiting()

    def start(self) -> None:
        self.manager.connect()

    async def stop(self) -> None:
        self.manager.close()
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)


class PhoneStates(Protocol):
    def phone_registered(self, interface: str) -> bool | None: ...


class Monitors:
    """One AmiMonitor per Asterisk node of a cluster, seen by the console as one: the
    callers waiting on every node, and a phone registered as `phones` says (the edge's
    registrations, ivr.cluster.EdgePhones), or wherever one node says so without it."""

    def __init__(self, monitors: list[AmiMonitor], phones: PhoneStates | None = None) -> None:
        self.monitors = monitors
        self.phones = phones

    def start(self) -> None:
        for monitor in self.monitors:
            monitor.start()

    async def stop(self) -> None:
        for monitor in self.monitors:
            await monitor.stop()

    def waiting(self) -> list[tuple[str, dt.datetime]]:
        return sorted((w for m in self.monitors for w in m.waiting()), key=lambda w: w[1])

    def phone_registered(self, interface: str) -> bool | None:
        if self.phones is not None:
            return self.phones.phone_registered(interface)
        answers = [m.phone_registered(interface) for m in self.monitors]
        if any(answers):
            return True
        return False if any(a is False for a in answers) else None
