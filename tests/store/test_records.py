"""`hotline calls import`: idempotent, and reconciled with calls the IVR recorded live."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from core.db import Store
from core.models import Call, utcnow
from ivr.records import import_files

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
QUEUE_LOG, MASTER = FIXTURES / "queue_log.sample", FIXTURES / "Master.csv.sample"


def snapshot(store: Store) -> list[tuple[object, ...]]:
    with store.session() as s:
        calls = s.scalars(select(Call).order_by(Call.asterisk_uniqueid)).all()
        return [
            (
                c.id,
                c.asterisk_uniqueid,
                c.disposition,
                c.queue_wait_s,
                c.talk_s,
                c.agent,
                c.started_at,
                c.ended_at,
                c.source,
            )
            for c in calls
        ]


def test_importing_twice_gives_the_same_records(store: Store) -> None:
    first = import_files(store, QUEUE_LOG, MASTER)
    once = snapshot(store)
    second = import_files(store, QUEUE_LOG, MASTER)
    assert (first.created, second.created, second.unchanged) == (3, 0, 3)
    assert snapshot(store) == once
    assert sorted(row[2] for row in once) == ["abandoned", "agent", "agent"]


def test_a_call_recorded_live_is_completed_not_counted_twice(store: Store) -> None:
    with store.session() as s:
        s.add(
            Call(
                id="live-1",
                asterisk_uniqueid="1795835802.20",
                started_at=utcnow(),
                outcome="transferred",
                queue="hotline-12333",
                source="ivr",
            )
        )
        s.add(
            Call(
                id="live-2",
                asterisk_uniqueid="9.9",
                started_at=utcnow(),
                ended_at=utcnow(),
                outcome="completed",
                disposition="automated",
                source="ivr",
            )
        )
    report = import_files(store, QUEUE_LOG, MASTER)
    assert (report.created, report.updated) == (2, 1)
    with store.session() as s:
        live = s.get_one(Call, "live-1")
        assert (live.disposition, live.agent, live.queue_wait_s, live.talk_s, live.outcome) == (
            "agent",
            "Agent One",
            2,
            4,
            "transferred",
        )
        assert live.ended_at is not None
        assert s.get_one(Call, "live-2").disposition == "automated"  # the IVR alone served it
        assert s.scalar(select(func.count()).select_from(Call)) == 4


def test_a_call_still_waiting_or_talking_is_left_for_later(store: Store, tmp_path: Path) -> None:
    """An import while calls are in progress (as the monitor does after every reconnect)
    records only the ended ones; the rest are completed by a later import."""
    log = tmp_path / "queue_log"
    log.write_text(
        QUEUE_LOG.read_text()
        + "1795836000|1795835999.30|hotline-12333|NONE|ENTERQUEUE||13900000000|1\n"
        + "1795836001|1795836000.31|hotline-12333|NONE|ENTERQUEUE||13900000001|1\n"
        + "1795836003|1795836000.31|hotline-12333|Agent Two|CONNECT|2|1795836001.33|2\n"
    )
    report = import_files(store, log, None)
    assert (report.created, report.in_progress) == (3, 2)
    assert "2 still in progress" in report.summary()
    with log.open("a") as fh:
        fh.write("1795836030|1795835999.30|hotline-12333|NONE|ABANDON|1|1|30\n")
        fh.write("1795836063|1795836000.31|hotline-12333|Agent Two|COMPLETECALLER|2|60|1\n")
    report = import_files(store, log, None)
    assert (report.created, report.in_progress) == (2, 0)
    with store.session() as s:
        later = {c.asterisk_uniqueid: (c.disposition, c.talk_s) for c in s.scalars(select(Call))}
    assert later["1795835999.30"] == ("abandoned", None) and later["1795836000.31"] == ("agent", 60)


def test_a_blind_transfer_from_real_asterisk_is_imported_with_its_talk_time(store: Store) -> None:
    transfer_log = FIXTURES / "queue_log.transfer.sample"
    first = import_files(store, transfer_log, None)
    again = import_files(store, transfer_log, None)
    assert (first.created, first.in_progress, again.unchanged) == (1, 0, 1)
    with store.session() as s:
        call = s.scalars(select(Call)).one()
    assert (call.disposition, call.agent, call.queue_wait_s, call.talk_s) == ("agent", "Agent 1004", 2, 3)
    assert (call.queue_exit, call.transferred_to) == ("transferred", "9001-0-3@hotline-agents")


def test_a_caller_id_too_long_for_its_column_is_imported_trimmed_and_flagged(store: Store, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text(
        "1795835800|9.1|hotline-12333|NONE|ENTERQUEUE||" + "1" * 200 + "|1\n"
        "1795835830|9.1|hotline-12333|NONE|ABANDON|1|1|30\n",
        encoding="utf-8",
    )
    assert import_files(store, log, None).created == 1
    with store.session() as s:
        call = s.scalars(select(Call)).one()
    assert (call.caller_number, call.caller_flag, call.disposition) == ("1" * 32, "too_long", "abandoned")
