"""Voice messages (留言) through real Asterisk 22: the scripted caller presses 6, keys (or
skips) an ID number, and speaks (plays a built prompt) after the beep; RECORD FILE writes the
take into recordings.dir through the Asterisk root's bind mount.

The three calls run at once (each lasts about 50 s of prompts; one after another would
take the tier's budget)."""

from __future__ import annotations

import array
import asyncio
import datetime as dt
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cases.orders import get_order
from cases.tasks import voice_messages_to_orders
from core import idnumber
from core.calendar import day_hours, local_now
from core.models import VoiceMessage
from ivr.caller import place_call, wait_hung_up
from ivr.dialplan import CALLER_SPEECH
from tests.real.serving import Ivr, keypad, kinds

pytestmark = pytest.mark.real
# After the ID number's `#`: "after the tone, speak" (about 6.5 s of espeak) and the beep.
BEFORE_BEEP = "W" * 8
SPEECH = CALLER_SPEECH  # what the caller "says": 8 s of a built prompt


@dataclass(frozen=True)
class Script:
    dtmf: str
    then: str
    tail_s: float
    caller_id: str


def _wrong_id(right: str) -> str:
    return right[:17] + ("1" if right[17] != "1" else "2")


def _scripts(ivr: Ivr) -> dict[str, Script]:
    r = ivr.resident(20)
    wrong = keypad(_wrong_id(r.id_number))
    return {
        # ID number, speech, `#`, then 3 sends it while the choices are read.
        "sent": Script(f"1W6W{keypad(r.id_number)}#{BEFORE_BEEP}", "#WW3", 20, "13800000020"),
        # No ID number (a bare #), speech, and the caller hangs up while still recording.
        "hangup": Script(f"1W6W#{BEFORE_BEEP}", "", 0, "13800000021"),
        # A wrong check digit, asked again, a short entry: the message goes on without one.
        # Then "too short", "without an ID number" and "after the tone" (about 15 s) before the beep.
        "wrong_id": Script(f"1W6W{wrong}#W3305231980#{'W' * 17}", "#WW3", 20, "13800000022"),
    }


@pytest.fixture(scope="module")
def left(ivr: Ivr) -> dict[str, dict[str, Any]]:
    scripts = _scripts(ivr)

    async def one(s: Script) -> str:
        uid = await place_call(ivr.settings, s.dtmf, tail_s=s.tail_s, caller_id=s.caller_id, speak=SPEECH, then=s.then)
        await wait_hung_up(ivr.settings, uid, timeout_s=120)
        return uid

    async def all_calls() -> list[str]:
        return await asyncio.gather(*(one(s) for s in scripts.values()))

    uids = asyncio.run(all_calls())
    return {name: ivr.trail(uid) for name, uid in zip(scripts, uids, strict=True)}


def _row(ivr: Ivr, call: dict[str, Any]) -> VoiceMessage:
    with ivr.store.session() as s:
        rows = list(s.scalars(select(VoiceMessage).where(VoiceMessage.call_id == call["id"])))
        s.expunge_all()
    assert len(rows) == 1, call["trail"]
    return rows[0]


