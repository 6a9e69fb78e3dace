"""Voice messages (留言) on disk and in the store: where a take is recorded, how long it is,
and the `voice_messages` row the `cases` room turns into a work order.

Asterisk writes the take under `recordings.asterisk_dir` (RECORD FILE, res_agi); the
platform sees the same files under `recordings.dir` (for the local Asterisk, a bind mount
made by `hotline asterisk up`). File names are random ids: no caller data in a path.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
import wave
import zoneinfo
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from core import audit
from core.business import BusinessPort
from core.db import Store
from core.errors import StoreUnavailable
from core.masking import mask_id, mask_numbers
from core.models import VoiceMessage, utcnow
from core.phones import phone_number
from core.settings import RecordingSettings
from ivr.engine import SaveMessage
from ivr.errors import MessageNotSaved

log = logging.getLogger(__name__)
SUBDIR = "messages"
FORMAT = "wav"  # RECORD FILE's format argument: Asterisk's format_wav, 8 kHz mono 16-bit
# A take shorter than this holds no message: a line that sent no audio (0 s), or a caller
# who hung up at the beep.
EMPTY_TAKE_S = 0.5


@dataclass(frozen=True)
class Take:
    relative: str  # messages/<date>/<uuid>.wav, relative to recordings.dir (the row's `recording`)
    asterisk_path: str  # the same file as Asterisk names it, without the extension RECORD FILE adds


@dataclass(frozen=True)
class Saved:
    message_id: int | None  # None: nothing was recorded, so no row was written
    duration_s: int
    named_resident: bool


def wav_duration_s(path: Path) -> float:
    """Seconds of audio by the WAV header (frames / rate); raises OSError or wave.Error."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


