"""The IVR's notice settings against the store (ivr/notice_settings.py), on SQLite and
PostgreSQL: what a change keeps of the row, rows the gateway cannot use, refusals that write
nothing, the calling number's notice calls, and the audit entry of each."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from core.db import Store
from core.models import AuditEntry, NoticePreference, VoiceOptOut, WeChatBinding, utcnow
from core.sample import SampleResident
from ivr.notice_settings import Caller, NoNumberToCall, NoticeSettings, WeChatNotBound
from tests.conftest import load_sample

CALL = "call-prefs-1"


@pytest.fixture
def settings(store: Store) -> NoticeSettings:
    load_sample(store)
    return NoticeSettings(store)


def who(r: SampleResident) -> Caller:
    return Caller(r.id_number, CALL)


def put_row(store: Store, r: SampleResident, category: str = "*", channels: str = "voice,sms", **more: str) -> None:
    values = {"language": "zh", "source": "console", **more}
    with store.transaction() as c:
        c.execute(
            insert(NoticePreference).values(
                subject_kind="person",
                subject_id=r.id_number,
                category=category,
                channels=channels,
                updated_at=utcnow(),
                **values,
            )
        )


def row(store: Store, r: SampleResident, category: str = "*") -> NoticePreference | None:
    with store.session() as s:
        found = s.scalars(
            select(NoticePreference).where(
                NoticePreference.subject_id == r.id_number, NoticePreference.category == category
            )
        ).one_or_none()
        s.expunge_all()
        return found


def actions(store: Store) -> list[tuple[str, str]]:
    with store.session() as s:
        return [(a.actor, a.action) for a in s.scalars(select(AuditEntry).where(AuditEntry.call_id == CALL))]


def test_no_row_reads_as_sms_in_chinese_and_the_read_is_audited(
    store: Store, settings: NoticeSettings, sample_data
) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][0]
    assert settings.read(who(r)) == {
        "channels": "sms",
        "language": "zh",
        "wechat": False,
        "voice_calls": True,
        "others": 0,
    }
    assert actions(store) == [("ivr", "read:preferences")]


def test_a_change_keeps_quiet_hours_the_number_to_call_and_other_categories(
    store: Store, settings: NoticeSettings, sample_data
) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][1]
    put_row(store, r, quiet_start="21:00", quiet_end="08:00", voice_number="13900001111")
    put_row(store, r, category="pension", channels="sms")
    answer = settings.change(who(r), language="en")
    assert (answer["channels"], answer["language"], answer["others"]) == ("voice,sms", "en", 1)
    kept = row(store, r)
    assert kept is not None
    assert (kept.channels, kept.language, kept.quiet_start, kept.quiet_end) == ("voice,sms", "en", "21:00", "08:00")
    assert (kept.voice_number, kept.source) == ("13900001111", "ivr")
    pension = row(store, r, "pension")
    assert pension is not None and pension.channels == "sms"
    assert actions(store) == [("ivr", "read:preferences"), ("ivr", "change:preferences")]
    with store.session() as s:
        detail = s.scalar(select(AuditEntry.detail).where(AuditEntry.action == "change:preferences"))
    assert detail is not None and "13900001111" not in detail and r.id_number not in detail


def test_a_row_the_gateway_cannot_use_reads_as_sms_and_a_change_replaces_it(
    store: Store, settings: NoticeSettings, sample_data
) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][2]
    put_row(store, r, channels="fax")
    assert settings.read(who(r))["channels"] == "sms"
    settings.change(who(r), channels="voice,sms")
    replaced = row(store, r)
    assert replaced is not None and replaced.channels == "voice,sms"


def test_wechat_without_a_binding_writes_nothing_and_with_one_is_kept(
    store: Store, settings: NoticeSettings, sample_data
) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][3]
    with pytest.raises(WeChatNotBound):
        settings.change(who(r), channels="wechat,sms")
    assert row(store, r) is None
    assert ("ivr", "change:preferences") not in actions(store)
    with store.transaction() as c:
        c.execute(insert(WeChatBinding).values(subject_id=r.id_number, openid="o-store-1", bound_at=utcnow()))
    answer = settings.change(who(r), channels="wechat,sms")
    assert answer["wechat"] is True and answer["channels"] == "wechat,sms"


def test_notice_calls_to_the_number_they_ring_stop_and_are_allowed_again(
    store: Store, settings: NoticeSettings, sample_data
) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][4]
    # The registered phone, the one notices ring (the phone a call comes from plays no part).
    assert settings.allow_calls(who(r), allowed=False)["voice_calls"] is False
    assert settings.allow_calls(who(r), allowed=False)["voice_calls"] is False  # already stopped: still
    with store.session() as s:
        assert s.scalars(select(VoiceOptOut.phone)).all() == [r.phone]
    assert settings.allow_calls(who(r), allowed=True)["voice_calls"] is True
    with store.session() as s:
        assert s.scalar(select(VoiceOptOut.phone)) is None
    assert actions(store).count(("ivr", "change:voice_optout")) == 3


def test_a_number_to_call_in_their_row_is_the_one_stopped(store: Store, settings: NoticeSettings, sample_data) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][5]
    put_row(store, r, voice_number="0572-5123456")
    assert settings.allow_calls(who(r), allowed=False)["voice_calls"] is False
    with store.session() as s:
        assert s.scalars(select(VoiceOptOut.phone)).all() == ["05725123456"]


def test_without_a_number_on_record_notice_calls_cannot_be_set(store: Store, settings: NoticeSettings) -> None:
    nobody = Caller("330523199001010011", CALL)  # not one of the platform's residents
    assert settings.read(nobody)["voice_calls"] is None
    with pytest.raises(NoNumberToCall):
        settings.allow_calls(nobody, allowed=False)
    assert ("ivr", "change:voice_optout") not in actions(store)
