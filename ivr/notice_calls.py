"""Notices by phone: the dialler that calls residents out through the trunk and reads them
their notice (the voice channel of core/notices.py).

The gateway queues a `voice_notices` row for a notice whose resident chose a call. The
dialler (`hotline serve`'s supervised task `voice-notices`) claims due rows and places each
call with an AMI Originate of `Local/<id>@hotline-notice-dial`: that half counts the call
among the calls out and dials the resident through the outbound trunk; once they answer,
the other half runs the FastAGI script `notice` (ivr/notice_flow.py), which says who calls,
reads the notice and takes 1 (again), 2 (confirm) or 9 (no more notice calls).

The rules a call keeps:
- only within `notices.calling_hours` (queue.timezone); a notice due outside them waits;
- at most `notices.max_calls` notice calls up at once (and every call out, callbacks too,
  within `sip.outbound_channels` in the dialplan), so inbound callers find free lines;
- never two calls to one number at once (a unique index of calls under way, migration 0033);
- never a call to a number in `voice_optouts`, nor within the resident's own quiet hours
  (core/preferences.py; for every category, instant ones too: a call rings);
- busy, unanswered or failed attempts (Asterisk's DIALSTATUS and hangup cause recorded)
  are tried again `notices.retry_after_s` later, `notices.max_attempts` in all; then the
  notice moves on to the resident's next channel (SMS for most) with the history saying so;
- the trunk down or the lines full (NOTRUNK, LINESFULL, CHANUNAVAIL not caused by the
  number) is no attempt: the call waits `notices.trunk_retry_s` and is placed again;
- a claim whose dialler died (no outcome after `notices.reclaim_after_s`) counts as an
  attempt and is queued again.

    queued --claim--> calling --(notice script)--> confirmed | heard | opted_out
                              --(BUSY, NOANSWER, ...)--> queued (+1 attempt) | unanswered
                              --(trunk down)---------> queued (no attempt)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core import audit, preferences
from core.calls_out import DialCapped, refuse, take_dial
from core.db import Store, among, pg_lock
from core.destinations import DestinationRefused
from core.errors import StoreUnavailable
from core.masking import mask_phone
from core.models import Notice, Resident, VoiceNotice, VoiceOptOut, utcnow
from core.notices import add_step, finish
from core.preference_audit import ACTION_OPT_OUT
from core.settings import NoticeSettings, Settings
from core.states import Channel, NoticeState, VoiceState
from ivr import dialplan
from ivr.ami_client import AmiSession, AnyNodeSession
from ivr.errors import AmiError, PromptBuildError
from ivr.notice_speech import NoticeSpeech
from ivr.outbound import dial_number

log = logging.getLogger(__name__)
VOICE: Table = VoiceNotice.__table__  # type: ignore[assignment]
NOTICES: Table = Notice.__table__  # type: ignore[assignment]
ACTION_PREFIX: Final = "hotline-notice-"
# What the notice script writes in `last_result` when it takes the call: the dialing half's
# ANSWER that follows is then its business, not an attempt to count.
ANSWERED: Final = "ANSWERED"
# DIALSTATUS and our refusals that are the trunk's state, not the resident's: no attempt.
_TRUNK_WORDS: Final = frozenset({dialplan.OUTCOME_LINES_FULL, dialplan.OUTCOME_NO_TRUNK})
# Q.850 causes of CHANUNAVAIL that are the number's fault (a wrong number fails every time):
# 1 unallocated, 28 invalid number format. The trunk's contact found unreachable (qualify)
# gives CHANUNAVAIL with cause 3, no route to destination: the trunk's, not the number's.
_NUMBER_CAUSES: Final = frozenset({"1", "28"})
_OUTCOME_WORDS: Final = {"BUSY": "busy", "NOANSWER": "no_answer", "ANSWER": "not_played"}
# pg_advisory_xact_lock's key for "claiming notice calls": diallers claim one at a time.
CLAIM_LOCK: Final = 0x12333_CA11


@dataclass(frozen=True)
class NoticeCall:
    id: int
    notice_id: int
    number: str
    text: str
    language: str
    attempts: int


@dataclass(frozen=True)
class DialResult:
    call_id: int  # voice_notices.id
    status: str  # DIALSTATUS, LINESFULL or NOTRUNK
    cause: str  # the dialed channel's hangup cause (Q.850), "" if none

    @property
    def counts(self) -> bool:
        """Whether this was an attempt at the resident (else the trunk's fault: wait)."""
        if self.status in _TRUNK_WORDS:
            return False
        return not (self.status == "CHANUNAVAIL" and self.cause not in _NUMBER_CAUSES)

    def describe(self) -> str:
        return f"{self.status} (cause {self.cause})" if self.cause and self.cause != "0" else self.status


def outcome_of(msg: dict[str, str]) -> DialResult | None:
    """The notice call's end an AMI event tells, if it tells one.

    >>> outcome_of({"Event": "UserEvent", "UserEvent": "HotlineNoticeDial", "NoticeCall": "7",
    ...             "DialStatus": "BUSY", "HangupCause": "17"})
    DialResult(call_id=7, status='BUSY', cause='17')
    """
    if msg.get("Event") != "UserEvent" or msg.get("UserEvent") != dialplan.USEREVENT_NOTICE_DIAL:
        return None
    raw = msg.get("NoticeCall", "")
    if not raw.isdigit():
        return None
    return DialResult(int(raw), (msg.get("DialStatus") or "NONE")[:16], (msg.get("HangupCause") or "")[:4])


def calling_window(now: dt.datetime, zone: ZoneInfo, hours: tuple[dt.time, dt.time]) -> dt.datetime | None:
    """None if `now` is within calling hours; else when they next begin (UTC).

    >>> z = ZoneInfo("Asia/Shanghai")
    >>> calling_window(dt.datetime(2026, 12, 3, 2, 0, tzinfo=dt.UTC), z, (dt.time(9), dt.time(20))) is None
    True
    >>> calling_window(dt.datetime(2026, 12, 3, 13, 0, tzinfo=dt.UTC), z, (dt.time(9), dt.time(20)))
    datetime.datetime(2026, 12, 4, 1, 0, tzinfo=datetime.timezone.utc)
    """
    local = now.astimezone(zone)
    start, end = hours
    if start == end or start <= local.time() < end:  # equal: around the clock
        return None
    day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, start, zone).astimezone(dt.UTC)


