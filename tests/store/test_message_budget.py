"""How many voice messages a calling number left today (recordings.messages_per_number_day),
counted in the store on SQLite and PostgreSQL: per number in its stored form, per local day
of the hotline (Asia/Shanghai, UTC+8), callers without a number together."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.db import Store
from core.models import VoiceMessage
from core.settings import RecordingSettings
from hotline.wiring import business_port
from ivr.messages import VoiceMessages
from tests.conftest import make_settings

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
NOON = dt.datetime(2026, 12, 2, 12, 0, tzinfo=SHANGHAI)


def _voice(store: Store, tmp_path: Path, db_url: str, per_day: int = 3) -> VoiceMessages:
    settings = make_settings(tmp_path, db_url)
    recordings = RecordingSettings(dir=tmp_path, messages_per_number_day=per_day)
    return VoiceMessages(store, business_port(settings, store), recordings, "Asia/Shanghai")


def _left(store: Store, number: str | None, *at: dt.datetime) -> None:
    with store.session() as s:
        s.add_all(
            # In UTC, as the IVR writes them (SQLite keeps the wall time of whatever zone it is given).
            VoiceMessage(
                call_id=f"c-{number}-{i}",
                caller_number=number,
                recording=f"messages/x/{i}.wav",
                created_at=t.astimezone(dt.UTC),
            )
            for i, t in enumerate(at)
        )


def test_a_numbers_messages_are_counted_in_the_local_day(store: Store, tmp_path: Path, db_url: str) -> None:
    voice = _voice(store, tmp_path, db_url)
    midnight = dt.datetime(2026, 12, 2, 0, 0, tzinfo=SHANGHAI)  # 16:00 UTC the day before
    _left(store, "13812345678", midnight - dt.timedelta(seconds=1), midnight, NOON)
    _left(store, "13987654321", NOON)
    # Today's two, whatever form the carrier sends the number in.
    for form in ("13812345678", "+8613812345678", "008613812345678"):
        assert voice.left_today(form, NOON) == 2
    assert voice.may_leave("13812345678", NOON)
    _left(store, "13812345678", NOON + dt.timedelta(hours=11, minutes=59))  # 23:59 local
    assert voice.left_today("13812345678", NOON) == 3
    assert not voice.may_leave("+8613812345678", NOON)
    # The next local day begins a fresh budget; another number has its own.
    assert voice.may_leave("13812345678", NOON + dt.timedelta(hours=12))
    assert voice.left_today("13987654321", NOON) == 1


def test_callers_without_a_number_share_one_budget(store: Store, tmp_path: Path, db_url: str) -> None:
    voice = _voice(store, tmp_path, db_url, per_day=2)
    _left(store, None, NOON, NOON)
    for withheld in (None, "", "anonymous", "12345"):  # none, a withheld id, no phone number
        assert voice.left_today(withheld, NOON) == 2 and not voice.may_leave(withheld, NOON)
    assert voice.may_leave("13812345678", NOON)


def test_no_limit_when_the_setting_is_0(store: Store, tmp_path: Path, db_url: str) -> None:
    voice = _voice(store, tmp_path, db_url, per_day=0)
    _left(store, "13812345678", *([NOON] * 5))
    assert voice.left_today("13812345678", NOON) == 5 and voice.may_leave("13812345678", NOON)
