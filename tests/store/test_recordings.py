"""Recordings in the store: the retention sweep (files deleted, rows kept with the reason, a
missing file reported), quality scores and the per-agent report's average, on SQLite and
PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from cases.errors import BadScore, RecordingNotFound
from cases.quality import score_recording, scores_of
from core.db import Store
from core.models import QualityScore, Recording, utcnow
from core.settings import QualitySettings, QueueSettings
from ivr.recordings import sweep
from reports import render
from reports.period import parse_period
from reports.report import build
from tests.recording_files import add_recording, write_wav

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
