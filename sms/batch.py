"""Batch sends from a CSV file, or a named segment (`sms.audiences`): one business event
per row, under a named batch that can be paused and resumed and that reports its progress
and summary.

The file's header names `event_type` and `subject_id` and then the template's fields;
amounts are whole fen. Rows become events with the key `batch:<name>:<row>`, so loading
the same file under the same name twice adds nothing. A row that does not fit its
template becomes a failed event with the reason, like any other bad event.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from core.business import BusinessPort
from core.db import Store, upsert
from core.models import BusinessEvent, SmsBatch, SmsMessage, utcnow
from core.states import FINAL, EventState
from sms import audiences
from sms.errors import BatchError
from sms.templates import TEMPLATES, money_fields

REQUIRED = ("event_type", "subject_id")


@dataclass(frozen=True)
class Loaded:
    batch_id: int
    name: str
    rows: int
    new_events: int


def _value(text: str, money: bool) -> Any:
    """CSV cells are text; an amount field's whole number is fen. Everything else stays
    text (a card's last digits "0821" must keep its zero)."""
    stripped = text.strip()
    return int(stripped) if money and stripped.isdigit() else stripped


def load(store: Store, path: Path, name: str | None = None) -> Loaded:
    name = name or path.stem
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise BatchError(f"{path}: the header lacks {', '.join(missing)} (it has {', '.join(reader.fieldnames or [])})")
    events = []
    for i, row in enumerate(reader, 2):  # line numbers as an editor shows them (1 is the header)
        event_type = (row.get("event_type") or "").strip()
        money = money_fields(event_type)
        payload = {k: _value(v or "", k in money) for k, v in row.items() if k not in REQUIRED and k is not None}
        events.append((str(i), event_type, (row.get("subject_id") or "").strip(), payload))
    return _load(store, name, str(path), events)


def load_segment(
    store: Store, port: BusinessPort, segment: str, period: str | None, deadline: str | None, name: str | None
) -> Loaded:
    """A named segment (`sms.audiences`) for a month as a batch; its events are keyed by
    subject, so loading it again under the same name adds nothing."""
    chosen, rows = audiences.resolve(port, segment, period, deadline)
    name = name or f"{segment}-{period}"
    events = [(subject, chosen.event_type, subject, payload) for subject, payload in rows]
    return _load(store, name, f"segment {segment} {period}", events)


def _load(store: Store, name: str, source: str, events: list[tuple[str, str, str, dict[str, Any]]]) -> Loaded:
    """(key suffix, event type, subject id, payload) rows as the batch's events."""
    with store.transaction() as c:
        c.execute(
            upsert(c, SmsBatch)
            .values(name=name, source=source[:200], total=len(events), status="running", created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        batch_id = c.scalar(select(SmsBatch.id).where(SmsBatch.name == name))
        assert batch_id is not None
        rows = []
        for suffix, event_type, subject_id, payload in events:
            template = TEMPLATES.get(event_type)
            rows.append(
                {
                    "event_type": event_type,
                    "subject_kind": template.subject_kind if template else "person",
                    "subject_id": subject_id,
                    "payload": payload,
                    "idempotency_key": f"batch:{name}:{suffix}",
                    "created_at": utcnow(),
                    "batch_id": batch_id,
                }
            )
        count = select(func.count()).where(BusinessEvent.batch_id == batch_id)
        before = c.scalar(count) or 0
        if rows:
            stmt = upsert(c, BusinessEvent).on_conflict_do_nothing(index_elements=["idempotency_key"])
            c.execute(stmt, rows)
        new = (c.scalar(count) or 0) - before
    return Loaded(batch_id, name, len(rows), new)


def set_paused(store: Store, name: str, paused: bool) -> None:
    with store.transaction() as c:
        found = c.execute(
            update(SmsBatch).where(SmsBatch.name == name).values(status="paused" if paused else "running")
        ).rowcount
    if not found:
        raise BatchError(f"no batch named {name!r}")


@dataclass(frozen=True)
class Progress:
    name: str
    status: str
    total: int
    failed_events: int
    messages: dict[str, int]

    @property
    def finished(self) -> int:
        """Rows settled: their messages all final, or the event failed."""
        return self.failed_events + sum(n for state, n in self.messages.items() if state in FINAL)


def progress(store: Store, name: str) -> Progress:
    with store.transaction() as c:
        batch = c.execute(select(SmsBatch.id, SmsBatch.status, SmsBatch.total).where(SmsBatch.name == name)).first()
        if batch is None:
            raise BatchError(f"no batch named {name!r}")
        states = dict(
            c.execute(
                select(SmsMessage.status, func.count())
                .where(SmsMessage.batch_id == batch.id)
                .group_by(SmsMessage.status)
            ).all()
        )
        failed = c.scalar(
            select(func.count()).where(BusinessEvent.batch_id == batch.id, BusinessEvent.status == EventState.FAILED)
        )
    return Progress(name, batch.status, batch.total, int(failed or 0), {k: int(v) for k, v in states.items()})
