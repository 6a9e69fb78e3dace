"""The figures the hot paths count as they go, for `/metrics` (console/metrics_views.py):
every FastAGI command's turnaround and every identification's result.

They are counted in whichever process does the work, and `hotline serve --workers N` is N
processes: prometheus_client's multiprocess mode (its docs, "Multiprocess Mode") keeps each
process's values in files under one directory, `PROMETHEUS_MULTIPROC_DIR`, which the
console's scrape adds up. The client reads that variable when it is first imported, so
nothing here imports it before `start()`: `hotline serve` sets the directory, then starts
(its workers inherit the variable). Until then, and in every other command, the hooks
below are one global test each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for it
# A FastAGI command's turnaround: from the reply to the server's next command, what a
# caller hears as silence. Most are under a few milliseconds; the step after the PIN runs
# to tens or hundreds under load (bench/README.md).
TURNAROUND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
IDENTIFY_RESULTS = ("ok", "wrong_pin", "locked", "refused")

_turnaround: Any = None
_identified: Any = None
_audit_tail: Any = None
_receipt: Any = None
# From a segment's submission to its final receipt: seconds for most, the SMSC's retry
# schedule (hours) for a handset that was off.
RECEIPT_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


def start() -> None:
    """Create this process's metrics (after `MULTIPROC_ENV` is settled, if it is to be)."""
    global _turnaround, _identified, _audit_tail, _receipt
    if _turnaround is not None:
        return
    from prometheus_client import Counter, Gauge, Histogram

    _turnaround = Histogram(
        "hotline_agi_turnaround_seconds",
        "FastAGI: from Asterisk's reply to the server's next command, by that command's verb",
        ["command"],
        buckets=TURNAROUND_BUCKETS,
    )
    _identified = Counter("hotline_identifications", "Identifications by ID number and PIN, by result", ["result"])
    for result in IDENTIFY_RESULTS:
        _identified.labels(result)  # present at 0 from the start: rate() needs the series
    _receipt = Histogram(
        "hotline_sms_receipt_seconds",
        "SMS: from a segment's submission to its final delivery receipt",
        buckets=RECEIPT_BUCKETS,
    )
    # Set by the serve that seals the chain's head (hotline/serve.py, log_audit_head):
    # "liveall" keeps one series per live process, so a worker's absence is no zero.
    _audit_tail = Gauge(
        "hotline_audit_tail_ok",
        "1 when the audit chain's rows since its last seal linked onto it at the last hourly check",
        multiprocess_mode="liveall",
    )


def sms_receipt(seconds: float) -> None:
    if _receipt is not None:
        _receipt.observe(max(seconds, 0.0))


def audit_tail(ok: bool) -> None:
    if _audit_tail is not None:
        _audit_tail.set(1 if ok else 0)


def agi_turnaround(command: str, seconds: float) -> None:
    """`command` is the AGI command line; only its verb becomes a label (`STREAM`,
    `GET`, `SET`, ...): AGI's own vocabulary, a bounded set, never the file or digits."""
    if _turnaround is not None:
        verb = command.split(" ", 1)[0]
        _turnaround.labels(verb if verb.isalpha() and verb.isupper() else "other").observe(seconds)


def identification(result: str) -> None:
    if _identified is not None:
        _identified.labels(result if result in IDENTIFY_RESULTS else "refused").inc()


def multiproc_dir() -> Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def process_gone(pid: int) -> None:
    """A worker process ended: its live gauges go (its counters stay in the sums)."""
    if multiproc_dir() is not None and _turnaround is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