def _at(step: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(step["at"])


def _recording_span_s(call: dict[str, Any], end_kind: str) -> float:
    """From the trail: when the prompt before the beep began, to when the recording ended."""
    start = next(s for s in kinds(call, "prompt") if "msg.record" in s["prompts"])
    end = next(s for s in call["trail"] if s["kind"] == end_kind and _at(s) >= _at(start))
    return (_at(end) - _at(start)).total_seconds()


def _wav(path: Path) -> tuple[tuple[int, int, int], float, int]:
    """Format, seconds by the header, and the loudest sample."""
    with wave.open(str(path), "rb") as w:
        fmt = (w.getframerate(), w.getnchannels(), w.getsampwidth())
        seconds = w.getnframes() / w.getframerate()
        samples = array.array("h", w.readframes(w.getnframes()))
    return fmt, seconds, max((abs(x) for x in samples), default=0)


def test_a_message_with_an_id_number_is_recorded_and_sent(ivr: Ivr, left: dict[str, dict[str, Any]]) -> None:
    r = ivr.resident(20)
    call = left["sent"]
    row = _row(ivr, call)
    assert (row.ended, row.reason, row.caller_number) == ("complete", "menu", "13800000020")
    assert row.resident_id == r.id
    assert row.id_number_masked == r.id_number[:6] + "********" + r.id_number[-4:]
    assert r.id_number not in str(call)  # the trail holds no ID number
    fmt, seconds, loudest = _wav(ivr.settings.recordings.dir / row.recording)
    assert fmt == (8000, 1, 2)
    # The caller's speech was recorded: seconds of it, no longer than the recording lasted.
    assert 3 <= seconds <= _recording_span_s(call, "recorded")
    assert loudest > 1000 and row.duration_s == round(seconds)
    assert Path(row.recording).stem.isalnum() and len(Path(row.recording).stem) == 32  # a random id
    assert call["outcome"] == "completed" and kinds(call, "prompt")[-1]["prompts"] == ["msg.sent"]


def test_a_hang_up_mid_recording_keeps_what_was_said(ivr: Ivr, left: dict[str, dict[str, Any]]) -> None:
    call = left["hangup"]
    assert (call["outcome"], call["ended_by"]) == ("caller_hangup", "caller")
    row = _row(ivr, call)
    assert (row.ended, row.id_number_masked, row.resident_id) == ("hangup", None, None)
    fmt, seconds, loudest = _wav(ivr.settings.recordings.dir / row.recording)
    assert fmt == (8000, 1, 2) and loudest > 1000
    assert 3 <= seconds <= _recording_span_s(call, "outcome")
    assert [s["ended"] for s in kinds(call, "ask") if s["query"] == "save_message"] == ["hangup"]


def test_a_wrong_id_number_is_asked_again_then_the_message_goes_on_without(
    ivr: Ivr, left: dict[str, dict[str, Any]]
) -> None:
    call = left["wrong_id"]
    invalid = [(s["node"], s["reason"]) for s in kinds(call, "invalid")]
    assert invalid == [("message", "bad_check"), ("message", "too_short")]
    said = " ".join(s["text"] for s in kinds(call, "prompt"))
    assert "校验位不正确" in said and "将不带身份证号码为您留言" in said
    row = _row(ivr, call)
    assert (row.ended, row.id_number_masked, row.resident_id) == ("complete", None, None)
    assert idnumber.is_valid(ivr.resident(20).id_number)


def _due_day(left_on: dt.date, holiday: dt.date, weekdays: tuple[int, ...], days: int) -> dt.date:
    """The `days`-th working day after `left_on`, counted by hand: open weekdays, not the holiday."""
    day, counted = left_on, 0
    for _ in range(60):
        day += dt.timedelta(days=1)
        if day != holiday and day.isoweekday() in weekdays:
            counted += 1
            if counted == days:
                return day
    raise AssertionError("no due day within 60 days")


def test_the_messages_become_orders_with_their_recording_due_after_a_holiday(
    ivr: Ivr, left: dict[str, dict[str, Any]]
) -> None:
    sent, hung_up = _row(ivr, left["sent"]), _row(ivr, left["hangup"])
    left_on = local_now(ivr.settings.queue, sent.created_at).date()
    holiday = left_on + dt.timedelta(days=1)  # the message is left the day before a holiday
    queue = ivr.settings.queue.model_copy(update={"holidays": (holiday,), "workdays": ()})
    calendar = ivr.settings.model_copy(update={"queue": queue})
    made = {x.voice_message_id: x for x in voice_messages_to_orders(ivr.store, calendar)}
    days = ivr.settings.cases.deadline_days[ivr.settings.cases.voice_message_category]
    due = day_hours(queue, _due_day(left_on, holiday, tuple(queue.open_weekdays), days))[1]
    for row in (sent, hung_up):
        order = get_order(ivr.store, made[row.id].id, actor="test")
        assert (order.order.kind, order.order.status, order.order.due_at) == ("voice_message", "open", due)
        assert order.recording == row.recording and order.recording_s == row.duration_s >= 3
        assert (ivr.settings.recordings.dir / row.recording).stat().st_size > 3 * 8000 * 2  # > 3 s of 8 kHz 16-bit
    assert get_order(ivr.store, made[sent.id].id, actor="test").order.resident_id == ivr.resident(20).id
