"""The report's notice figures: notices made in the period by the channel they are on or
ended on and their state, those that fell back, those that failed on every channel; in the
JSON and every renderer. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import update

from core import notices
from core.db import Store
from core.models import SmsMessage
from core.preferences import parse, save
from core.settings import QueueSettings
from core.states import Channel
from reports import render
from reports.period import parse_period
from reports.report import build
from sms.channels import Channels
from sms.intake import emit, intake
from sms.notice_moves import move_notices
from tests.conftest import load_sample
from tests.store.sms_support import sample_port
from tests.store.test_notice_channels import DAY, SETTINGS, ZONE

PERIOD = parse_period("2026-11-27", "2026-11-27", ZONE)
LATER = parse_period("2026-11-28", "2026-11-30", ZONE)


def _notices(store: Store, residents: list[Any]) -> None:
    """Four residents: voice first (called, still pending), voice then SMS delivered, SMS
    only undelivered (failed), and one without preferences (plain SMS, no notice)."""
    plans = ["voice", "voice,sms", "sms", None]
    with store.transaction() as c:
        for r, plan in zip(residents, plans, strict=True):
            if plan:
                save(c, "person", r.id_number, "*", parse(plan), now=DAY)
    for r in residents:
        payload = {"name": r.name, "period": "2026-11", "amount": 1}
        emit(store, "pension_credited", "person", r.id_number, payload, f"p:{r.id_number}")
    intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    with store.transaction() as c:
        notices.finish(c, 2, Channel.VOICE, None, "unanswered", "NOANSWER", DAY)
    channels = Channels(SETTINGS, ZONE, None)
    move_notices(store, sample_port(store), channels, DAY)
    with store.transaction() as c:
        c.execute(update(SmsMessage).where(SmsMessage.notice_id == 2).values(status="delivered"))
        c.execute(update(SmsMessage).where(SmsMessage.notice_id == 3).values(status="undelivered"))
    move_notices(store, sample_port(store), channels, DAY)
    move_notices(store, sample_port(store), channels, DAY)


def test_notices_by_channel_state_fallbacks_and_failures(store: Store, sample_data: Any) -> None:
    load_sample(store)
    _notices(store, sample_data[1][:4])
    report = build(store, PERIOD, QueueSettings(), DAY)
    figures = json.loads(render.as_json(report))["notices"]
    assert figures == {
        "by_channel": {"sms": {"delivered": 1, "failed": 1}, "voice": {"pending": 1}},
        "fallbacks": 1,
        "failed": 1,
    }
    files = render.csv_tables(report)
    rows = {r["notice_channel"]: r for r in csv.DictReader(io.StringIO(files["notices.csv"]))}
    assert (rows["sms"]["delivered"], rows["sms"]["failed"], rows["voice"]["pending"]) == ("1", "1", "1")
    totals = {r["key"]: r["value"] for r in csv.DictReader(io.StringIO(files["notice_totals.csv"]))}
    assert totals == {"notices_fallbacks": "1", "notices_failed": "1"}
    assert "通知按渠道" in render.as_html(report, "zh") and "语音外呼" in render.text(report, "zh")
    english = render.text(report, "en")
    assert "Notices that fell back" in english and "Voice call" in english
    # Another period: none of these notices.
    assert build(store, LATER, QueueSettings(), DAY).notices.as_dict() == {
        "by_channel": {},
        "fallbacks": 0,
        "failed": 0,
    }