def _quiet_windows(c: Connection, notice_ids: list[int]) -> dict[int, tuple[dt.time, dt.time]]:
    """The quiet hours each notice's subject keeps now (their preference for its category),
    for the notices that have any. A call rings: it keeps them for every category, instant
    ones too, which an SMS need not."""
    rows = c.execute(
        select(NOTICES.c.id, NOTICES.c.subject_kind, NOTICES.c.subject_id, NOTICES.c.category).where(
            among(c, NOTICES.c.id, notice_ids)
        )
    ).all()
    out: dict[int, tuple[dt.time, dt.time]] = {}
    for kind in {r.subject_kind for r in rows}:
        chosen = preferences.load(c, kind, [r.subject_id for r in rows if r.subject_kind == kind])
        for r in rows:
            if r.subject_kind == kind:
                pick = preferences.choose(chosen.get(r.subject_id), r.category)
                if not isinstance(pick, str) and pick.quiet:
                    out[r.id] = pick.quiet
    return out


def claim(store: Store, notices: NoticeSettings, dialler: str, now: dt.datetime, *, zone: str) -> list[NoticeCall]:
    """Due calls to place now: as many as the cap leaves room for, one per number, none to
    a number under a call already. A due call to a number that opted out ends here (the
    notice moves on); one due within its resident's own quiet hours waits for their end.
    Calling hours are the caller's to check."""
    with store.transaction() as c:
        pg_lock(c, CLAIM_LOCK)
        calling = c.scalar(select(func.count()).select_from(VOICE).where(VOICE.c.status == VoiceState.CALLING)) or 0
        room = notices.max_calls - calling
        if room <= 0:
            return []
        busy = select(VOICE.c.number).where(VOICE.c.status == VoiceState.CALLING)
        due = c.execute(
            select(VOICE.c.id, VOICE.c.notice_id, VOICE.c.number, VOICE.c.text, VOICE.c.language, VOICE.c.attempts)
            .where(VOICE.c.status == VoiceState.QUEUED, VOICE.c.next_attempt_at <= now, VOICE.c.number.not_in(busy))
            .order_by(VOICE.c.next_attempt_at, VOICE.c.id)
            .limit(room * 4)
        ).all()
        if not due:
            return []
        numbers = sorted({r.number for r in due})
        out = set(c.scalars(select(VoiceOptOut.phone).where(among(c, VoiceOptOut.phone, numbers))))
        quiet = _quiet_windows(c, [r.notice_id for r in due])
        chosen: dict[str, NoticeCall] = {}
        for r in due:
            wake = preferences.quiet_end(quiet[r.notice_id], zone, now) if r.notice_id in quiet else now
            if wake > now and r.number not in out:
                c.execute(update(VOICE).where(VOICE.c.id == r.id).values(next_attempt_at=wake))
                local = wake.astimezone(ZoneInfo(zone))
                add_step(c, r.notice_id, Channel.VOICE, "waiting", f"their quiet hours, until {local:%H:%M}", now)
            elif r.number in out:
                _end(
                    c,
                    r.id,
                    r.notice_id,
                    VoiceState.OPTED_OUT,
                    None,
                    "opted_out",
                    "the number asked not to be called",
                    now,
                )
            elif r.number not in chosen and len(chosen) < room:
                chosen[r.number] = NoticeCall(r.id, r.notice_id, r.number, r.text, r.language, r.attempts)
        if chosen:
            c.execute(
                update(VOICE)
                .where(among(c, VOICE.c.id, [call.id for call in chosen.values()]), VOICE.c.status == VoiceState.QUEUED)
                .values(status=VoiceState.CALLING, claimed_by=dialler[:64], claimed_at=now)
            )
    return list(chosen.values())


