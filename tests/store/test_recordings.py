"""Recordings in the store: the retention sweep (files deleted, rows kept with the reason, a
missing file reported; voice messages only once their order is closed), quality scores and
the per-agent report's average, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from cases import orders as o
from cases.errors import BadScore, RecordingNotFound
from cases.quality import score_recording, scores_of
from cases.tasks import voice_messages_to_orders
from core.db import Store
from core.models import AuditEntry, QualityScore, Recording, VoiceMessage, utcnow
from core.settings import QualitySettings, QueueSettings, Settings
from ivr.recordings import sweep
from reports import render
from reports.period import parse_period
from reports.report import build
from tests.conftest import make_settings
from tests.recording_files import add_recording, add_voice_message, write_wav

DAY = dt.timedelta(days=1)


def _row(store: Store, recording_id: int) -> Recording:
    with store.session() as s:
        row = s.get(Recording, recording_id)
        assert row is not None
        s.expunge(row)
        return row


def test_retention_deletes_old_files_keeps_rows_and_reports_missing_ones(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = tmp_path / "recordings"
    now = utcnow()
    old = add_recording(store, base, "c-old", at=now - 31 * DAY)
    gone = add_recording(store, base, "c-gone", at=now - 40 * DAY, seconds=None)  # its file vanished
    fresh = add_recording(store, base, "c-fresh", at=now - 29 * DAY)
    old_file = base / _row(store, old).path
    assert old_file.exists()
    with caplog.at_level(logging.WARNING, logger="ivr.recordings"):
        report = sweep(store, base, 30, now)
    assert (report.deleted, report.missing, report.failed) == (1, [_row(store, gone).path], [])
    assert not old_file.exists() and (base / _row(store, fresh).path).exists()
    kept = _row(store, old)
    assert kept.deleted_at is not None and kept.delete_reason == "retention: older than 30 days"
    assert kept.duration_s == 2.0  # the row keeps what the recording was
    missing = _row(store, gone)
    assert missing.deleted_at is not None and (missing.delete_reason or "").startswith("missing")
    assert "already missing" in caplog.text
    assert _row(store, fresh).deleted_at is None
    # The next sweep finds nothing more to do.
    again = sweep(store, base, 30, now)
    assert (again.deleted, again.missing, again.failed) == (0, [], [])


def test_a_recording_whose_stop_was_missed_is_completed_from_its_file(store: Store, tmp_path: Path) -> None:
    base = tmp_path / "recordings"
    now = utcnow()
    rid = add_recording(store, base, "c-open", at=now - DAY, seconds=None)
    path = _row(store, rid).path
    write_wav(base / path, 3.0)
    with store.session() as s:
        row = s.get(Recording, rid)
        assert row is not None
        row.duration_s = None
    stamp = (now - dt.timedelta(minutes=5)).timestamp()
    os.utime(base / path, (stamp, stamp))
    assert sweep(store, base, 30, now).finished == 1
    row = _row(store, rid)
    assert row.duration_s == 3.0 and row.size == (base / path).stat().st_size


def test_quality_scores_fit_the_form_and_feed_the_per_agent_report(store: Store, tmp_path: Path) -> None:
    base = tmp_path / "recordings"
    form = QualitySettings()  # greeting 20, accuracy 30, attitude 25, resolution 25
    now = utcnow()
    first = add_recording(store, base, "c-1", at=now - dt.timedelta(hours=2), agent="坐席1001")
    second = add_recording(store, base, "c-2", at=now - dt.timedelta(hours=1), agent="坐席1001")
    full = {"greeting": 20, "accuracy": 30, "attitude": 25, "resolution": 25}
    for bad in (
        {**full, "greeting": 21},  # over the item's maximum
        {**full, "accuracy": "-1"},
        {**full, "attitude": "7.5"},
        {k: v for k, v in full.items() if k != "resolution"},  # an item left out
        {**full, "speed": 3},  # not on the form
    ):
        with pytest.raises(BadScore):
            score_recording(store, form, first, "sup", bad)
    with pytest.raises(RecordingNotFound):
        score_recording(store, form, 999_999, "sup", full)
    with store.session() as s:
        assert s.scalars(select(QualityScore)).all() == []
    shown = score_recording(store, form, first, "sup", {**full, "greeting": "10"}, "问候不完整")
    assert (shown.total, shown.max_total, shown.agent) == (90, 100, "坐席1001")
    score_recording(store, form, second, "sup", {"greeting": 10, "accuracy": 15, "attitude": 20, "resolution": 15})
    assert [s.total for s in scores_of(store, first)] == [90]
    today = now.astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    period = parse_period((today - DAY).isoformat(), (today + DAY).isoformat(), "Asia/Shanghai")
    report = build(store, period, QueueSettings())
    agents = {a["name"]: a for a in report.as_dict()["per_agent"]}
    # The mean of 100 * total / max_total: (90 + 60) / 2.
    assert agents["坐席1001"]["quality_scores"] == 2 and agents["坐席1001"]["avg_quality_score"] == 75.0
    row = next(line for line in render.text(report).splitlines() if "坐席1001" in line)
    assert row.split()[-2:] == ["2", "75.0"] and "质检平均分" in render.text(report)
    assert "<td>75.0</td>" in render.as_html(report) and "质检平均分" in render.as_html(report)
    per_agent = list(csv.DictReader(io.StringIO(render.csv_tables(report)["per_agent.csv"])))
    assert [(a["quality_scores"], a["avg_quality_score"]) for a in per_agent] == [("2", "75.0")]
    earlier = parse_period((today - 30 * DAY).isoformat(), (today - 10 * DAY).isoformat(), "Asia/Shanghai")
    assert all(a["avg_quality_score"] is None for a in build(store, earlier, QueueSettings()).as_dict()["per_agent"])


def _closed(store: Store, settings: Settings, order_id: int, *, answered: bool = True) -> None:
    if answered:
        o.answer_order(store, settings, order_id, actor="console:pension", answer="已电话答复。", reply_via="none")
    o.close_order(store, order_id, actor="console:sup", note="" if answered else "重复留言")


def test_retention_deletes_voice_messages_of_closed_orders_only(store: Store, tmp_path: Path) -> None:
    base, settings, now = tmp_path / "recordings", make_settings(tmp_path, store.url), utcnow()
    old = now - 31 * DAY
    left = {
        name: add_voice_message(store, base, name, at=at, resident_id=7, seconds=None if name == "gone" else 1.0)
        for name, at in (
            ("closed", old), ("withdrawn", old), ("gone", old), ("open", old), ("answered", old),
            ("recent", now - 29 * DAY),
        )
    }  # fmt: skip
    orders = {v.voice_message_id: v.id for v in voice_messages_to_orders(store, settings, now)}
    order = {name: orders[mid] for name, mid in left.items()}
    for name in ("closed", "gone", "recent"):
        _closed(store, settings, order[name])
    _closed(store, settings, order["withdrawn"], answered=False)
    o.answer_order(store, settings, order["answered"], actor="x", answer="已答复。", reply_via="none")
    not_yet = add_voice_message(store, base, "not-yet", at=old)  # not an order yet: evidence too
    files = {name: base / _message(store, mid).recording for name, mid in left.items()}

    report = sweep(store, base, 30, now)
    assert (report.messages_deleted, report.deleted, report.failed) == (2, 0, [])
    assert report.missing == [_message(store, left["gone"]).recording]
    assert "2 voice messages deleted" in report.summary()
    assert not files["closed"].exists() and not files["withdrawn"].exists()
    for name in ("open", "answered", "recent"):
        assert files[name].exists(), name
        assert _message(store, left[name]).deleted_at is None, name
    assert (base / _message(store, not_yet).recording).exists()
    gone = _message(store, left["gone"])
    assert gone.deleted_at == now and (gone.delete_reason or "").startswith("missing")
    for name in ("closed", "withdrawn"):
        row = _message(store, left[name])
        assert (row.deleted_at, row.delete_reason) == (now, "retention: older than 30 days")
        assert row.recording.startswith("messages/")  # the row keeps what the message was
    detail = o.get_order(store, order["closed"], actor="test")
    assert (detail.recording_deleted_at, detail.recording_delete_reason) == (now, "retention: older than 30 days")
    with store.session() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "delete:voice_message")).all()
        audited = sorted((a.actor, a.channel, a.resident_id, a.call_id) for a in entries)
    assert audited == sorted(("retention", "recording", 7, f"call-{n}") for n in ("closed", "withdrawn", "gone"))
    assert not sweep(store, base, 30, now + DAY)  # nothing more to do, nothing logged
    # Once the open order is closed too, the next sweep takes its message.
    _closed(store, settings, order["open"])
    assert sweep(store, base, 30, now + DAY).messages_deleted == 1 and not files["open"].exists()


def _message(store: Store, message_id: int) -> VoiceMessage:
    with store.session() as s:
        row = s.get_one(VoiceMessage, message_id)
        s.expunge(row)
        return row
