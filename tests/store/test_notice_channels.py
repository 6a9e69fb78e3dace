"""The gateway's channel choice per resident: a notice on the first usable channel they
chose, the next one when it gives up, every attempt in one history. On SQLite and
PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, select, update

from core import notices
from core.db import Store
from core.models import Notice, NoticePreference, SmsMessage, VoiceNotice, VoiceOptOut, WeChatBinding, WeChatMessage
from core.preferences import parse, save
from core.settings import SmsSettings, WeChatSettings
from core.states import Channel, NoticeState
from sms.channels import Channels
from sms.intake import emit, intake
from sms.notice_moves import Moves, advance, move_notices
from tests.conftest import load_sample, postgres_only
from tests.store.sms_support import sample_port

SETTINGS = SmsSettings()
ZONE = "Asia/Shanghai"
DAY = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing, a Friday
WECHAT = WeChatSettings(enabled=True, app_id="wx1", app_secret="s", token="t", templates={"resident_reminder": "TPL-1"})
OPENID = "oLk3s5y0uFollowsTheAccount01"


def _pension(store: Store, r: Any, key: str = "p1") -> None:
    payload = {"name": r.name, "period": "2026-11", "amount": r.pension_balance_fen}
    assert emit(store, "pension_credited", "person", r.id_number, payload, key)


def _intake(store: Store, wechat: WeChatSettings | None = None, now: dt.datetime = DAY) -> Any:
    return intake(store, sample_port(store), SETTINGS, ZONE, now=now, wechat=wechat)


def _prefer(store: Store, r: Any, channels: str, **kwargs: Any) -> None:
    with store.transaction() as c:
        save(c, "person", r.id_number, "*", parse(channels, **kwargs), now=DAY)


def _rows(store: Store, model: Any) -> list[Any]:
    with store.session() as s:
        return list(s.scalars(select(model).order_by(model.id)))


def _notice(store: Store) -> Notice:
    (notice,) = _rows(store, Notice)
    return notice


def _history(store: Store, notice_id: int) -> list[tuple[str, str]]:
    with store.transaction() as c:
        return [(line.channel, line.outcome) for line in notices.history(c, notice_id)]


def _moves(store: Store, wechat: WeChatSettings | None = None) -> Moves:
    return move_notices(store, sample_port(store), Channels(SETTINGS, ZONE, wechat), DAY)


def test_without_preferences_an_event_is_plain_sms_as_before(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _pension(store, r)
    report = _intake(store, WECHAT)
    assert (report.queued, report.messages, report.notices) == (1, 1, 0)
    (message,) = _rows(store, SmsMessage)
    assert (message.recipient, message.notice_id) == (r.phone, None)
    assert _rows(store, Notice) == [] and _moves(store) == Moves()


def test_voice_first_queues_a_call_and_no_sms(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _prefer(store, r, "voice", language="en")
    _pension(store, r)
    report = _intake(store)
    assert (report.queued, report.messages, report.notices) == (1, 0, 1)
    assert _rows(store, SmsMessage) == []
    (call,) = _rows(store, VoiceNotice)
    notice = _notice(store)
    assert (call.notice_id, call.number, call.status, call.language) == (notice.id, r.phone, "queued", "en")
    assert call.text == notice.text and r.name in call.text
    assert call.text.startswith(f"Dear {r.name}, your pension of CNY ")  # the English text they chose
    assert (notice.plan, notice.channel, notice.state, notice.fallbacks) == ("voice,sms", "voice", "pending", 0)
    assert _history(store, notice.id) == [("voice", "queued")]


def test_when_the_call_gives_up_the_sms_goes_with_both_in_the_history(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _prefer(store, r, "voice,sms", voice_number="0572-5123456")
    _pension(store, r)
    _intake(store)
    notice = _notice(store)
    assert _rows(store, VoiceNotice)[0].number != r.phone  # the number they chose, not the mobile
    with store.transaction() as c:
        assert notices.finish(c, notice.id, Channel.VOICE, None, "unanswered", "NOANSWER, attempt 3 of 3")
    assert _moves(store).moved == 1
    (message,) = _rows(store, SmsMessage)
    assert (message.notice_id, message.recipient, message.status) == (notice.id, r.phone, "queued")
    moved = _notice(store)
    assert (moved.channel, moved.step, moved.fallbacks, moved.state) == ("sms", 1, 1, "pending")
    # Delivered by SMS: the chore ends the notice.
    with store.transaction() as c:
        c.execute(update(SmsMessage).values(status="delivered"))
    assert _moves(store).delivered == 1
    assert _notice(store).state == NoticeState.DELIVERED
    assert _history(store, notice.id) == [
        ("voice", "queued"),
        ("voice", "unanswered"),
        ("sms", "queued"),
        ("sms", "delivered"),
    ]


def test_wechat_not_bound_is_skipped_then_sms(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r, bound = sample_data[1][0], sample_data[1][1]
    _prefer(store, r, "wechat")
    _prefer(store, bound, "wechat")
    with store.transaction() as c:
        c.execute(insert(WeChatBinding).values(subject_id=bound.id_number, openid=OPENID, bound_at=DAY))
    _pension(store, r, "p1")
    _pension(store, bound, "p2")
    _intake(store, WECHAT)
    first, second = _rows(store, Notice)
    assert (first.channel, first.fallbacks, second.channel) == ("sms", 1, "wechat")
    with store.transaction() as c:
        (skip, _queued) = notices.history(c, first.id)
    assert (skip.channel, skip.outcome, skip.detail) == ("wechat", "skipped", "not bound to WeChat")
    (message,) = _rows(store, SmsMessage)
    assert (message.recipient, message.notice_id) == (r.phone, first.id)
    (wechat,) = _rows(store, WeChatMessage)
    assert (wechat.openid, wechat.notice_id) == (OPENID, second.id)


def test_wechat_off_or_without_a_template_is_skipped_with_the_reason(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _prefer(store, r, "wechat,sms")
    with store.transaction() as c:
        c.execute(insert(WeChatBinding).values(subject_id=r.id_number, openid=OPENID, bound_at=DAY))
    _pension(store, r)
    _intake(store, WECHAT.model_copy(update={"templates": {}}))
    with store.transaction() as c:
        (skip, _queued) = notices.history(c, _notice(store).id)
    assert skip.detail == "no WeChat template for resident_reminder (wechat.templates)"
    assert [m.notice_id for m in _rows(store, SmsMessage)] == [_notice(store).id]


def test_a_bad_preference_row_goes_by_sms_with_the_reason(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    with store.transaction() as c:  # as the business system might write it
        c.execute(
            insert(NoticePreference).values(
                subject_kind="person", subject_id=r.id_number, category="*", channels="fax,voice", updated_at=DAY
            )
        )
    _pension(store, r)
    _intake(store)
    notice = _notice(store)
    assert notice.plan == "sms" and "unknown channel 'fax'" in (notice.reason or "")
    assert _rows(store, VoiceNotice) == []
    assert [m.notice_id for m in _rows(store, SmsMessage)] == [notice.id]
    assert _history(store, notice.id) == [("sms", "bad_preference"), ("sms", "queued")]


def test_a_number_that_asked_not_to_be_called_is_skipped(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _prefer(store, r, "voice")
    with store.transaction() as c:
        c.execute(insert(VoiceOptOut).values(phone=r.phone, at=DAY, source="call"))
    _pension(store, r)
    _intake(store)
    assert _rows(store, VoiceNotice) == [] and len(_rows(store, SmsMessage)) == 1
    assert _history(store, _notice(store).id) == [("voice", "skipped"), ("sms", "queued")]


def test_personal_quiet_hours_hold_a_batch_notice_but_not_a_reminder(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _prefer(store, r, "sms", quiet_start="09:00", quiet_end="12:00")
    _pension(store, r)  # resident_reminder: instant, never held
    payload = {"title": "医保缴费提醒", "body": "城乡居民医保集中缴费期为9月1日至12月31日。"}
    emit(store, "policy_news", "person", r.id_number, payload, "news")
    _intake(store)
    reminder, news = sorted(_rows(store, SmsMessage), key=lambda m: m.category != "resident_reminder")
    assert reminder.next_attempt_at == DAY
    assert news.next_attempt_at == dt.datetime(2026, 11, 27, 4, 0, tzinfo=dt.UTC)  # 12:00 in Beijing


def test_when_every_channel_gave_up_the_notice_fails(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _prefer(store, r, "sms,voice")
    _pension(store, r)
    _intake(store)
    with store.transaction() as c:
        c.execute(update(SmsMessage).values(status="undelivered"))
    moves = _moves(store)
    assert (moves.gave_up, moves.moved) == (1, 1) and _notice(store).channel == "voice"
    with store.transaction() as c:
        notices.finish(c, _notice(store).id, Channel.VOICE, None, "unanswered", "BUSY x3")
    assert _moves(store).failed == 1
    notice = _notice(store)
    assert notice.state == NoticeState.FAILED and "BUSY x3" in (notice.reason or "")
    assert len(_rows(store, SmsMessage)) == 1  # never texted twice


# Row locks: two gateways share one PostgreSQL.
@postgres_only
def test_two_chores_racing_move_a_notice_once(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _prefer(store, r, "voice")
    _pension(store, r)
    _intake(store)
    notice_id = _notice(store).id
    with store.transaction() as c:
        notices.finish(c, notice_id, Channel.VOICE, None, "unanswered", "NOANSWER")
    channels = Channels(SETTINGS, ZONE, None)
    first, second = Moves(), Moves()
    with store.transaction() as one:
        advance(one, sample_port(store), channels, first, DAY)  # holds the notice's row lock
        with store.transaction() as two:
            advance(two, sample_port(store), channels, second, DAY)
    assert (first.moved, second.moved) == (1, 0)
    assert _moves(store) == Moves()
    assert len(_rows(store, SmsMessage)) == 1
    assert _history(store, notice_id).count(("sms", "queued")) == 1
