"""Recording files as every room sees them: a path relative to recordings.dir, resolved
only inside it, and the WAV header read for the duration.

A row names its file relatively (calls/2026-12-02/<uuid>.wav); `resolve` refuses anything
that would leave the directory (`..`, an absolute path, a symlink pointing out), so a forged
row or request can never serve another file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from core.errors import HotlineError


class RecordingPathRefused(HotlineError):
    """A recording's relative path would leave recordings.dir (or is not a WAV name)."""


class NotAWav(HotlineError):
    """The file is not a RIFF/WAVE file with a fmt and a data chunk."""


def resolve(base: Path, relative: str) -> Path:
    """The file `relative` names under `base`; RecordingPathRefused if it is outside it.

    >>> resolve(Path("/r"), "calls/2026-12-02/a.wav").as_posix()
    '/r/calls/2026-12-02/a.wav'
    """
    if not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative:
        raise RecordingPathRefused(f"not a relative recording path: {relative!r}")
    if any(part in ("", ".", "..") for part in relative.split("/")) or not relative.endswith(".wav"):
        raise RecordingPathRefused(f"not a recording path: {relative!r}")
    root = base.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root):
        raise RecordingPathRefused(f"recording path leaves the directory: {relative!r}")
    return target


@dataclass(frozen=True)
class WavInfo:
    sample_rate: int
    channels: int
    bits: int
    data_bytes: int

    @property
    def duration_s(self) -> float:
        frame = self.channels * self.bits // 8
        return self.data_bytes / (self.sample_rate * frame) if self.sample_rate and frame else 0.0


def wav_info(path: Path) -> WavInfo:
    """Read a WAV file's fmt chunk and the length of its data (RIFF: chunks of id, little-endian
    size, body padded to even length). A header whose data size was never updated (the writer
    did not close the file) counts the bytes that are there."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise NotAWav(f"{path.name}: no RIFF/WAVE header")
        fmt: tuple[int, int, int] | None = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                raise NotAWav(f"{path.name}: no data chunk")
            cid, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                body = f.read(length + (length & 1))
                if len(body) < 16:
                    raise NotAWav(f"{path.name}: short fmt chunk")
                channels, rate = struct.unpack("<HI", body[2:8])
                bits = struct.unpack("<H", body[14:16])[0]
                fmt = (rate, channels, bits)
            elif cid == b"data":
                if fmt is None:
                    raise NotAWav(f"{path.name}: data before fmt")
                there = size - f.tell()
                data = there if length == 0 or length > there else length
                return WavInfo(fmt[0], fmt[1], fmt[2], data)
            else:
                f.seek(length + (length & 1), 1)