def _end(
    c: Connection,
    call_id: int,
    notice_id: int,
    state: VoiceState,
    ended: NoticeState | None,
    outcome: str,
    detail: str,
    now: dt.datetime,
) -> None:
    c.execute(
        update(VOICE)
        .where(VOICE.c.id == call_id)
        .values(status=state, final_at=now, claimed_by=None, last_result=outcome[:32])
    )
    finish(c, notice_id, Channel.VOICE, ended, outcome, detail, now)


def _requeue(c: Connection, call_id: int, attempts: int, at: dt.datetime, result: str) -> None:
    c.execute(
        update(VOICE)
        .where(VOICE.c.id == call_id)
        .values(
            status=VoiceState.QUEUED, attempts=attempts, next_attempt_at=at, claimed_by=None, last_result=result[:32]
        )
    )


def attempt_failed(
    c: Connection, row: Any, notices: NoticeSettings, outcome: str, detail: str, now: dt.datetime
) -> str:
    """One attempt at the resident failed: queued again, or after the last the notice moves on."""
    attempts = row.attempts + 1
    if attempts >= notices.max_attempts:
        add_step(c, row.notice_id, Channel.VOICE, outcome, detail, now)
        _end(
            c, row.id, row.notice_id, VoiceState.UNANSWERED, None, "unanswered",
            f"{attempts} call{'s' if attempts > 1 else ''}, not reached", now,
        )  # fmt: skip
        return "unanswered"
    _requeue(c, row.id, attempts, now + dt.timedelta(seconds=notices.retry_after_s), outcome)
    add_step(
        c, row.notice_id, Channel.VOICE, outcome, f"{detail}; call {attempts + 1} in {notices.retry_after_s:g} s", now
    )
    return outcome


