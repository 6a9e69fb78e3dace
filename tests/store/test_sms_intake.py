"""Business events become SMS messages: taken up once, rendered, addressed, queued; or
failed with the reason. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

import sms.intake as intake_module
from core.db import Store
from core.errors import StoreUnavailable
from core.models import BusinessEvent, ResidentPhone, SmsMessage, SmsOptOut
from core.settings import SmsSettings
from sms.intake import emit, intake, quiet_until
from tests.conftest import load_sample
from tests.store.sms_support import sample_port

SETTINGS = SmsSettings()
ZONE = "Asia/Shanghai"
# 10:00 in Beijing on a Friday: outside every quiet window.
DAY = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
NIGHT = dt.datetime(2026, 11, 27, 14, 0, tzinfo=dt.UTC)  # 22:00 in Beijing


def _messages(store: Store) -> list[SmsMessage]:
    with store.session() as s:
        return list(s.scalars(select(SmsMessage).order_by(SmsMessage.event_id, SmsMessage.id)))


def _event(store: Store, key: str) -> BusinessEvent:
    with store.session() as s:
        return s.scalars(select(BusinessEvent).where(BusinessEvent.idempotency_key == key)).one()


def test_events_become_messages_for_the_registered_numbers(store: Store, sample_data: Any) -> None:
    load_sample(store)
    employers, residents = sample_data
    r, e = residents[0], employers[0]
    assert emit(
        store, "pension_credited", "person", r.id_number, {"name": r.name, "period": "2026-11", "amount": 1}, "k1"
    )
    assert not emit(store, "pension_credited", "person", r.id_number, {}, "k1")  # the key exists: nothing new
    payload = {"unit_name": e.name, "period": "2026-11", "deadline": "2026-12-15"}
    assert emit(store, "declaration_reminder", "unit", e.credit_code, payload, "k2")
    report = intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    assert (report.events, report.queued, report.messages, report.failed) == (2, 2, 2, 0)
    first, second = _messages(store)
    assert (first.recipient, first.priority, first.category) == (r.phone, 0, "resident_reminder")
    assert first.text.startswith(r.name) and first.text.endswith("【安吉人社】")
    assert (second.recipient, second.priority) == (e.contact_phone, 1)
    assert _event(store, "k1").status == "queued"
    # Nothing is claimed twice.
    assert intake(store, sample_port(store), SETTINGS, ZONE, now=DAY).events == 0


def test_an_event_that_cannot_be_sent_fails_with_its_reason(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    emit(store, "pension_credited", "person", r.id_number, {"name": r.name, "period": "2026-13", "amount": 1}, "bad")
    emit(store, "pension_stolen", "person", r.id_number, {}, "unknown")
    emit(
        store,
        "pension_credited",
        "person",
        "330523199001010000",
        {"name": "x", "period": "2026-11", "amount": 1},
        "nobody",
    )
    emit(
        store, "pension_credited", "unit", "91330523MA2XXXXXXX", {"name": "x", "period": "2026-11", "amount": 1}, "kind"
    )
    report = intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    assert (report.failed, report.messages) == (4, 0) and _messages(store) == []
    assert "field 'period' must be a month as YYYY-MM" in (_event(store, "bad").reason or "")
    assert _event(store, "unknown").reason == "unknown event type 'pension_stolen'"
    reason = _event(store, "nobody").reason or ""
    assert reason == "no registered phone for person 330523********0000"  # masked, never the full ID
    assert "is for a person, not a unit" in (_event(store, "kind").reason or "")


def test_opted_out_numbers_get_no_optional_category_but_still_service_notices(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][1]
    with store.session() as s:
        s.add(SmsOptOut(phone=r.phone))
    news = {"title": "政策", "body": "新政策发布"}
    emit(store, "policy_news", "person", r.id_number, news, "news")
    emit(store, "pension_credited", "person", r.id_number, {"name": r.name, "period": "2026-11", "amount": 5}, "p")
    report = intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    assert (report.messages, report.skipped) == (1, 1)
    assert [(m.event_type, m.status) for m in _messages(store)] == [
        ("policy_news", "skipped"),
        ("pension_credited", "queued"),
    ]


def test_batch_categories_wait_out_the_quiet_hours_and_instant_ones_do_not(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][2]
    emit(store, "policy_news", "person", r.id_number, {"title": "政策", "body": "新政策"}, "news")
    emit(
        store,
        "card_loss_confirmed",
        "person",
        r.id_number,
        {"card_tail": "1234", "reported_at": NIGHT.isoformat()},
        "c",
    )
    intake(store, sample_port(store), SETTINGS, ZONE, now=NIGHT)
    news, card = _messages(store)
    assert news.next_attempt_at == dt.datetime(2026, 11, 28, 0, 0, tzinfo=dt.UTC)  # 08:00 in Beijing
    assert card.next_attempt_at == NIGHT and card.priority == 0


def test_quiet_windows_within_a_day_and_across_midnight() -> None:
    s = SmsSettings(quiet_hours={"policy": (dt.time(12), dt.time(14)), "statement": (dt.time(22), dt.time(7))})
    noon = dt.datetime(2026, 11, 27, 4, 30, tzinfo=dt.UTC)  # 12:30 Beijing
    assert quiet_until(s, ZONE, "policy", noon) == dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.UTC)
    assert quiet_until(s, ZONE, "statement", noon) == noon
    early = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.UTC)  # 04:00 Beijing on the 27th
    assert quiet_until(s, ZONE, "statement", early) == dt.datetime(2026, 11, 26, 23, 0, tzinfo=dt.UTC)


def test_an_intake_that_fails_before_its_commit_leaves_the_event_pending_and_adds_nothing(
    store: Store, sample_data: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_sample(store)
    r = sample_data[1][3]
    emit(store, "pension_credited", "person", r.id_number, {"name": r.name, "period": "2026-11", "amount": 5}, "p")

    def broken(*_args: object) -> dt.datetime:
        raise StoreUnavailable("the database went away mid-intake")  # not the event's fault: no event fails

    with monkeypatch.context() as m:
        m.setattr(intake_module, "quiet_until", broken)  # after the event is taken, before its messages
        with pytest.raises(StoreUnavailable):
            intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    assert (_event(store, "p").status, _messages(store)) == ("pending", [])  # at once, no timeout to wait
    assert intake(store, sample_port(store), SETTINGS, ZONE, now=DAY).queued == 1
    # Expanding the same event again (made pending by hand) inserts no second message.
    with store.transaction() as c:
        c.execute(BusinessEvent.__table__.update().values(status="pending"))
    assert intake(store, sample_port(store), SETTINGS, ZONE, now=DAY).queued == 1
    assert len(_messages(store)) == 1 and _event(store, "p").status == "queued"


def test_a_resident_with_two_registered_numbers_gets_the_notice_on_both(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][4]
    with store.session() as s:
        s.add(ResidentPhone(resident_id=r.id, phone="13700000004"))
        s.add(SmsOptOut(phone="13700000004"))  # that number opted out of optional categories
    emit(store, "pension_credited", "person", r.id_number, {"name": r.name, "period": "2026-11", "amount": 5}, "p")
    emit(store, "policy_news", "person", r.id_number, {"title": "政策", "body": "新政策发布"}, "news")
    report = intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    assert (report.messages, report.skipped) == (3, 1)
    got = sorted((m.event_type, m.recipient, m.status) for m in _messages(store))
    assert got == sorted(
        [
            ("pension_credited", r.phone, "queued"),
            ("pension_credited", "13700000004", "queued"),
            ("policy_news", r.phone, "queued"),
            ("policy_news", "13700000004", "skipped"),
        ]
    )


def test_a_number_registered_in_another_form_is_sent_to_and_opted_out_in_the_stores_form(
    store: Store, sample_data: Any
) -> None:
    load_sample(store)
    r = sample_data[1][3]
    with store.session() as s:
        s.add(ResidentPhone(resident_id=r.id, phone=f"+86 {r.phone[:3]}-{r.phone[3:7]}-{r.phone[7:]}"))
        s.add(ResidentPhone(resident_id=r.id, phone="not a number"))  # nobody to send to
        s.add(SmsOptOut(phone=r.phone))  # texted TD from the handset: the store's form
    emit(store, "policy_news", "person", r.id_number, {"title": "政策", "body": "新政策发布"}, "news")
    report = intake(store, sample_port(store), SETTINGS, ZONE, now=DAY)
    assert [(m.recipient, m.status) for m in _messages(store)] == [(r.phone, "skipped")]  # one number, not two
    assert (report.messages, report.skipped) == (0, 1)
