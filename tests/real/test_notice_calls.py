"""Notices by phone through real Asterisk: `hotline serve`'s dialler calls the resident out
through the trunk to the test carrier (SIPp as the resident's side), the notice script reads
the notice, and the resident's keys (RFC 4733 from SIPp) end it. The rules behind it (cap,
spacing, one call per number) have store tests; here is what only real calls can show."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from core import notices
from core.db import Store
from core.models import Notice, SmsMessage, VoiceNotice, utcnow
from core.settings import Settings, SmsSettings
from core.states import NoticeState
from ivr.asterisk import LocalAsterisk
from sms.channels import Channels
from sms.notice_moves import move_notices
from tests.real.serving import Ivr, serving
from tests.real.sip_setup import CARRIER_UAS_PORT
from tests.sip_peers.sipp import CarrierUas, UasMode, qualify_trunk
from tests.store.sms_support import queue_voice_notices, sample_port

pytestmark = pytest.mark.real
FINAL = ("confirmed", "heard", "unanswered", "opted_out", "cancelled")


def _queue_notice(store: Store, zone: str, r: Any, key: str) -> int:
    """A pension notice for `r`, who chose a call first, then SMS; due now whatever the SMS
    quiet hours of the hour say (they have their own tests)."""
    queue_voice_notices(store, zone, [r], key)
    with store.transaction() as c:
        (call_id,) = c.execute(select(VoiceNotice.id).where(VoiceNotice.status == "queued")).scalars()
        c.execute(update(VoiceNotice).where(VoiceNotice.id == call_id).values(next_attempt_at=utcnow()))
    return int(call_id)


def _call(store: Store, call_id: int) -> VoiceNotice:
    with store.session() as s:
        found = s.get(VoiceNotice, call_id)
        assert found is not None
        return found


def _until(store: Store, call_id: int, want: tuple[str, ...] = FINAL, timeout_s: float = 90) -> VoiceNotice:
    deadline = time.monotonic() + timeout_s
    while True:
        call = _call(store, call_id)
        if call.status in want or time.monotonic() > deadline:
            return call
        time.sleep(0.2)


def _history(store: Store, notice_id: int) -> list[tuple[str, str, str]]:
    with store.transaction() as c:
        return [(line.channel, line.outcome, line.detail) for line in notices.history(c, notice_id)]


def _notice(store: Store, notice_id: int) -> Notice:
    with store.session() as s:
        found = s.get(Notice, notice_id)
        assert found is not None
        return found


def _resident_side(workdir: Path, asterisk: LocalAsterisk, mode: UasMode, **kwargs: Any) -> CarrierUas:
    """The carrier's answering side, standing in for the resident's phone."""
    return CarrierUas(workdir, CARRIER_UAS_PORT, mode=mode, asterisk=asterisk, lifetime_s=120, **kwargs)


def _pressing(key: str, times: int = 20) -> str:
    """`key` pressed every 2 s (about 40 s in all), as a resident does who is told to press
    it: whenever the opening (who calls, which takes no keys) ends, the next press lands in
    the notice or its menu, however late the script starts on a loaded machine."""
    return "WW".join(key for _ in range(times))


def _trunk_unreachable(asterisk: LocalAsterisk) -> None:
    """Qualify the trunk with nothing listening on the carrier's side, until Asterisk finds
    its contact unreachable (as it does for a carrier that went away)."""
    qualify_trunk(asterisk, timeout_s=20, want="Unavail")


def _window_without_now(zone: str) -> str:
    """Calling hours an hour wide that do not hold the present hour."""
    hour = dt.datetime.now(ZoneInfo(zone)).hour
    start = 1 if hour >= 12 else 13
    return f"{start:02d}:00,{start + 1:02d}:00"


def test_outside_calling_hours_the_call_waits(
    asterisk: LocalAsterisk, asterisk_settings: Settings, tmp_path: Path
) -> None:
    zone = asterisk_settings.queue.timezone
    (tmp_path / "serve").mkdir()
    hours = {"HOTLINE_NOTICES_CALLING_HOURS": _window_without_now(zone)}
    with serving(asterisk_settings, tmp_path / "serve", hours) as ivr:
        with _resident_side(tmp_path, asterisk, "answer_keys", keys="2", lead_s=1) as uas:
            call_id = _queue_notice(ivr.store, zone, ivr.resident(0), "hours")
            deadline = time.monotonic() + 15
            while "outside calling hours" not in ivr.log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)  # rounds go by; still nothing is placed
            invites = uas.invites()
        call = _call(ivr.store, call_id)
    assert "outside calling hours; due calls wait until" in ivr.log.read_text()
    assert invites == []
    assert (call.status, call.attempts) == ("queued", 0)


def test_the_resident_answers_hears_the_notice_and_confirms_with_2(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    r = ivr.resident(1)
    zone = ivr.settings.queue.timezone
    with _resident_side(tmp_path, asterisk, "answer_keys", keys=_pressing("2"), lead_s=1) as uas:
        call_id = _queue_notice(ivr.store, zone, r, "confirm")
        call = _until(ivr.store, call_id)
        invites = [(i.request_user, i.from_user) for i in uas.invites()]
    assert (call.status, call.attempts) == ("confirmed", 0)
    assert _notice(ivr.store, call.notice_id).state == NoticeState.DELIVERED
    history = _history(ivr.store, call.notice_id)
    assert [(channel, outcome) for channel, outcome, _ in history] == [
        ("voice", "queued"),
        ("voice", "answered"),
        ("voice", "confirmed"),
    ]
    assert history[2][2] == "pressed 2, heard 1 time"
    # Out through the trunk in the carrier's form, from the hotline's number.
    assert invites == [(r.phone, "12333")]
    log = ivr.log.read_text()
    assert r.phone not in log and f"{r.phone[:3]}****{r.phone[-4:]}" in log


def test_busy_then_answered_on_the_second_call_without_a_key_is_heard(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    r = ivr.resident(2)
    zone = ivr.settings.queue.timezone
    with _resident_side(tmp_path / "busy", asterisk, "busy") as uas:
        call_id = _queue_notice(ivr.store, zone, r, "busy")
        uas.wait_invites(1, timeout_s=20)
        first = _until(ivr.store, call_id, ("queued",), timeout_s=20)
    assert (first.attempts, first.last_result) == (1, "busy")
    # The second call (notices.retry_after_s later) is answered, as by an answering machine
    # that keys nothing: the notice plays, the menu waits, and it counts as heard.
    with _resident_side(tmp_path / "answer", asterisk, "answer_keys", keys="", lead_s=0) as uas:
        call = _until(ivr.store, call_id)
        answered = len(uas.invites())
    assert (call.status, call.attempts, answered) == ("heard", 1, 1)
    assert _notice(ivr.store, call.notice_id).state == NoticeState.HEARD
    outcomes = [(outcome, detail) for _, outcome, detail in _history(ivr.store, call.notice_id)]
    assert [o for o, _ in outcomes] == ["queued", "busy", "answered", "heard"]
    assert outcomes[1][1].startswith("BUSY (cause 17); call 2 in ")
    assert outcomes[3][1] == "no key, heard 1 time"


def test_never_answered_the_notice_falls_back_to_sms_with_both_in_its_history(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    r = ivr.resident(3)
    zone = ivr.settings.queue.timezone
    with _resident_side(tmp_path, asterisk, "no_answer") as uas:
        call_id = _queue_notice(ivr.store, zone, r, "never")
        call = _until(ivr.store, call_id)
        rung = len(uas.invites())
    assert (call.status, rung) == ("unanswered", 2)  # notices.max_attempts in the test settings
    notice = _notice(ivr.store, call.notice_id)
    assert (notice.state, notice.reason) == (NoticeState.ADVANCE, "voice: 2 calls, not reached")
    # The gateway's notice chore (`sms-notices` in `hotline serve`) moves it to SMS.
    moves = move_notices(ivr.store, sample_port(ivr.store), Channels(SmsSettings(), zone, None))
    assert moves.moved == 1
    with ivr.store.session() as s:
        (sms,) = s.scalars(select(SmsMessage).where(SmsMessage.notice_id == notice.id))
    assert (sms.recipient, sms.status) == (r.phone, "queued")
    assert [(ch, o) for ch, o, _ in _history(ivr.store, notice.id)] == [
        ("voice", "queued"),
        ("voice", "no_answer"),
        ("voice", "no_answer"),
        ("voice", "unanswered"),
        ("sms", "queued"),
    ]


def test_with_the_trunk_down_the_call_waits_and_goes_out_when_it_is_back(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    r = ivr.resident(4)
    zone = ivr.settings.queue.timezone
    _trunk_unreachable(asterisk)
    call_id = _queue_notice(ivr.store, zone, r, "trunk")
    waiting = _until(ivr.store, call_id, ("queued",), timeout_s=30)
    deadline = time.monotonic() + 30
    while waiting.last_result in (None, "") and time.monotonic() < deadline:
        time.sleep(0.2)
        waiting = _call(ivr.store, call_id)
    assert waiting.attempts == 0, waiting.last_result
    with _resident_side(tmp_path, asterisk, "answer_keys", keys=_pressing("2"), lead_s=1):
        call = _until(ivr.store, call_id)
    assert (call.status, call.attempts) == ("confirmed", 0)
    outcomes = [o for _, o, _ in _history(ivr.store, call.notice_id)]
    assert outcomes == ["queued", "waiting", "answered", "confirmed"]