def _no_attempt(c: Connection, row: Any, notices: NoticeSettings, result: str, why: str, now: dt.datetime) -> None:
    """Queued again `trunk_retry_s` later, not counted as an attempt; the history says so
    once while the same `result` repeats (one line per outage, not one per retry)."""
    _requeue(c, row.id, row.attempts, now + dt.timedelta(seconds=notices.trunk_retry_s), result)
    if row.last_result != result:
        add_step(c, row.notice_id, Channel.VOICE, "waiting", f"{why}; again in {notices.trunk_retry_s:g} s", now)


def _calling(c: Connection, call_id: int) -> Any:
    return c.execute(select(VOICE).where(VOICE.c.id == call_id, VOICE.c.status == VoiceState.CALLING)).first()


def record_dial(store: Store, result: DialResult, notices: NoticeSettings, now: dt.datetime | None = None) -> str:
    """How the dialing half of a notice call ended (its UserEvent); the word recorded, or
    "" when there was nothing to record (the notice script ended the call itself)."""
    now = now or utcnow()
    with store.transaction() as c:
        row = _calling(c, result.call_id)
        if row is None or row.last_result == ANSWERED:
            return ""
        if not result.counts:
            _no_attempt(c, row, notices, result.status, f"trunk unavailable ({result.describe()}), no attempt", now)
            word = "waiting"
        else:
            word = attempt_failed(c, row, notices, _OUTCOME_WORDS.get(result.status, "failed"), result.describe(), now)
    log.info("notice call %d to %s: %s (%s)", result.call_id, mask_phone(row.number), word, result.describe())
    return word


def release(store: Store, call: NoticeCall, notices: NoticeSettings, why: str, now: dt.datetime | None = None) -> None:
    """A call that could not be placed (AMI away, Originate refused): queued again, no attempt."""
    now = now or utcnow()
    with store.transaction() as c:
        row = _calling(c, call.id)
        if row is not None:
            _no_attempt(c, row, notices, "NOT_PLACED", f"not placed ({why})", now)


def give_up(store: Store, call: NoticeCall, why: str, now: dt.datetime | None = None) -> None:
    """A notice that cannot be said at all (no speech for it): the voice channel gives up."""
    now = now or utcnow()
    with store.transaction() as c:
        if _calling(c, call.id) is not None:
            _end(c, call.id, call.notice_id, VoiceState.UNANSWERED, None, "failed", why, now)


def reclaim_stale(store: Store, notices: NoticeSettings, now: dt.datetime | None = None) -> int:
    """Calls claimed longer ago than `reclaim_after_s` with no outcome (their dialler or the
    notice script died): each counts as an attempt, as the resident may have been rung."""
    now = now or utcnow()
    before = now - dt.timedelta(seconds=notices.reclaim_after_s)
    with store.transaction() as c:
        rows = c.execute(select(VOICE).where(VOICE.c.status == VoiceState.CALLING, VOICE.c.claimed_at < before)).all()
        for row in rows:
            attempt_failed(c, row, notices, "lost", "no outcome heard from the call (its dialler stopped)", now)
    if rows:
        log.warning(
            "notice calls: %d calls without an outcome after %d s queued again", len(rows), notices.reclaim_after_s
        )
    return len(rows)


def take_answered(store: Store, call_id: int, now: dt.datetime | None = None) -> NoticeCall | None:
    """The notice script took the answered call: the notice to read, or None if the call is
    not one under way (placed by hand, or already ended)."""
    now = now or utcnow()
    with store.transaction() as c:
        row = _calling(c, call_id)
        if row is None:
            return None
        c.execute(update(VOICE).where(VOICE.c.id == call_id).values(last_result=ANSWERED))
        add_step(
            c, row.notice_id, Channel.VOICE, "answered", f"call {row.attempts + 1} to {mask_phone(row.number)}", now
        )
    return NoticeCall(row.id, row.notice_id, row.number, row.text, row.language, row.attempts)


