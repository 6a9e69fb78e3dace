"""Music on hold for callers waiting in a queue, computed rather than shipped.

Debian's Asterisk package brings no music (and a site's licensed music is its own), so
`hotline prompts build` writes a calm, royalty-free loop: soft bell-like arpeggios over
I-vi-IV-V in C, as 8 kHz mono 16-bit WAV, into sounds/hotline/moh/ for musiconhold.conf.
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

SAMPLE_RATE = 8000
NOTE_S = 0.42
# Two bars per chord: C major, A minor, F major, G major (MIDI note numbers).
CHORDS = ((60, 64, 67, 72), (57, 60, 64, 69), (53, 57, 60, 65), (55, 59, 62, 67))
VOLUME = 0.22  # well below full scale: hold music must not drown the announcements


def _hz(midi: int) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _note(midi: int) -> list[float]:
    n = int(SAMPLE_RATE * NOTE_S)
    f = _hz(midi)
    out = []
    for i in range(n):
        t = i / SAMPLE_RATE
        envelope = min(1.0, t / 0.01) * math.exp(-3.2 * t)  # quick attack, bell-like decay
        tone = math.sin(2 * math.pi * f * t) + 0.3 * math.sin(4 * math.pi * f * t)
        out.append(envelope * tone / 1.3)
    return out


def samples(loops: int = 3) -> list[float]:
    bar: list[float] = []
    for chord in CHORDS:
        for _ in range(2):
            for midi in (*chord, chord[2], chord[1]):
                bar.extend(_note(midi))
    return bar * loops


def write_hold_music(path: Path) -> None:
    """Write the loop (about 40 s) if it is not there yet."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(struct.pack("<h", int(max(-1.0, min(1.0, s * VOLUME)) * 32767)) for s in samples())
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(frames)
    tmp.replace(path)
