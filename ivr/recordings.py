"""Agent calls' recordings: their rows, from the AMI events of the dialplan's MixMonitor,
and the retention sweep that deletes old files and keeps the rows (voice messages' files
too, once their work order is closed).

The dialplan (CTX_RECORD_AGENT, Queue()'s gosub on the agent who answered) starts
MixMonitor and raises the UserEvent HotlineRecording from the agent's channel (Uniqueid:
that channel). AgentConnect names the agent (its DestUniqueid is the agent's channel);
MixMonitorStop, or the agent channel's Hangup, whichever comes first, ends the recording:
the file's WAV header then gives its duration (wav_info counts the bytes there when the
header's data size was not yet updated). A stop missed while the AMI link was down is
completed by the sweep.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core import audit
from core.db import Store
from core.models import Recording, VoiceMessage, WorkOrder, utcnow
from core.recordings import NotAWav, RecordingPathRefused, resolve, wav_info
from ivr.ami_events import Message
from ivr.dialplan import USEREVENT_RECORDING
from ivr.records import log_call_id

log = logging.getLogger(__name__)
CALLS_SUBDIR = "calls"


def recording_path(day: dt.date) -> str:
    """A new recording's path relative to recordings.dir: calls/<day>/<random uuid>.wav."""
    return f"{CALLS_SUBDIR}/{day.isoformat()}/{uuid.uuid4()}.wav"


@dataclass(frozen=True)
class RecordingStarted:
    channel: str  # the agent channel's uniqueid
    call_id: str
    path: str
    agent: str | None
    at: dt.datetime


@dataclass(frozen=True)
class RecordingAgent:
    path: str
    agent: str


@dataclass(frozen=True)
class RecordingEnded:
    path: str


RecordingChange = RecordingStarted | RecordingAgent | RecordingEnded


@dataclass
class RecordingTracker:
    """From AMI events to recording changes; no I/O. Keyed by the agent channel's uniqueid."""

    active: dict[str, str] = field(default_factory=dict)  # agent channel -> path
    agents: dict[str, str] = field(default_factory=dict)  # agent channel -> member name (AgentConnect first)

    def feed(self, msg: Message, now: dt.datetime) -> RecordingChange | None:
        event = msg.get("Event")
        uid = msg.get("Uniqueid", "")
        if event == "UserEvent" and msg.get("UserEvent") == USEREVENT_RECORDING and msg.get("Recording"):
            path = msg["Recording"]
            self.active[uid] = path
            # No call id: the FastAGI server was down when the caller came, and the call's
            # record will carry the id derived from the caller's uniqueid (Linkedid).
            call_id = msg.get("CallId") or log_call_id(msg.get("Linkedid", uid))
            return RecordingStarted(uid, call_id, path, self.agents.pop(uid, None), now)
        if event == "AgentConnect" and msg.get("MemberName"):
            dest = msg.get("DestUniqueid", "")
            if dest in self.active:
                return RecordingAgent(self.active[dest], msg["MemberName"])
            if dest:
                self.agents[dest] = msg["MemberName"]
            return None
        if event in ("MixMonitorStop", "Hangup"):
            self.agents.pop(uid, None)
            ended = self.active.pop(uid, None)
            return RecordingEnded(ended) if ended is not None else None
        return None


def apply_change(store: Store, base: Path, change: RecordingChange) -> None:
    """Write one change to the recordings table (run in a thread)."""
    if isinstance(change, RecordingStarted):
        try:
            with store.session() as s:
                s.add(Recording(call_id=change.call_id, agent=change.agent, path=change.path, started_at=change.at))
        except IntegrityError:  # the same recording announced twice (a resent event)
            log.info("call %s: recording %s already recorded", change.call_id, change.path)
        return
    if isinstance(change, RecordingAgent):
        with store.session() as s:
            s.execute(update(Recording).where(Recording.path == change.path).values(agent=change.agent))
        return
    finish(store, base, change.path)


def finish(store: Store, base: Path, path: str) -> bool:
    """Read the finished file's size and duration into its row; False when it is not there."""
    try:
        file = resolve(base, path)
        info, size = wav_info(file), file.stat().st_size
    except (OSError, NotAWav, RecordingPathRefused) as exc:
        # MixMonitor could not write it (disk full, directory not writable): the call went on
        # without a recording; the row stays without a duration and the sweep reports it.
        log.warning("recording %s: no usable file (%s)", path, exc)
        return False
    with store.session() as s:
        s.execute(
            update(Recording).where(Recording.path == path).values(duration_s=round(info.duration_s, 2), size=size)
        )
    return True


# Who deleted a voice message's file, in the audit log (channel: recording).
SWEEP_ACTOR = "retention"
# What the sweep deletes of voice messages: only those whose order is closed (an open,
# answered or returned order keeps its evidence however old; a message not yet an order too).
CLOSED = "closed"