def end_answered(
    store: Store,
    call: NoticeCall,
    state: VoiceState,
    detail: str,
    notices: NoticeSettings,
    now: dt.datetime | None = None,
    *,
    word: str = "hung_up",
) -> str:
    """What the resident did in the answered call: CONFIRMED (2) delivers the notice, HEARD
    (played to its end, or hung up once it began) ends it heard, OPTED_OUT (9) keeps the
    number off notice calls and moves the notice on; UNANSWERED here means nothing of the
    notice was said (hung up before it began, or its speech missing: `word`), an attempt
    like a no answer."""
    now = now or utcnow()
    with store.transaction() as c:
        if state is VoiceState.OPTED_OUT:
            _audit_opt_out(c, call)  # before the transaction's first write (core/audit.py)
        row = _calling(c, call.id)
        if row is None:
            return ""
        if state is VoiceState.CONFIRMED:
            _end(c, call.id, call.notice_id, state, NoticeState.DELIVERED, "confirmed", detail, now)
        elif state is VoiceState.HEARD:
            _end(c, call.id, call.notice_id, state, NoticeState.HEARD, "heard", detail, now)
        elif state is VoiceState.OPTED_OUT:
            if c.scalar(select(VoiceOptOut.phone).where(VoiceOptOut.phone == call.number)) is None:
                c.execute(insert(VoiceOptOut).values(phone=call.number, at=now, source="notice call"))
            _end(c, call.id, call.notice_id, state, None, "opted_out", detail, now)
        else:
            return attempt_failed(c, row, notices, word, detail, now)
    return str(state)


def _audit_opt_out(c: Connection, call: NoticeCall) -> None:
    """The resident's own change, pressing 9, in the audit trail like any other change."""
    subject = c.execute(
        select(NOTICES.c.subject_kind, NOTICES.c.subject_id).where(NOTICES.c.id == call.notice_id)
    ).first()
    resident = None
    if subject is not None and subject.subject_kind == "person":
        resident = c.scalar(select(Resident.id).where(Resident.id_number == subject.subject_id))
    audit.record(
        c,
        actor="ivr",
        action=ACTION_OPT_OUT,
        resident_id=resident,
        call_id=None,
        detail=f"{mask_phone(call.number)} no notice calls (pressed 9 in notice call {call.id})",
        channel="ivr",
    )


