"""However malformed a business event, it ends `failed` with what was wrong, logged with its
id and no private data, and every good event around it is sent: by intake alone and end to
end through the dispatcher and the SMSC simulator, instant and batch. On SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import sms.intake as intake_module
from core.db import Store
from core.models import BusinessEvent
from core.settings import SmsSettings
from sms.intake import emit, intake
from sms.outbox import failure_reasons
from tests.conftest import load_sample
from tests.store.bad_events import NOBODY, Row, insert_zoo
from tests.store.sms_support import dispatching, messages_of, sample_port, until_final
from tests.waiting import until

SETTINGS = SmsSettings(quiet_hours={})
ZONE = "Asia/Shanghai"
DAY = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Event:
    id: int
    status: str
    reason: str | None


def _events(store: Store) -> dict[str, Event]:
    """By key; not the payloads, which an ORM load would parse (and some are not JSON)."""
    t = BusinessEvent.__table__
    with store.transaction() as c:
        rows = c.execute(select(t.c.idempotency_key, t.c.id, t.c.status, t.c.reason))
        return {key: Event(*rest) for key, *rest in rows}


def _assert_outcomes(store: Store, rows: list[Row]) -> None:
    events = _events(store)
    for row in rows:
        event = events[row.key]
        if row.reason is None:
            assert (row.key, event.status, event.reason) == (row.key, "queued", None)
        else:
            assert event.status == "failed", row.key
            assert row.reason in (event.reason or ""), (row.key, event.reason)


def _assert_logged_without_private_data(store: Store, rows: list[Row], caplog: Any, people: list[Any]) -> None:
    events = _events(store)
    lines = [r.getMessage() for r in caplog.records if r.name == "sms.intake" and r.levelno >= logging.WARNING]
    for row in rows:
        if row.reason is not None:
            event_id = events[row.key].id
            assert any(line.startswith(f"event {event_id} (") and "not sent" in line for line in lines), row.key
    text = caplog.text
    assert "余雪英" not in text and NOBODY not in text
    assert not any(p.id_number in text or p.phone in text for p in people)


def test_a_zoo_of_bad_events_fails_each_alone_and_the_good_ones_are_queued(
    store: Store, sample_data: Any, caplog: Any
) -> None:
    load_sample(store)
    employers, residents = sample_data
    people = residents[:40]
    rows = insert_zoo(store, people, employers[0])
    with caplog.at_level(logging.INFO):
        report = intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    good = [r for r in rows if r.reason is None]
    assert (report.events, report.queued, report.messages) == (len(rows), len(good), len(good))
    assert report.failed == len(rows) - len(good)
    _assert_outcomes(store, rows)
    _assert_logged_without_private_data(store, rows, caplog, people)
    assert sorted(m.event_id for m in messages_of(store)) == sorted(_events(store)[r.key].id for r in good)
    assert intake(store, sample_port(store), SETTINGS, ZONE, now=DAY).events == 0  # nothing left to take again
    # The operator sees why, without reading the log.
    reasons = dict(failure_reasons(store, limit=100))
    assert reasons["card_loss_confirmed: the payload must be a JSON object, not null"] >= 1
    assert sum(reasons.values()) == report.failed


async def test_end_to_end_every_good_event_around_the_zoo_is_delivered(
    store: Store, tmp_path: Path, sample_data: Any, caplog: Any
) -> None:
    load_sample(store)
    employers, residents = sample_data
    people = residents[:40]
    rows = insert_zoo(store, people, employers[0])
    good = [r for r in rows if r.reason is None]
    with caplog.at_level(logging.INFO):
        async with dispatching(store, tmp_path, {}) as (sim, _d, _t):
            messages = await until_final(store, len(good))
            await until(
                lambda: not any(e.status == "pending" for e in _events(store).values()), "every event taken up", 10
            )
    assert {m.status for m in messages} == {"delivered"}
    assert {m.event_type for m in messages} == {r.event_type for r in good}
    assert sim.counts["accepted"] == sum(m.segments for m in messages)
    _assert_outcomes(store, rows)
    _assert_logged_without_private_data(store, rows, caplog, people)


@pytest.mark.parametrize("event_type", ["pension_credited", "account_statement"])  # instant, batch
@pytest.mark.parametrize("fault", ["raises", "unencodable", "refused by the store"])
def test_a_fault_of_ours_in_one_event_fails_that_event_with_a_traceback_and_no_other(
    store: Store, sample_data: Any, caplog: Any, monkeypatch: pytest.MonkeyPatch, event_type: str, fault: str
) -> None:
    """A bug in rendering, a text the driver cannot encode (a lone surrogate, as if render
    let one through), or a row the store refuses at the INSERT (no text: NOT NULL; on
    PostgreSQL the server's error aborts the transaction, and only the savepoint lets the
    other events go on)."""
    load_sample(store)
    people = sample_data[1][:5]
    payloads = {
        "pension_credited": lambda p: {"name": p.name, "period": "2026-11", "amount": 5},
        "account_statement": lambda p: {"name": p.name, "year": "2025", "pension": 1, "medical": 2},
    }
    for i, p in enumerate(people):
        emit(store, event_type, "person", p.id_number, payloads[event_type](p), f"e{i}")
    broken_for = people[2].name
    real = intake_module.render

    def render(kind: str, payload: Any, zone: str) -> str:
        if payload.get("name") != broken_for:
            return real(kind, payload, zone)
        if fault == "raises":
            raise KeyError("a bug of ours")
        return "\ud800" + real(kind, payload, zone) if fault == "unencodable" else None  # type: ignore[return-value]

    monkeypatch.setattr(intake_module, "render", render)
    with caplog.at_level(logging.INFO):
        report = intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    assert (report.events, report.queued, report.failed, report.messages) == (5, 4, 1, 4)
    events = _events(store)
    assert [events[f"e{i}"].status for i in range(5)] == ["queued", "queued", "failed", "queued", "queued"]
    reason = events["e2"].reason or ""
    assert reason.startswith("not expanded: ") and reason.endswith(" (a fault in the gateway; see its log)")
    (fault_line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert fault_line.startswith(f"event {events['e2'].id} ('{event_type}') not expanded: ")
    assert "Traceback (most recent call last):" in fault_line and "sms/intake.py" in fault_line
    # Never a statement's parameters: the phones and names in the rows.
    assert not any(p.phone in caplog.text or p.name in caplog.text or p.id_number in caplog.text for p in people)
    expected = {"raises": "KeyError", "unencodable": "UnicodeEncodeError", "refused by the store": "IntegrityError"}
    assert reason == f"not expanded: {expected[fault]} (a fault in the gateway; see its log)"
    assert len(messages_of(store)) == 4
    assert (
        intake(store, sample_port(store), SETTINGS, ZONE, now=DAY).events == 0
    )  # failed for good: not taken again and again
