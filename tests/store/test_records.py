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


def _cdr(uniqueid: str, accountcode: str, caller: str, start: str, end: str) -> str:
    """A caller's Master.csv row (cdr-csv's 18 fields, as Debian's cdr.conf writes them)."""
    fields = [accountcode, caller, "12333", "hotline-12333", f'"{caller}" <{caller}>', "PJSIP/carrier-01", ""]
    fields += ["Hangup", "", start, start, end, "30", "30", "ANSWERED", "DOCUMENTATION", uniqueid, ""]
    return ",".join('"' + f.replace('"', '""') + '"' for f in fields) + "\n"


def test_the_catch_up_takes_only_this_instances_calls(store: Store, tmp_path: Path) -> None:
    """The demo, the tests and a benchmark take turns with one local Asterisk: its records
    may hold calls of another instance (its accountcode) or unmarked ones that no IVR of
    ours recorded. The monitor's catch-up imports this instance's calls and completes calls
    it recorded live; it leaves the others alone and says how many."""
    queue_log, master = tmp_path / "queue_log", tmp_path / "Master.csv"
    queue_log.write_text(
        "1795836000|1795835999.30|hotline-12333|NONE|ENTERQUEUE||13900000000|1\n"  # ours
        "1795836030|1795835999.30|hotline-12333|NONE|ABANDON|1|1|30\n"
        "1795836100|1795836099.40|hotline-12333|NONE|ENTERQUEUE||13900000001|1\n"  # the bench's
        "1795836130|1795836099.40|hotline-12333|NONE|ABANDON|1|1|30\n"
        "1795836200|1795836199.50|hotline-12333|NONE|ENTERQUEUE||13900000002|1\n"  # unmarked, no CDR
        "1795836230|1795836199.50|hotline-12333|NONE|ABANDON|1|1|30\n"
        "1795836300|1795836299.60|hotline-12333|NONE|ENTERQUEUE||13900000003|1\n"  # recorded live
        "1795836330|1795836299.60|hotline-12333|NONE|ABANDON|1|1|30\n",
        encoding="utf-8",
    )
    master.write_text(
        _cdr("1795835999.30", "demo", "13900000000", "2026-11-28 05:06:39", "2026-11-28 05:07:10")
        + _cdr("1795836099.40", "bench", "13900000001", "2026-11-28 05:08:19", "2026-11-28 05:08:50")
        + _cdr("1795836299.60", "", "13900000003", "2026-11-28 05:11:39", "2026-11-28 05:12:10"),
        encoding="utf-8",
    )
    with store.session() as s:
        s.add(Call(id="live", asterisk_uniqueid="1795836299.60", started_at=utcnow(), source="ivr"))
    report = import_files(store, queue_log, master, instance="demo")
    assert (report.created, report.updated, report.foreign) == (1, 1, 2)
    assert "2 calls of another instance" in report.summary()
    with store.session() as s:
        recorded = {c.asterisk_uniqueid: (c.source, c.disposition) for c in s.scalars(select(Call))}
    assert recorded == {"1795835999.30": ("logs", "abandoned"), "1795836299.60": ("ivr", "abandoned")}
    # Again: nothing of the others' comes in, and ours is unchanged.
    again = import_files(store, queue_log, master, instance="demo")
    assert (again.created, again.unchanged, again.foreign) == (0, 2, 2)
    # `hotline calls import` with files named by hand takes every call in them.
    assert import_files(store, queue_log, master).created == 2
