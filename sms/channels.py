"""The channel a notice goes by: the subject's preferences, the first usable channel of its
plan, and the rows that open it (an SMS, a `voice_notices` row for the IVR's dialler, a
`wechat_messages` row for the WeChat sender).

Only subjects with preferences (core/preferences.py) get a notice; every other event's
messages are made by sms/intake.py exactly as before channels could be chosen. A notice's
plan is the preferred channels with `sms` appended as the last resort where it is missing.
A channel that cannot carry the notice now (WeChat off or not bound, no template for the
category, a number that asked not to be called, every phone opted out) is skipped with a
history line naming why, and the next is tried; the gateway's chore (sms/notice_moves.py)
opens the next one the same way when a channel gives up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, Table, insert, select, update

from core.db import among, chunks, insert_rows
from core.destinations import DestinationPolicy, DestinationRefused, DestinationSettings
from core.masking import mask_openid, mask_phone
from core.models import SmsMessage, SmsOptOut, VoiceNotice, VoiceOptOut, WeChatBinding, WeChatMessage
from core.notices import NOTICES, add_step
from core.phones import BadPhoneNumber
from core.preferences import Preference, quiet_end
from core.settings import SmsSettings, WeChatSettings
from core.states import Channel, MessageState, NoticeState, VoiceState, WeChatState
from sms.templates import OPTIONAL_CATEGORIES

MESSAGES: Table = SmsMessage.__table__  # type: ignore[assignment]
VOICE: Table = VoiceNotice.__table__  # type: ignore[assignment]
WECHAT: Table = WeChatMessage.__table__  # type: ignore[assignment]
# Sent as soon as the event is committed, ahead of any batch; never held by quiet hours.
INSTANT_CATEGORIES: Final = frozenset({"resident_reminder", "security", "medical", "casework"})
# A binding code proves the registered phone: it goes there by SMS, whatever the preferences.
SMS_ONLY_TYPES: Final = frozenset({"wechat_bind_code"})


def quiet_until(settings: SmsSettings, zone: str, category: str, now: dt.datetime) -> dt.datetime:
    """`now`, or the end of the category's quiet hours if `now` falls inside them."""
    window = settings.quiet_hours.get(category)
    if window is None or category in INSTANT_CATEGORIES:
        return now
    return quiet_end(window, zone, now)


def due_at(
    settings: SmsSettings, zone: str, category: str, quiet: tuple[dt.time, dt.time] | None, now: dt.datetime
) -> dt.datetime:
    """When a notice may go: after the category's quiet hours and the person's own (neither
    holds an instant category)."""
    due = quiet_until(settings, zone, category, now)
    if quiet is None or category in INSTANT_CATEGORIES:
        return due
    return max(due, quiet_end(quiet, zone, now))


def plan_of(preference: Preference) -> tuple[str, ...]:
    """The preferred channels, with SMS as the last resort where it is missing."""
    chosen = tuple(str(c) for c in preference.channels)
    return chosen if Channel.SMS in chosen else (*chosen, str(Channel.SMS))


