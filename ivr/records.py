"""Call records from Asterisk's own files, reconciled with the live ones.

`hotline calls import` folds queue_log and Master.csv into one `CallFacts` per caller
uniqueid and writes them onto the matching `calls` row (the IVR's, found by its Asterisk
uniqueid), or onto a row of its own for a call the IVR never saw. Values are absolute,
never added to, so importing the same files twice changes nothing, and a call recorded
live is completed, not counted again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core import rollups
from core.db import Store, chunks
from core.models import Call
from core.phones import clean_caller_id
from ivr.asterisk_logs import CallFacts, CdrRow, Problems, fold, read_master_csv, read_queue_log
from ivr.dialplan import EXTEN_HOTLINE

BATCH = 1000
# Calls known only from Asterisk's files get a stable id, so a second import finds them.
LOG_CALL_NAMESPACE = uuid.UUID("6f1c2a57-3b1e-4c1a-9a53-12333aa00001")
QUEUE_FIELDS = (
    "queue", "queue_entered_at", "queue_wait_s", "answered_at", "agent", "talk_s", "ring_no_answer",
    "queue_exit", "transferred_to",
)  # fmt: skip


@dataclass
class ImportReport:
    calls: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    in_progress: int = 0  # not ended yet: left for the live monitor or the next import
    foreign: int = 0  # not marked as this instance's, nor recorded live: another platform's
    problems: Problems = field(default_factory=Problems)

    def summary(self) -> str:
        text = (
            f"{self.calls} calls: {self.created} new, {self.updated} completed or corrected, {self.unchanged} unchanged"
        )
        if self.in_progress:
            text += f", {self.in_progress} still in progress (left for later)"
        if self.foreign:
            text += f"; {self.foreign} calls of another instance (not this one's accountcode) left alone"
        if self.problems.count:
            text += f"; {self.problems.count} unreadable lines skipped: " + "; ".join(self.problems.examples)
        return text


def log_call_id(uniqueid: str) -> str:
    return str(uuid.uuid5(LOG_CALL_NAMESPACE, uniqueid))


def _values(f: CallFacts, existing: Call | None) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(f, name) for name in QUEUE_FIELDS}
    if f.queue_entered_at is not None or existing is None or existing.disposition is None:
        # Asterisk's records decide how a queued call ended; an IVR-only call stays as the IVR
        # recorded it unless nothing had been recorded.
        values["disposition"] = f.disposition
    if existing is None or existing.ended_at is None:
        values["ended_at"] = f.ended_at
    values["queue"] = f.queue or (existing.queue if existing else None)
    return values


def _batches(facts: dict[str, CallFacts]) -> Iterator[Sequence[CallFacts]]:
    return chunks([f for f in facts.values() if f.ended_at is not None], BATCH)


def import_facts(store: Store, facts: dict[str, CallFacts], report: ImportReport) -> None:
    """Create or complete one record per ended call. A call still in progress (queued or
    talking, with no end in the files yet) is skipped, so it is never recorded half-way."""
    report.in_progress += sum(1 for f in facts.values() if f.ended_at is None)
    for batch in _batches(facts):
        with store.session() as s:
            rows = s.scalars(select(Call).where(Call.asterisk_uniqueid.in_([f.uniqueid for f in batch]))).all()
            by_uid = {r.asterisk_uniqueid: r for r in rows}
            touched: list[dt.datetime] = []  # the hours whose report sums must be redone
            for f in batch:
                report.calls += 1
                call = by_uid.get(f.uniqueid)
                values = _values(f, call)
                if call is None:
                    caller, flag = clean_caller_id(f.caller)
                    s.add(
                        Call(
                            id=log_call_id(f.uniqueid),
                            asterisk_uniqueid=f.uniqueid,
                            caller_number=caller,
                            caller_flag=flag,
                            transport="asterisk",
                            source="logs",
                            started_at=f.started_at or f.queue_entered_at,
                            outcome=None,
                            **values,
                        )
                    )
                    report.created += 1
                    touched += [m for m in (f.started_at, f.queue_entered_at) if m is not None]
                    continue
                changed = {k: v for k, v in values.items() if getattr(call, k) != v}
                for key, value in changed.items():
                    setattr(call, key, value)
                if changed:
                    report.updated += 1
                    touched.append(call.started_at)
                else:
                    report.unchanged += 1
            rollups.unseal(s.connection(), touched)


def _ours(store: Store, facts: dict[str, CallFacts], cdrs: list[CdrRow], instance: str) -> set[str]:
    """The calls that are this instance's: its CDR row carries the instance as accountcode
    (our dialplan sets it on every call into 12333), or the store knows its uniqueid (the
    IVR or the monitor recorded it live; a call still in progress has no CDR row yet)."""
    ours = {row.uniqueid for row in cdrs if row.accountcode == instance}
    others = [uid for uid in facts if uid not in ours]
    for batch in chunks(others, BATCH):
        with store.session() as s:
            ours.update(s.scalars(select(Call.asterisk_uniqueid).where(Call.asterisk_uniqueid.in_(batch))))
    return ours


def import_files(
    store: Store, queue_log: Path | None, cdr_csv: Path | None, *, instance: str | None = None
) -> ImportReport:
    """Read both files whole (a half-year is a few MB) and import what they say. With
    `instance` (the monitor's catch-up), only that instance's calls: records that another
    platform's calls wrote into the same files (tests, a benchmark) are left alone."""
    report = ImportReport()
    events = []
    if queue_log is not None:
        with queue_log.open(encoding="utf-8", errors="replace") as fh:
            events = list(read_queue_log(fh, report.problems))
    cdrs: list[CdrRow] = []
    if cdr_csv is not None:
        cdrs = list(
            read_master_csv(cdr_csv.read_text(encoding="utf-8", errors="replace"), report.problems, EXTEN_HOTLINE)
        )
    facts = fold(events, cdrs)
    if instance is not None:
        ours = _ours(store, facts, cdrs, instance)
        report.foreign = sum(1 for uid in facts if uid not in ours)
        facts = {uid: f for uid, f in facts.items() if uid in ours}
    import_facts(store, facts, report)
    return report