class NoticeDialler:
    """The supervised loop: claims due calls within calling hours and places them."""

    def __init__(self, settings: Settings, store: Store, stop: asyncio.Event, name: str = "dialler") -> None:
        self.settings = settings
        self.notices = settings.notices
        self.store = store
        self.stop = stop
        self.name = name
        self.zone = ZoneInfo(settings.queue.timezone)
        self.speech = NoticeSpeech(settings.notices.speech_dir)
        self.placing: set[asyncio.Task[None]] = set()
        self._ami: AmiSession | None = None
        self._waiting_until: dt.datetime | None = None

    async def run(self) -> None:
        log.info(
            "notice calls: up to %d at once, %s-%s (%s), %d attempts",
            self.notices.max_calls,
            f"{self.notices.calling_hours[0]:%H:%M}",
            f"{self.notices.calling_hours[1]:%H:%M}",
            self.settings.queue.timezone,
            self.notices.max_attempts,
        )
        try:
            while not self.stop.is_set():
                try:
                    await self.tick(utcnow())
                except StoreUnavailable as exc:
                    log.warning("notice calls: store unavailable (%s); trying again", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.notices.poll_s)
        finally:
            for task in self.placing:
                task.cancel()
            await asyncio.gather(*self.placing, return_exceptions=True)
            self._close_ami()
            self.speech.close()

    async def tick(self, now: dt.datetime) -> int:
        """One round: reclaim lost calls, then place what is due; how many were placed."""
        await asyncio.to_thread(reclaim_stale, self.store, self.notices, now)
        opens = calling_window(now, self.zone, self.notices.calling_hours)
        if opens is not None:
            if self._waiting_until != opens:
                log.info("notice calls: outside calling hours; due calls wait until %s", opens.astimezone(self.zone))
                self._waiting_until = opens
            return 0
        self._waiting_until = None
        calls = await asyncio.to_thread(self._claim, now)
        for call in calls:
            task = asyncio.create_task(self._place(call), name=f"notice-call-{call.id}")
            self.placing.add(task)
            task.add_done_callback(self.placing.discard)
        return len(calls)

    def _claim(self, now: dt.datetime) -> list[NoticeCall]:
        try:
            return claim(self.store, self.notices, self.name, now, zone=self.settings.queue.timezone)
        except IntegrityError:
            # Another dialler put a call to one of these numbers under way at the same moment.
            log.info("notice calls: a number's call was claimed elsewhere at once; next round")
            return []

    async def _place(self, call: NoticeCall) -> None:
        try:
            said = opening(self.notices, call.language)
            await self.speech.ensure(said, call.language, words=said)
            await self.speech.ensure(call.text, call.language)
        except PromptBuildError as exc:
            log.error("notice call %d: no speech for its text (%s); the notice moves on", call.id, exc)
            await asyncio.to_thread(give_up, self.store, call, f"no speech could be made: {exc}")
            return
        try:
            await self._originate(call)
        except DestinationRefused as exc:
            # Refused at entry already; only a changed policy (or a path that skipped it) gets here.
            await asyncio.to_thread(refuse, self.store, exc, where=f"notice call {call.id}", actor="dialler")
            await asyncio.to_thread(give_up, self.store, call, f"number refused ({exc.rule})")
        except DialCapped as exc:
            if exc.cap == "number_day":  # the number was called enough today: its next channel
                await asyncio.to_thread(give_up, self.store, call, str(exc)[:200])
            else:  # the hotline's hourly cap: later, not an attempt
                await asyncio.to_thread(release, self.store, call, self.notices, str(exc)[:200])
        except (AmiError, OSError) as exc:
            self._close_ami()
            log.warning("notice call %d not placed: %s", call.id, exc)
            await asyncio.to_thread(release, self.store, call, self.notices, str(exc)[:200])

    async def _originate(self, call: NoticeCall) -> None:
        exten = dial_number(call.number, self.settings)  # as callbacks dial: the carrier's form
        if self._ami is None:
            ami = AnyNodeSession(self.settings)
            await ami.open()
            self._ami = ami
        caps = self.settings.destinations
        await asyncio.to_thread(take_dial, self.store, caps, call.number, "notice", call.id)
        action = originate_action(call, exten, self.notices.ring_s)
        reply = (await self._ami.send(action, as_list=False))[0]
        if reply.get("Response") != "Success":
            raise AmiError(f"Asterisk refused the call: {reply.get('Message')}")
        log.info("notice call %d: ringing %s (attempt %d)", call.id, mask_phone(exten), call.attempts + 1)

    def _close_ami(self) -> None:
        if self._ami is not None:
            self._ami.close()
            self._ami = None


def opening(notices: NoticeSettings, language: str) -> str:
    """What every notice call says first: who calls."""
    if language == "zh":
        return f"您好，这里是{notices.caller_name}，有一条通知给您。"
    return f"Hello, this is {notices.caller_name_en}, with a notice for you."


def originate_action(call: NoticeCall, exten: str, ring_s: int) -> dict[str, Any]:
    return {
        "Action": "Originate",
        "ActionID": f"{ACTION_PREFIX}{call.id}",
        "Channel": f"Local/{call.id}@{dialplan.CTX_NOTICE_DIAL}",
        "Context": dialplan.CTX_NOTICE_PLAY,
        "Exten": dialplan.EXTEN_START,
        "Priority": "1",
        # The dialing half's Dial() gives up after ring_s; the Originate waits a little longer.
        "Timeout": str((ring_s + 15) * 1000),
        "Async": "true",
        "Variable": [
            f"{dialplan.VAR_NOTICE_CALL}={call.id}",
            f"{dialplan.VAR_NOTICE_NUMBER}={exten}",
            f"{dialplan.VAR_NOTICE_RING_S}={ring_s}",
        ],
    }