class VoiceMessages:
    """Takes on disk and rows in the store, for the IVR session."""

    def __init__(self, store: Store, port: BusinessPort, settings: RecordingSettings, timezone: str) -> None:
        self.store = store
        self.port = port
        self.settings = settings
        self.zone = zoneinfo.ZoneInfo(timezone)

    @property
    def max_s(self) -> int:
        return self.settings.message_max_s

    def left_today(self, caller: str | None, now: dt.datetime | None = None) -> int:
        """The voice messages this calling number left in the local day of `now`. Numbers are
        compared in their stored form (`phone_number`); callers without one (withheld, not a
        phone number) are counted together. Raises StoreUnavailable or SQLAlchemyError."""
        moment = now or utcnow()
        day = moment.astimezone(self.zone).date()
        start = dt.datetime.combine(day, dt.time(), self.zone).astimezone(dt.UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), self.zone).astimezone(dt.UTC)
        number = phone_number(caller)
        same_caller = VoiceMessage.caller_number.is_(None) if number is None else VoiceMessage.caller_number == number
        query = select(func.count()).where(same_caller, VoiceMessage.created_at >= start, VoiceMessage.created_at < end)
        with self.store.session() as s:
            return int(s.scalar(query) or 0)

    def may_leave(self, caller: str | None, now: dt.datetime | None = None) -> bool:
        """Whether this calling number may leave another message today
        (`recordings.messages_per_number_day`, 0: no limit)."""
        limit = self.settings.messages_per_number_day
        return limit == 0 or self.left_today(caller, now) < limit

    def local(self, relative: str) -> Path:
        """The file as the platform sees it; refuses a path that would leave recordings.dir."""
        rel = PurePosixPath(relative)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.parts[0] != SUBDIR:
            raise ValueError(f"not a voice message path: {relative!r}")
        return self.settings.dir / rel

    def new_take(self, now: dt.datetime | None = None) -> Take:
        """A fresh take's names, its day's directory made (Asterisk does not create one)."""
        day = (now or utcnow()).astimezone(self.zone).date().isoformat()
        _make_dirs(self.settings.dir, (SUBDIR, day))
        name = uuid.uuid4().hex
        relative = f"{SUBDIR}/{day}/{name}.{FORMAT}"
        return Take(relative, f"{self.settings.asterisk_dir.rstrip('/')}/{SUBDIR}/{day}/{name}")

    def asterisk_path(self, relative: str) -> str:
        """How Asterisk names a take (for STREAM FILE), without the extension."""
        self.local(relative)
        return f"{self.settings.asterisk_dir.rstrip('/')}/{relative.removesuffix('.' + FORMAT)}"

    def discard(self, relative: str) -> None:
        """Remove a take the caller recorded again (never saved, never a message)."""
        try:
            self.local(relative).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("voice message take %s could not be removed: %s", relative, exc)

    def duration(self, relative: str) -> float | None:
        """Seconds in the take, or None when the platform cannot read the file."""
        try:
            return wav_duration_s(self.local(relative))
        except (OSError, wave.Error, EOFError):
            return None

    def save(self, call_id: str, caller: str | None, message: SaveMessage) -> Saved:
        """Write the row (and, when the ID number names a resident, an audit entry with it);
        raises MessageNotSaved when the store cannot take it."""
        seconds = self.duration(message.recording)
        if seconds is None:
            if message.ended == "hangup" and not self.local(message.recording).exists():
                return Saved(None, 0, False)  # hung up before Asterisk opened the file
            # Asterisk recorded it (or says so), yet the platform cannot read it: keep the row,
            # so the caller is called back, and say where to look.
            log.error(
                "call %s: voice message %s is not readable under recordings.dir %s (is it the directory "
                "Asterisk writes as %s?)",
                call_id,
                message.recording,
                self.settings.dir,
                self.settings.asterisk_dir,
            )
        elif seconds < EMPTY_TAKE_S and message.ended == "hangup":
            # Hung up at the beep, or stayed silent on a line that sent no audio at all: nothing
            # was said, and the empty file Asterisk left is no one's message.
            self.discard(message.recording)
            return Saved(None, 0, False)
        resident = message.resident_id
        if resident is None and message.id_number is not None:
            resident = self._holder(call_id, message.id_number)
        try:
            row = VoiceMessage(
                call_id=call_id,
                caller_number=phone_number(caller),
                resident_id=resident,
                id_number_masked=mask_id(message.id_number) if message.id_number else None,
                recording=message.recording,
                duration_s=round(seconds or 0),
                ended=message.ended,
                reason=message.reason,
            )
            with self.store.session() as s:
                if resident is not None:  # first: the chain's lock before the message's row (core.audit)
                    audit.record(s, actor="ivr", action="write:voice_message", resident_id=resident, call_id=call_id)
                s.add(row)
                s.flush()
                message_id = row.id
        except (StoreUnavailable, SQLAlchemyError) as exc:
            raise MessageNotSaved(f"voice message {message.recording} of call {call_id}: {exc}") from exc
        return Saved(message_id, round(seconds or 0), resident is not None)

    def _holder(self, call_id: str, id_number: str) -> int | None:
        """The resident the keyed ID number names; None when the business system cannot say
        now (the message is kept without it: what the caller said matters more)."""
        try:
            return self.port.resident_of(id_number)
        except (StoreUnavailable, SQLAlchemyError) as exc:
            log.warning(
                "call %s: resident of voice message ID %s not looked up: %s",
                call_id,
                mask_id(id_number),
                mask_numbers(str(exc).splitlines()[0]),
            )
            return None


def _make_dirs(base: Path, parts: tuple[str, ...]) -> None:
    """Make base/parts..., each new directory with the mode and (when we may) the owner of
    `base`: Asterisk, running as its own account, must be able to write in it."""
    info = base.stat()
    path = base
    for part in parts:
        path = path / part
        try:
            path.mkdir(mode=info.st_mode & 0o7777)
        except FileExistsError:
            continue
        if os.geteuid() == 0:
            os.chown(path, info.st_uid, info.st_gid)
        os.chmod(path, info.st_mode & 0o7777)  # mkdir's mode is cut by the umask
