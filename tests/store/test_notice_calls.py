"""The notice dialler's rules over the store: the cap, one call per number, opt-outs,
attempts and their spacing, the trunk down, lost calls, and what the answered call ends as.
The calls themselves (real Asterisk, SIPp answering) are tests/real/test_notice_calls.py.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import doctest
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

import ivr.notice_calls
from core import notices
from core.db import Store
from core.models import AuditEntry, Notice, Resident, SmsMessage, VoiceNotice, VoiceOptOut
from core.preferences import parse, save
from core.settings import AmiSettings, NoticeSettings, Settings, SmsSettings
from core.sip_settings import SipSettings, SipTrunk
from core.states import NoticeState, VoiceState
from ivr.notice_calls import (
    DialResult,
    NoticeDialler,
    claim,
    end_answered,
    reclaim_stale,
    record_dial,
    take_answered,
)
from sms.channels import Channels
from sms.notice_moves import move_notices
from tests.conftest import load_sample
from tests.store.sms_support import queue_voice_notices, sample_port

ZONE = "Asia/Shanghai"
DAY = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing
RULES = NoticeSettings(max_calls=2, max_attempts=2, retry_after_s=600, trunk_retry_s=60, reclaim_after_s=600)


def _queue_calls(store: Store, residents: list[Any], number: str | None = None) -> list[int]:
    """A pension notice by call (then SMS) for each resident; `number`: all to that one."""
    load_sample(store)
    queue_voice_notices(store, ZONE, residents, "p", DAY, number)
    return [v.id for v in _calls(store)]


def _calls(store: Store) -> list[VoiceNotice]:
    with store.session() as s:
        return list(s.scalars(select(VoiceNotice).order_by(VoiceNotice.id)))


def _call(store: Store, call_id: int) -> VoiceNotice:
    with store.session() as s:
        found = s.get(VoiceNotice, call_id)
        assert found is not None
        return found


def _notice(store: Store, notice_id: int) -> Notice:
    with store.session() as s:
        found = s.get(Notice, notice_id)
        assert found is not None
        return found


def _history(store: Store, notice_id: int) -> list[tuple[str, str]]:
    with store.transaction() as c:
        return [(line.channel, line.outcome) for line in notices.history(c, notice_id)]


def _moves(store: Store) -> Any:
    return move_notices(store, sample_port(store), Channels(SmsSettings(), ZONE, None), DAY)


def test_the_module_examples() -> None:
    assert doctest.testmod(ivr.notice_calls).failed == 0


def test_the_cap_and_one_call_per_number(store: Store, sample_data: Any) -> None:
    residents = sample_data[1][:3]
    ids = _queue_calls(store, residents)
    first = claim(store, RULES, "d1", DAY, zone=ZONE)
    assert [c.id for c in first] == ids[:2]  # two at once (max_calls), oldest first
    assert claim(store, RULES, "d1", DAY, zone=ZONE) == []  # the cap holds until one ends
    assert {_call(store, i).status for i in ids} == {"calling", "queued"}
    assert first[0].text.startswith(f"{residents[0].name}您好") and first[0].number == residents[0].phone


def test_two_notices_to_one_number_are_never_called_at_once(store: Store, sample_data: Any) -> None:
    ids = _queue_calls(store, sample_data[1][:2], number="0572-5123456")
    (only,) = claim(store, RULES, "d1", DAY, zone=ZONE)
    assert only.id == ids[0] and claim(store, RULES, "d1", DAY, zone=ZONE) == []
    # The database keeps it too, whoever writes: a second call to the number under way fails.
    with pytest.raises(IntegrityError), store.transaction() as c:
        c.execute(VoiceNotice.__table__.update().where(VoiceNotice.id == ids[1]).values(status="calling"))
    record_dial(store, DialResult(ids[0], "NOANSWER", "19"), RULES, DAY)
    (then,) = claim(store, RULES, "d1", DAY, zone=ZONE)
    assert then.id == ids[1]


def test_busy_then_no_answer_gives_up_and_the_sms_follows(store: Store, sample_data: Any) -> None:
    r = sample_data[1][0]
    (call_id,) = _queue_calls(store, [r])
    claim(store, RULES, "d1", DAY, zone=ZONE)
    assert record_dial(store, DialResult(call_id, "BUSY", "17"), RULES, DAY) == "busy"
    queued = _call(store, call_id)
    assert (queued.status, queued.attempts, queued.last_result) == ("queued", 1, "busy")
    assert queued.next_attempt_at == DAY + dt.timedelta(seconds=600)
    assert claim(store, RULES, "d1", DAY + dt.timedelta(seconds=599), zone=ZONE) == []  # spaced out
    later = DAY + dt.timedelta(seconds=600)
    assert len(claim(store, RULES, "d1", later, zone=ZONE)) == 1
    assert record_dial(store, DialResult(call_id, "NOANSWER", "19"), RULES, later) == "unanswered"
    ended = _call(store, call_id)
    assert (ended.status, ended.attempts) == ("unanswered", 1)
    notice = _notice(store, ended.notice_id)
    assert (notice.state, notice.reason) == (NoticeState.ADVANCE, "voice: 2 calls, not reached")
    assert _moves(store).moved == 1
    with store.session() as s:
        (sms,) = s.scalars(select(SmsMessage))
    assert (sms.notice_id, sms.recipient) == (notice.id, r.phone)
    assert _history(store, notice.id) == [
        ("voice", "queued"),
        ("voice", "busy"),
        ("voice", "no_answer"),
        ("voice", "unanswered"),
        ("sms", "queued"),
    ]
    with store.transaction() as c:
        details = [line.detail for line in notices.history(c, notice.id)]
    assert details[1] == "BUSY (cause 17); call 2 in 600 s" and details[2] == "NOANSWER (cause 19)"


def test_the_trunk_down_is_no_attempt_and_is_said_once(store: Store, sample_data: Any) -> None:
    (call_id,) = _queue_calls(store, sample_data[1][:1])
    for minute in range(3):
        at = DAY + dt.timedelta(minutes=minute)
        assert len(claim(store, RULES, "d1", at, zone=ZONE)) == 1
        assert record_dial(store, DialResult(call_id, "CHANUNAVAIL", "0"), RULES, at) == "waiting"
    waiting = _call(store, call_id)
    assert (waiting.status, waiting.attempts) == ("queued", 0)
    assert waiting.next_attempt_at == DAY + dt.timedelta(minutes=3)
    assert _history(store, waiting.notice_id) == [("voice", "queued"), ("voice", "waiting")]
    # A wrong number (cause 1, unallocated) is the resident's attempt, not the trunk's.
    claim(store, RULES, "d1", DAY + dt.timedelta(minutes=3), zone=ZONE)
    assert record_dial(store, DialResult(call_id, "CHANUNAVAIL", "1"), RULES, DAY) == "failed"
    assert _call(store, call_id).attempts == 1


def test_a_number_that_opted_out_is_not_called(store: Store, sample_data: Any) -> None:
    r = sample_data[1][0]
    (call_id,) = _queue_calls(store, [r])
    with store.transaction() as c:
        c.execute(insert(VoiceOptOut).values(phone=r.phone, at=DAY, source="agent"))
    assert claim(store, RULES, "d1", DAY, zone=ZONE) == []
    call = _call(store, call_id)
    assert call.status == VoiceState.OPTED_OUT
    assert _notice(store, call.notice_id).state == NoticeState.ADVANCE
    assert _moves(store).moved == 1  # by SMS instead


def test_what_the_answered_call_ends_as(store: Store, sample_data: Any) -> None:
    residents = sample_data[1][:4]
    ids = _queue_calls(store, residents)
    rules = RULES.model_copy(update={"max_calls": 4})
    claim(store, rules, "d1", DAY, zone=ZONE)
    taken = [take_answered(store, i, DAY) for i in ids]
    assert all(t is not None for t in taken)
    confirmed, heard, opted, early = (t for t in taken if t is not None)
    assert end_answered(store, confirmed, VoiceState.CONFIRMED, "pressed 2, heard 1 time", rules, DAY) == "confirmed"
    assert end_answered(store, heard, VoiceState.HEARD, "no key, heard 1 time", rules, DAY) == "heard"
    assert end_answered(store, opted, VoiceState.OPTED_OUT, "pressed 9", rules, DAY) == "opted_out"
    assert end_answered(store, early, VoiceState.UNANSWERED, "hung up during the opening", rules, DAY) == "hung_up"
    states = [(_call(store, i).status, _notice(store, _call(store, i).notice_id).state) for i in ids]
    assert states == [
        ("confirmed", NoticeState.DELIVERED),
        ("heard", NoticeState.HEARD),
        ("opted_out", NoticeState.ADVANCE),
        ("queued", NoticeState.PENDING),  # hung up before the notice: called again later
    ]
    with store.session() as s:
        assert s.get(VoiceOptOut, residents[2].phone) is not None
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "change:voice_optout"))
        holder = s.scalar(select(Resident.id).where(Resident.id_number == residents[2].id_number))
    assert (entry.actor, entry.channel, entry.resident_id) == ("ivr", "ivr", holder)
    assert residents[2].phone not in entry.detail and "pressed 9" in entry.detail
    assert _history(store, _call(store, ids[0]).notice_id) == [
        ("voice", "queued"),
        ("voice", "answered"),
        ("voice", "confirmed"),
    ]
    # The dialing half's ANSWER after the script ended the call changes nothing.
    assert record_dial(store, DialResult(ids[0], "ANSWER", "16"), rules, DAY) == ""
    # Ended calls are not taken again (a replayed AGI request reads nothing).
    assert take_answered(store, ids[0], DAY) is None


def test_answered_but_never_played_counts_as_an_attempt(store: Store, sample_data: Any) -> None:
    (call_id,) = _queue_calls(store, sample_data[1][:1])
    claim(store, RULES, "d1", DAY, zone=ZONE)
    # The notice script never took the call (FastAGI down): the dialing half says ANSWER.
    assert record_dial(store, DialResult(call_id, "ANSWER", "16"), RULES, DAY) == "not_played"
    assert (_call(store, call_id).status, _call(store, call_id).attempts) == ("queued", 1)


def test_a_call_whose_dialler_died_is_queued_again_as_an_attempt(store: Store, sample_data: Any) -> None:
    (call_id,) = _queue_calls(store, sample_data[1][:1])
    claim(store, RULES, "d1", DAY, zone=ZONE)
    assert reclaim_stale(store, RULES, DAY + dt.timedelta(seconds=599)) == 0
    assert reclaim_stale(store, RULES, DAY + dt.timedelta(seconds=601)) == 1
    call = _call(store, call_id)
    assert (call.status, call.attempts, call.last_result) == ("queued", 1, "lost")


def _settings(tmp_path: Path, ami_port: int) -> Settings:
    trunk = SipTrunk(name="carrier", match=("127.0.0.2",), host="127.0.0.2", outbound=True)
    return Settings(
        sip=SipSettings(trunks=(trunk,)),
        ami=AmiSettings(host="127.0.0.1", port=ami_port, secret="x"),
        notices=RULES.model_copy(update={"speech_dir": tmp_path / "speech"}),
    )


def test_outside_calling_hours_nothing_is_placed(store: Store, sample_data: Any, tmp_path: Path) -> None:
    (call_id,) = _queue_calls(store, sample_data[1][:1])
    dialler = NoticeDialler(_settings(tmp_path, 1), store, asyncio.Event())
    evening = dt.datetime(2026, 11, 27, 12, 30, tzinfo=dt.UTC)  # 20:30 in Beijing
    assert asyncio.run(dialler.tick(evening)) == 0
    assert _call(store, call_id).status == "queued"


def test_with_asterisk_away_a_call_waits_unplaced_and_its_speech_is_kept(
    store: Store, sample_data: Any, tmp_path: Path
) -> None:
    (call_id,) = _queue_calls(store, sample_data[1][:1])
    settings = _settings(tmp_path, 1)  # nothing listens on port 1

    async def one_round() -> int:
        dialler = NoticeDialler(settings, store, asyncio.Event())
        placed = await dialler.tick(DAY)
        await asyncio.gather(*dialler.placing)
        dialler.speech.close()
        return placed

    assert asyncio.run(one_round()) == 1
    call = _call(store, call_id)
    assert (call.status, call.attempts, call.last_result) == ("queued", 0, "NOT_PLACED")
    assert _history(store, call.notice_id) == [("voice", "queued"), ("voice", "waiting")]
    made = sorted(p.name for p in (tmp_path / "speech").iterdir())
    assert len(made) == 2 and all(name.startswith("zh-") and name.endswith(".wav") for name in made)


def test_a_call_waits_out_the_residents_own_quiet_hours(store: Store, sample_data: Any) -> None:
    r = sample_data[1][0]
    (call_id,) = _queue_calls(store, [r])
    # Set after the notice was queued: the call keeps the choice as it is now, and holds
    # it for pension_credited, an instant category an SMS would not hold.
    with store.transaction() as c:
        save(c, "person", r.id_number, "*", parse("voice,sms", quiet_start="09:30", quiet_end="11:00"), now=DAY)
    assert claim(store, RULES, "d1", DAY, zone=ZONE) == []  # 10:00 in Beijing
    waiting = _call(store, call_id)
    assert (waiting.status, waiting.attempts) == ("queued", 0)
    assert waiting.next_attempt_at == dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.UTC)  # 11:00 there
    assert _history(store, waiting.notice_id)[-1] == ("voice", "waiting")
    (placed,) = claim(store, RULES, "d1", dt.datetime(2026, 11, 27, 3, 0, tzinfo=dt.UTC), zone=ZONE)
    assert placed.id == call_id


def test_a_call_to_a_number_the_policy_refuses_is_never_placed(store: Store, sample_data: Any, tmp_path: Path) -> None:
    # Queued to a good number, then changed behind the platform's back (a path that skipped
    # the checks where numbers enter): the dialler's own check gives the voice channel up.
    (call_id,) = _queue_calls(store, sample_data[1][:1])
    with store.transaction() as c:
        c.execute(update(VoiceNotice).where(VoiceNotice.id == call_id).values(number="+8821612345678"))
    settings = _settings(tmp_path, 1)  # no AMI either: the refusal comes before it is asked

    async def one_round() -> None:
        dialler = NoticeDialler(settings, store, asyncio.Event())
        await dialler.tick(DAY)
        await asyncio.gather(*dialler.placing)
        dialler.speech.close()

    asyncio.run(one_round())
    call = _call(store, call_id)
    assert (call.status, call.attempts) == ("unanswered", 0)
    with store.transaction() as c:
        last = notices.history(c, call.notice_id)[-1]
    assert (last.channel, last.outcome) == ("voice", "failed") and "number refused (" in last.detail
    with store.session() as s:
        refusals = s.scalars(select(AuditEntry).where(AuditEntry.action == "refuse:destination")).all()
    assert [(e.actor, e.channel) for e in refusals] == [("dialler", "ivr")]
