"""Where a caller's wait goes: the durations of named stages of the hot paths (a query's
hop to its thread, an identification's count, PIN check and audit entry, a group commit's
queueing and transaction), kept only when asked for.

`BENCH_STAGE_TIMES=DIR` (set by `bench.fastagi_load`) turns it on for a process; `dump()`
then writes `DIR/stages-<pid>.json` (stage -> list of seconds) when `hotline serve` ends.
Off, `add` is one global lookup and a test, so the hooks stay in the code a site runs.
Samples are appended from several threads: `list.append` is atomic in CPython.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ENV = "BENCH_STAGE_TIMES"  # not HOTLINE_*: those are settings, and unknown ones are refused
_DIR = os.environ.get(ENV) or None
_samples: defaultdict[str, list[float]] = defaultdict(list)


def enabled() -> bool:
    return _DIR is not None


def add(stage: str, seconds: float) -> None:
    if _DIR is not None:
        _samples[stage].append(seconds)


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    if _DIR is None:
        yield
        return
    began = time.perf_counter()
    try:
        yield
    finally:
        _samples[stage].append(time.perf_counter() - began)


def watch_gc() -> None:
    """Time the garbage collector's passes too (`gc.gen0` ... `gc.gen2`): every thread of
    the process stands still while one runs."""
    if _DIR is None:
        return
    began: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[:] = [time.perf_counter()]
        elif began:
            _samples[f"gc.gen{info['generation']}"].append(time.perf_counter() - began[0])

    gc.callbacks.append(callback)


def dump() -> Path | None:
    """Write this process's samples (if on); the file's path."""
    if _DIR is None:
        return None
    path = Path(_DIR) / f"stages-{os.getpid()}.json"
    path.write_text(json.dumps({k: list(v) for k, v in _samples.items()}), encoding="utf-8")
    return path


def load(directory: Path) -> dict[str, list[float]]:
    """Every process's samples in `directory`, merged."""
    merged: defaultdict[str, list[float]] = defaultdict(list)
    for path in sorted(directory.glob("stages-*.json")):
        for stage, values in json.loads(path.read_text(encoding="utf-8")).items():
            merged[stage].extend(values)
    return dict(merged)
