"""WAV files and recording rows for the recordings tests."""

from __future__ import annotations

import datetime as dt
import wave
from pathlib import Path

from core.db import Store
from core.models import Call, Recording, VoiceMessage


def write_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A mono 16-bit WAV of `seconds` of a rising ramp (every byte distinct enough to compare ranges)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(seconds * rate)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join((i % 30000).to_bytes(2, "little", signed=True) for i in range(frames)))
    return path


def add_recording(
    store: Store,
    base: Path,
    call_id: str,
    *,
    at: dt.datetime,
    agent: str = "坐席1001",
    seconds: float | None = 2.0,
    resident_id: int | None = None,
    queue: str = "hotline-12333",
) -> int:
    """A call answered by `agent` and its recording (its file written unless `seconds` is None)."""
    path = f"calls/{at.date().isoformat()}/{call_id}.wav"
    if seconds is not None:
        write_wav(base / path, seconds)
    with store.session() as s:
        s.add(
            Call(
                id=call_id,
                started_at=at,
                caller_number="13812345678",
                resident_id=resident_id,
                queue=queue,
                disposition="agent",
                agent=agent,
                talk_s=int(seconds or 0),
            )
        )
        row = Recording(call_id=call_id, agent=agent, path=path, started_at=at, duration_s=seconds)
        s.add(row)
        s.flush()
        return row.id


def add_voice_message(
    store: Store,
    base: Path,
    name: str,
    *,
    at: dt.datetime,
    seconds: float | None = 1.0,
    resident_id: int | None = None,
) -> int:
    """A voice message left at `at` (its WAV under messages/<day>/ unless `seconds` is None), not yet an order."""
    path = f"messages/{at.date().isoformat()}/{name}.wav"
    if seconds is not None:
        write_wav(base / path, seconds)
    with store.session() as s:
        row = VoiceMessage(
            call_id=f"call-{name}",
            caller_number="13812345678",
            resident_id=resident_id,
            recording=path,
            duration_s=round(seconds or 0),
            created_at=at,
        )
        s.add(row)
        s.flush()
        return row.id
