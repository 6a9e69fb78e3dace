"""Batches from CSV: one event per row under a named batch; loaded twice adds nothing; a
bad row fails with its reason; a paused batch holds its messages while instant ones go."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from core.db import Store
from core.settings import SmsSettings
from sms import batch, outbox
from sms.errors import BatchError
from sms.intake import emit, intake
from tests.conftest import load_sample
from tests.store.sms_support import sample_port

NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing: no quiet hours


def _csv(tmp_path: Path, people: list[Any]) -> Path:
    lines = ["event_type,subject_id,title,body"]
    lines += [f"policy_news,{p.id_number},医保缴费提醒,2027年度城乡居民医保缴费期为9月1日至12月31日。" for p in people]
    lines.append("policy_news,330523199001010000,没有这个人,内容")  # nobody registered
    lines.append("policy_news,,缺少对象,内容")
    path = tmp_path / "policy-2026-11.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_csv_becomes_a_batch_once_and_bad_rows_fail_with_reasons(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    load_sample(store)
    people = sample_data[1][:5]
    path = _csv(tmp_path, people)
    loaded = batch.load(store, path)
    assert (loaded.name, loaded.rows, loaded.new_events) == ("policy-2026-11", 7, 7)
    assert batch.load(store, path).new_events == 0  # the same file again adds nothing
    report = intake(store, sample_port(store), SmsSettings(quiet_hours={}), "Asia/Shanghai", now=NOW)
    assert (report.queued, report.failed) == (5, 2)
    p = batch.progress(store, "policy-2026-11")
    assert (p.total, p.failed_events, p.messages, p.finished) == (7, 2, {"queued": 5}, 2)


def test_a_paused_batch_holds_its_messages_but_not_instant_ones(store: Store, tmp_path: Path, sample_data: Any) -> None:
    load_sample(store)
    people = sample_data[1][:5]
    batch.load(store, _csv(tmp_path, people), "held")
    r = sample_data[1][6]
    emit(store, "pension_credited", "person", r.id_number, {"name": r.name, "period": "2026-11", "amount": 1}, "p")
    intake(store, sample_port(store), SmsSettings(quiet_hours={}), "Asia/Shanghai", now=NOW)
    batch.set_paused(store, "held", True)
    claimed = outbox.claim_due(store, "w", 50, dt.timedelta(minutes=5), NOW)
    assert [d.recipient for d in claimed] == [r.phone]  # only the instant reminder
    batch.set_paused(store, "held", False)
    claimed = outbox.claim_due(store, "w", 50, dt.timedelta(minutes=5), NOW)
    assert sorted(d.recipient for d in claimed) == sorted(p.phone for p in people)
    assert batch.progress(store, "held").status == "running"


def test_bad_files_and_names_are_refused_clearly(store: Store, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,title\nx,y\n", encoding="utf-8")
    with pytest.raises(BatchError, match="the header lacks event_type, subject_id"):
        batch.load(store, bad)
    with pytest.raises(BatchError, match="cannot read it"):
        batch.load(store, tmp_path / "missing.csv")
    with pytest.raises(BatchError, match="no batch named 'nope'"):
        batch.set_paused(store, "nope", True)


def test_csv_cells_keep_leading_zeros_and_amounts_become_fen(store: Store, tmp_path: Path, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    path = tmp_path / "statements.csv"
    path.write_text(
        "event_type,subject_id,name,year,pension,medical\n"
        f"account_statement,{r.id_number},{r.name},2025,1230560,0045000\n",
        encoding="utf-8",
    )
    batch.load(store, path)
    report = intake(store, sample_port(store), SmsSettings(quiet_hours={}), "Asia/Shanghai", now=NOW)
    assert (report.queued, report.failed) == (1, 0)
    (message,) = outbox.claim_due(store, "w", 5, dt.timedelta(minutes=5), NOW)
    assert "截至2025年底" in message.text and "12,305.60元" in message.text and "450.00元" in message.text