def sms_row(
    event_id: int | None,
    event_type: str,
    category: str,
    batch_id: int | None,
    phone: str,
    text: str,
    due: dt.datetime,
    now: dt.datetime,
    skipped: bool = False,
) -> dict[str, Any]:
    """One `sms_messages` row as intake writes it (a notice's adds its `notice_id`)."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "category": category,
        "recipient": phone,
        "text": text,
        "priority": 0 if category in INSTANT_CATEGORIES else 1,
        "batch_id": batch_id,
        "status": MessageState.SKIPPED if skipped else MessageState.QUEUED,
        "last_error": "opted out (TD)" if skipped else None,
        "attempts": 0,
        "next_attempt_at": due,
        "segments": 1,
        "created_at": now,
        "duplicate_suspect": False,
    }


def once_per_recipient(insert_: Any) -> Any:
    return insert_.on_conflict_do_nothing(index_elements=["event_id", "recipient"])


@dataclass
class Opening:
    """A notice to put on a channel: made at intake, or moved on by the gateway."""

    notice_id: int
    event_id: int
    event_type: str
    category: str
    subject_kind: str
    subject_id: str
    batch_id: int | None
    text: str
    language: str
    plan: tuple[str, ...]
    preference: Preference
    phones: list[str] = field(default_factory=list)  # registered, in store form
    openid: str | None = None  # the bound WeChat account, if any


@dataclass(frozen=True)
class Opened:
    notice_id: int
    step: int | None  # the plan's index now working on it; None: nothing left
    channel: str | None
    messages: int = 0  # SMS rows queued


class Channels:
    """Opens notices' channels: knows what makes each usable (settings, opt-outs, bindings)."""

    def __init__(
        self,
        sms: SmsSettings,
        zone: str,
        wechat: WeChatSettings | None,
        voice_off: str = "",
        destinations: DestinationSettings | None = None,
    ) -> None:
        self.sms = sms
        self.zone = zone
        self.wechat = wechat
        self.voice_off = voice_off  # why notice calls cannot be placed (core.notices.voice_unavailable)
        # Numbers to text or call pass the policy (the default one unless given) where they
        # enter; those it refused wait here to go on record once the transaction commits.
        self.destinations = DestinationPolicy(destinations or DestinationSettings(), sms.country_code)
        self.refused: list[tuple[str, DestinationRefused]] = []

    def take_refused(self) -> list[tuple[str, DestinationRefused]]:
        taken, self.refused = self.refused, []
        return taken

    def open_from(self, c: Connection, o: Opening, start: int, now: dt.datetime) -> Opened:
        """Open the first usable channel of the plan from `start`, writing a history line
        for each one skipped; the notice's step, channel and fallbacks follow. The caller
        has the notice to itself (taken at intake, or claimed by the chore)."""
        for step in range(start, len(o.plan)):
            channel = o.plan[step]
            unusable = self._open(c, o, channel, now)
            if isinstance(unusable, str):
                add_step(c, o.notice_id, channel, "skipped", unusable, now)
                continue
            values = {"step": step, "channel": channel, "state": NoticeState.PENDING, "fallbacks": step}
            c.execute(update(NOTICES).where(NOTICES.c.id == o.notice_id).values(**values))
            return Opened(o.notice_id, step, channel, unusable)
        return Opened(o.notice_id, None, None)

    def _open(self, c: Connection, o: Opening, channel: str, now: dt.datetime) -> int | str:
        """The SMS rows written (0 for another channel), or why `channel` cannot carry it."""
        due = due_at(self.sms, self.zone, o.category, o.preference.quiet, now)
        if channel == Channel.SMS:
            return self._open_sms(c, o, due, now)
        if channel == Channel.VOICE:
            return self._open_voice(c, o, due, now)
        if channel == Channel.WECHAT:
            return self._open_wechat(c, o, due, now)
        return f"unknown channel {channel!r}"

    def _open_sms(self, c: Connection, o: Opening, due: dt.datetime, now: dt.datetime) -> int | str:
        if not o.phones:
            return "no registered phone"
        out: set[str] = set()
        if o.category in OPTIONAL_CATEGORIES:
            out = set(c.scalars(select(SmsOptOut.phone).where(among(c, SmsOptOut.phone, o.phones))))
        to = [p for p in o.phones if p not in out]
        if not to:
            return f"every registered phone opted out of {o.category} (TD)"
        rows = [
            {**sms_row(o.event_id, o.event_type, o.category, o.batch_id, p, o.text, due, now), "notice_id": o.notice_id}
            for p in to
        ]
        insert_rows(c, MESSAGES, rows, once_per_recipient)
        add_step(c, o.notice_id, Channel.SMS, "queued", "to " + ", ".join(mask_phone(p) for p in to), now)
        return len(rows)

    def _open_voice(self, c: Connection, o: Opening, due: dt.datetime, now: dt.datetime) -> int | str:
        if self.voice_off:
            return self.voice_off
        chosen = o.preference.voice_number
        if chosen:
            try:
                number = self.destinations.check(chosen)
            except DestinationRefused as exc:
                self.refused.append((f"voice notice of notice {o.notice_id}", exc))
                return f"the preferred number to call is refused ({exc.rule})"
            except BadPhoneNumber:
                return "the preferred number to call is not a phone number"
        elif o.phones:
            number = o.phones[0]
        else:
            return "no number to call"
        if c.scalar(select(VoiceOptOut.phone).where(VoiceOptOut.phone == number)) is not None:
            return f"{mask_phone(number)} asked not to be called"
        c.execute(
            insert(VOICE).values(
                notice_id=o.notice_id,
                number=number,
                text=o.text,
                language=o.language,
                category=o.category,
                status=VoiceState.QUEUED,
                attempts=0,
                next_attempt_at=due,
                created_at=now,
            )
        )
        add_step(c, o.notice_id, Channel.VOICE, "queued", f"to call {mask_phone(number)}", now)
        return 0

    def _open_wechat(self, c: Connection, o: Opening, due: dt.datetime, now: dt.datetime) -> int | str:
        if self.wechat is None or not self.wechat.enabled:
            return "WeChat is not enabled (wechat.enabled)"
        if not o.openid:
            return "not bound to WeChat"
        if not self.wechat.templates.get(o.category):
            return f"no WeChat template for {o.category} (wechat.templates)"
        c.execute(
            insert(WECHAT).values(
                notice_id=o.notice_id,
                openid=o.openid,
                event_type=o.event_type,
                category=o.category,
                text=o.text,
                status=WeChatState.QUEUED,
                attempts=0,
                next_attempt_at=due,
                created_at=now,
            )
        )
        add_step(c, o.notice_id, Channel.WECHAT, "queued", f"to {mask_openid(o.openid)}", now)
        return 0