@dataclass
class SweepReport:
    deleted: int = 0
    missing: list[str] = field(default_factory=list)  # expired rows whose file was already gone
    failed: list[str] = field(default_factory=list)  # files that could not be deleted (retried)
    finished: int = 0  # rows completed from their file late (the stop event was missed)
    messages_deleted: int = 0  # voice messages' files (their orders closed)

    def __bool__(self) -> bool:
        return bool(self.deleted or self.missing or self.failed or self.finished or self.messages_deleted)

    def summary(self) -> str:
        return (
            f"{self.deleted} deleted, {len(self.missing)} already missing, "
            f"{len(self.failed)} not deletable, {self.finished} completed, "
            f"{self.messages_deleted} voice messages deleted"
        )


def sweep(store: Store, base: Path, retention_days: int, now: dt.datetime | None = None) -> SweepReport:
    """Delete the files of recordings older than `retention_days`, and of voice messages as
    old whose work order is closed; keep each row with when and why. A file already gone is
    reported (and its row marked), never a crash."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=retention_days)
    report = SweepReport()
    with store.session() as s:
        expired = s.execute(
            select(Recording.id, Recording.path).where(Recording.deleted_at.is_(None), Recording.started_at < cutoff)
        ).all()
        unfinished = s.scalars(
            select(Recording.path).where(
                Recording.deleted_at.is_(None), Recording.duration_s.is_(None), Recording.started_at >= cutoff
            )
        ).all()
    for row_id, path in expired:
        reason = _delete(base, path, retention_days, report)
        if reason is not None:
            with store.session() as s:
                s.execute(update(Recording).where(Recording.id == row_id).values(deleted_at=now, delete_reason=reason))
    # A row whose stop event was missed (AMI link down): completed once its file is older than
    # a minute, so a recording still being written is left alone.
    for path in unfinished:
        try:
            old = (now.timestamp() - resolve(base, path).stat().st_mtime) > 60
        except (OSError, RecordingPathRefused):
            continue
        if old and finish(store, base, path):
            report.finished += 1
    sweep_voice_messages(store, base, retention_days, now, report)
    return report


def sweep_voice_messages(store: Store, base: Path, retention_days: int, now: dt.datetime, report: SweepReport) -> None:
    """Delete the files of voice messages left before the cutoff whose work order is closed;
    keep each row with when and why, and audit the deletion (the resident's message is gone)."""
    cutoff = now - dt.timedelta(days=retention_days)
    with store.session() as s:
        expired = s.execute(
            select(VoiceMessage.id, VoiceMessage.recording, VoiceMessage.call_id, VoiceMessage.resident_id)
            .join(WorkOrder, WorkOrder.id == VoiceMessage.order_id)
            .where(VoiceMessage.deleted_at.is_(None), VoiceMessage.created_at < cutoff, WorkOrder.status == CLOSED)
            .order_by(VoiceMessage.id)
        ).all()
    for message in expired:
        outcome, reason = _remove(base, message.recording, retention_days)
        if reason is None:
            report.failed.append(message.recording)
            continue
        if outcome == "missing":
            report.missing.append(message.recording)
        else:
            report.messages_deleted += 1
        with store.transaction() as c:
            audit.lock_chain(c)  # before the row's update: the chain's lock comes first
            marked = c.execute(
                update(VoiceMessage)
                .where(VoiceMessage.id == message.id, VoiceMessage.deleted_at.is_(None))
                .values(deleted_at=now, delete_reason=reason)
            )
            if marked.rowcount == 1:  # another sweep at once marked it first: one entry
                audit.record(
                    c,
                    actor=SWEEP_ACTOR,
                    action="delete:voice_message",
                    resident_id=message.resident_id,
                    call_id=message.call_id,
                    detail=f"voice message {message.id}: {reason}",
                )


def _delete(base: Path, path: str, retention_days: int, report: SweepReport) -> str | None:
    """Delete one expired recording's file: the reason to record, or None to retry later."""
    outcome, reason = _remove(base, path, retention_days)
    if outcome == "deleted":
        report.deleted += 1
    elif outcome == "missing":
        report.missing.append(path)
    else:
        report.failed.append(path)
    return reason


def _remove(base: Path, path: str, retention_days: int) -> tuple[str, str | None]:
    """Delete one expired file: deleted, missing (already gone) or failed (None: retried at
    the next sweep), with the reason to record."""
    try:
        resolve(base, path).unlink()
    except (FileNotFoundError, RecordingPathRefused):
        log.warning("recording %s: past retention, but its file was already missing", path)
        return "missing", "missing: the file was gone when retention came"
    except OSError as exc:
        log.error("recording %s: cannot delete its file (%s); retried at the next sweep", path, exc)
        return "failed", None
    return "deleted", f"retention: older than {retention_days} days"
