"""The core of notices over each resident's channels: preferences kept and refused, and a
notice's step ended only by the channel it is on."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert, select

from core import notices, preferences
from core.db import Store
from core.models import BusinessEvent, Notice, utcnow
from core.preferences import PreferenceRefused
from core.states import Channel, NoticeState

PERSON = "330523199411187594"


def test_a_preference_is_kept_per_category_and_the_star_row_covers_the_rest(store: Store) -> None:
    with store.transaction() as c:
        preferences.save(
            c, "person", PERSON, "*", preferences.parse("voice, sms", quiet_start="21:30", quiet_end="07:00")
        )
        preferences.save(c, "person", PERSON, "policy", preferences.parse("wechat", language="en"))
        preferences.save(c, "person", PERSON, "*", preferences.parse("sms,voice", source="ivr"))  # replaces
    with store.transaction() as c:
        rows = preferences.show(c, "person", PERSON)
    everything = preferences.choose(rows, "resident_reminder")
    assert isinstance(everything, preferences.Preference)
    assert everything.channels == (Channel.SMS, Channel.VOICE) and everything.source == "ivr"
    assert everything.quiet is None
    policy = preferences.choose(rows, "policy")
    assert isinstance(policy, preferences.Preference)
    assert policy.channels == (Channel.WECHAT,) and policy.language == "en"
    assert preferences.choose({}, "policy") == preferences.DEFAULT
    with store.transaction() as c:
        assert preferences.forget(c, "person", PERSON, "policy") == 1
        assert "policy" not in preferences.show(c, "person", PERSON)


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ({"channels": "fax"}, "unknown channel 'fax': the channels are sms, voice, wechat"),
        ({"channels": ""}, "no channel given"),
        ({"channels": "sms sms"}, "named twice"),
        ({"channels": "sms", "language": "fr"}, "the languages are zh, en"),
        ({"channels": "sms", "quiet_start": "21:00"}, "both a start and an end"),
        ({"channels": "sms", "quiet_start": "25:00", "quiet_end": "07:00"}, "write HH:MM"),
        ({"channels": "voice", "voice_number": "call me"}, "not a phone number"),
    ],
)
def test_a_preference_that_cannot_be_kept_is_refused_saying_what_is_allowed(
    given: dict[str, str], refusal: str
) -> None:
    with pytest.raises(PreferenceRefused, match=refusal):
        preferences.parse(**given)


def test_a_row_the_business_system_wrote_badly_is_read_as_its_reason(store: Store) -> None:
    with store.transaction() as c:
        c.execute(
            insert(preferences.TABLE).values(
                subject_kind="person", subject_id=PERSON, category="*", channels="pigeon", updated_at=utcnow()
            )
        )
    with store.transaction() as c:
        chosen = preferences.choose(preferences.show(c, "person", PERSON), "medical")
    assert chosen == "preference *: unknown channel 'pigeon': the channels are sms, voice, wechat"


def _notice(store: Store, channel: Channel) -> int:
    with store.transaction() as c:
        event = c.execute(
            insert(BusinessEvent.__table__).values(
                event_type="pension_credited",
                subject_kind="person",
                subject_id=PERSON,
                payload={},
                idempotency_key=f"k-{channel}",
                created_at=utcnow(),
            )
        ).inserted_primary_key[0]
        return int(
            c.execute(
                insert(Notice.__table__).values(
                    event_id=event,
                    event_type="pension_credited",
                    category="resident_reminder",
                    subject_kind="person",
                    subject_id=PERSON,
                    plan=f"{channel},sms",
                    step=0,
                    channel=channel,
                    state=NoticeState.PENDING,
                    fallbacks=0,
                    language="zh",
                    text="您的养老金已到账",
                    created_at=utcnow(),
                )
            ).inserted_primary_key[0]
        )


def test_only_the_channel_a_notice_is_on_ends_its_step_and_every_attempt_is_in_its_history(store: Store) -> None:
    notice_id = _notice(store, Channel.VOICE)
    at = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)
    with store.transaction() as c:
        notices.add_step(c, notice_id, Channel.VOICE, "busy", "BUSY, attempt 1 of 3", at)
        assert not notices.finish(c, notice_id, Channel.SMS, NoticeState.DELIVERED, "delivered", now=at)
        assert notices.finish(c, notice_id, Channel.VOICE, None, "unanswered", "NOANSWER, attempt 3 of 3", now=at)
        # Given up already: a late confirmation of the same channel changes nothing.
        assert not notices.finish(c, notice_id, Channel.VOICE, NoticeState.DELIVERED, "confirmed", now=at)
    with store.transaction() as c:
        state, reason = c.execute(select(Notice.state, Notice.reason).where(Notice.id == notice_id)).one()
        lines = notices.history(c, notice_id)
    assert state == NoticeState.ADVANCE and reason == "voice: NOANSWER, attempt 3 of 3"
    assert [(line.channel, line.outcome) for line in lines] == [
        ("voice", "busy"),
        ("sms", "delivered"),
        ("voice", "unanswered"),
        ("voice", "confirmed"),
    ]


def test_a_confirmed_call_ends_the_notice(store: Store) -> None:
    notice_id = _notice(store, Channel.VOICE)
    with store.transaction() as c:
        assert notices.finish(c, notice_id, Channel.VOICE, NoticeState.DELIVERED, "confirmed", "pressed 2")
        with pytest.raises(ValueError, match="not failed"):
            notices.finish(c, notice_id, Channel.VOICE, NoticeState.FAILED, "x")
    with store.transaction() as c:
        state, final_at = c.execute(select(Notice.state, Notice.final_at).where(Notice.id == notice_id)).one()
    assert state == NoticeState.DELIVERED and final_at is not None