def bindings(c: Connection, subject_ids: Sequence[str]) -> dict[str, str]:
    """The bound WeChat openid by ID number (one query per 500)."""
    found: dict[str, str] = {}
    for part in chunks(sorted(set(subject_ids))):
        rows = c.execute(
            select(WeChatBinding.subject_id, WeChatBinding.openid).where(among(c, WeChatBinding.subject_id, part))
        )
        found.update((s, o) for s, o in rows)
    return found


def end_failed(c: Connection, notice_id: int, reason: str, now: dt.datetime) -> None:
    """No channel of the plan is left: the notice ends failed, and its history says why."""
    add_step(c, notice_id, "-", "failed", reason, now)
    c.execute(
        update(NOTICES)
        .where(NOTICES.c.id == notice_id)
        .values(state=NoticeState.FAILED, reason=reason[:500], final_at=now)
    )


@dataclass(frozen=True)
class NewNotice:
    """An event taken up for a subject with preferences, as intake hands it over."""

    event_id: int
    event_type: str
    category: str
    subject_kind: str
    subject_id: str
    batch_id: int | None
    text: str


def start_notice(
    c: Connection,
    channels: Channels,
    event: NewNotice,
    choice: Preference | str,
    phones: list[str],
    openid: str | None,
    now: dt.datetime,
) -> Opened:
    """The event's notice, on the first usable channel of the subject's plan; a preference
    row that cannot be used (`choice` is its reason) sends it by SMS, the reason recorded.
    Nothing usable at all: the notice ends failed (Opened.step None)."""
    reason = choice if isinstance(choice, str) else None
    preference = Preference(channels=(Channel.SMS,)) if isinstance(choice, str) else choice
    plan = plan_of(preference)
    notice_id = c.execute(
        insert(NOTICES)
        .values(
            event_id=event.event_id,
            event_type=event.event_type,
            category=event.category,
            subject_kind=event.subject_kind,
            subject_id=event.subject_id,
            plan=",".join(plan),
            step=0,
            channel=plan[0],
            state=NoticeState.PENDING,
            fallbacks=0,
            language=preference.language,
            text=event.text,
            reason=reason,
            created_at=now,
        )
        .returning(NOTICES.c.id)
    ).scalar_one()
    if reason is not None:
        add_step(c, notice_id, Channel.SMS, "bad_preference", f"{reason}; sent by SMS", now)
    o = Opening(
        notice_id,
        event.event_id,
        event.event_type,
        event.category,
        event.subject_kind,
        event.subject_id,
        event.batch_id,
        event.text,
        preference.language,
        plan,
        preference,
        phones,
        openid,
    )
    opened = channels.open_from(c, o, 0, now)
    if opened.step is None:
        end_failed(c, notice_id, "no channel of the plan can carry it", now)
    return opened
