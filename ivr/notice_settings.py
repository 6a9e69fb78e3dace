"""The store's side of the notification settings menu (ivr/prefs_flow.py): a caller's choice
for all notices read, changed, and notice calls stopped or allowed. Key 5 acts on the
number notice calls ring (the number to call their row names, else their registered phone,
as sms/channels.py chooses), not on whatever phone they call from: that is the number 9
in a notice call stops too.

Every read and change goes through core/preference_audit.py with actor `ivr` and the call
id, in the same transaction as the rows it reads or writes. A change reads the row first
(audited too) so that what it keeps of it (quiet hours, a number to call that an agent set)
is the row as it is now, not as it was when the menu was read out. Each answer is the choice
as it then stands, in the shape the flow speaks (see ivr/prefs_flow.py), with no ID number
or phone number in it: it goes into the call's trail.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import preference_audit, preferences
from core.db import Store
from core.models import Resident, VoiceOptOut, WeChatBinding
from core.phones import phone_number
from core.preferences import ALL, DEFAULT, Preference, parse_channels
from core.states import Channel

ACTOR = "ivr"
KIND = "person"
SOURCE = "ivr"


class WeChatNotBound(preferences.PreferenceRefused):
    """WeChat chosen by an ID number with no WeChat binding (it may have unbound since the read)."""


class NoNumberToCall(preferences.PreferenceRefused):
    """Notice calls to stop or allow for a resident with no number on record to call."""


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who is choosing: the identified ID number, and this call."""

    id_number: str
    call_id: str


class NoticeSettings:
    def __init__(self, store: Store) -> None:
        self.store = store

    def read(self, who: Caller) -> dict[str, Any]:
        with self.store.session() as s:
            rows = self._rows(s, who)
            return _summary(s, who, rows)

    def change(self, who: Caller, *, channels: str | None = None, language: str | None = None) -> dict[str, Any]:
        """Keep the new channels or language for all notices; WeChatNotBound if WeChat is
        chosen without a binding (then nothing is written)."""
        with self.store.session() as s:
            rows = self._rows(s, who)
            now = _current(rows)
            chosen = parse_channels(channels) if channels is not None else now.channels
            if Channel.WECHAT in chosen and s.get(WeChatBinding, who.id_number) is None:
                raise WeChatNotBound("WeChat chosen but the ID number is not bound to WeChat")
            new = preferences.parse(
                ",".join(chosen),
                language or now.language,
                *_quiet(now),
                voice_number=now.voice_number,
                source=SOURCE,
            )
            preference_audit.change(
                s, actor=ACTOR, kind=KIND, subject_id=who.id_number, category=ALL, preference=new, call_id=who.call_id
            )
            return _summary(s, who, {**rows, ALL: new})

    def allow_calls(self, who: Caller, *, allowed: bool) -> dict[str, Any]:
        """Stop (or allow again) notice calls to the number they ring (see the module doc)."""
        with self.store.session() as s:
            rows = self._rows(s, who)
            number = _notice_number(s, who, rows)
            if number is None:
                raise NoNumberToCall("no number on record for notice calls to stop or allow")
            preference_audit.set_voice_opt_out(
                s,
                actor=ACTOR,
                phone=number,
                opted_out=not allowed,
                source=SOURCE,
                resident_id=preference_audit.resident_of(s, KIND, who.id_number),
                call_id=who.call_id,
            )
            return _summary(s, who, rows)

    @staticmethod
    def _rows(s: Session, who: Caller) -> dict[str, Preference | str]:
        return preference_audit.read(s, actor=ACTOR, kind=KIND, subject_id=who.id_number, call_id=who.call_id)


def _current(rows: dict[str, Preference | str]) -> Preference:
    """The choice for all notices; a row the gateway cannot use counts as SMS, as it does there."""
    chosen = preferences.choose(rows, ALL)
    return DEFAULT if isinstance(chosen, str) else chosen


def _quiet(p: Preference) -> tuple[str | None, str | None]:
    return (f"{p.quiet[0]:%H:%M}", f"{p.quiet[1]:%H:%M}") if p.quiet else (None, None)


def _notice_number(s: Session, who: Caller, rows: dict[str, Preference | str]) -> str | None:
    """The number notice calls ring: the row's number to call, else the registered phone."""
    chosen = _current(rows).voice_number
    if chosen:
        return phone_number(chosen)
    return s.scalar(select(Resident.phone).where(Resident.id_number == who.id_number))


def _summary(s: Session, who: Caller, rows: dict[str, Preference | str]) -> dict[str, Any]:
    now = _current(rows)
    number = _notice_number(s, who, rows)
    return {
        "channels": ",".join(now.channels),
        "language": now.language,
        "wechat": s.get(WeChatBinding, who.id_number) is not None,
        "voice_calls": None if number is None else s.get(VoiceOptOut, number) is None,
        "others": sum(1 for category in rows if category != ALL),
    }
