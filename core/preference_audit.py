"""Reading and changing a subject's notice preferences, each time in the audit trail.

The IVR's notification settings, the console's page and `hotline prefs` all come through
here: a read is audited before its rows are handed out, a change or a clear in the same
transaction as the rows it writes. A person's entry names the resident (`residents.id` by
their ID number); a unit's names none and says its credit code masked in the detail. The
detail never holds a number to call unmasked.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core import audit, preferences
from core.masking import mask_id, mask_phone
from core.models import Resident, VoiceOptOut, utcnow
from core.preferences import Preference

ACTION_READ: Final = "read:preferences"
ACTION_CHANGE: Final = "change:preferences"
ACTION_CLEAR: Final = "clear:preferences"
ACTION_OPT_OUT: Final = "change:voice_optout"


def resident_of(session: Session, kind: str, subject_id: str) -> int | None:
    """The resident an entry names: a person's row by ID number (None for a unit, or an
    ID number the platform has no resident for)."""
    if kind != "person":
        return None
    return session.scalar(select(Resident.id).where(Resident.id_number == subject_id))


def _subject(kind: str, subject_id: str) -> str:
    return f"{kind} {mask_id(subject_id)}"


def describe(preference: Preference) -> str:
    """What the audit detail says of a preference: its line, the number to call masked."""
    line = preference.describe()
    return f"{line} · call {mask_phone(preference.voice_number)}" if preference.voice_number else line


def read(
    session: Session,
    *,
    actor: str,
    kind: str,
    subject_id: str,
    call_id: str | None = None,
    channel: str | None = None,
) -> dict[str, Preference | str]:
    """The subject's rows per category (see preferences.show), the read audited first."""
    preferences.check_subject(kind, subject_id)
    audit.record(
        session,
        actor=actor,
        action=ACTION_READ,
        resident_id=resident_of(session, kind, subject_id),
        call_id=call_id,
        detail=_subject(kind, subject_id),
        channel=channel,
    )
    return preferences.show(session, kind, subject_id)


def change(
    session: Session,
    *,
    actor: str,
    kind: str,
    subject_id: str,
    category: str,
    preference: Preference,
    call_id: str | None = None,
    channel: str | None = None,
) -> None:
    """Keep `preference` for the category ('*': all), with its audit entry."""
    preferences.check_subject(kind, subject_id)
    preferences.check_category(category)
    audit.record(
        session,
        actor=actor,
        action=ACTION_CHANGE,
        resident_id=resident_of(session, kind, subject_id),
        call_id=call_id,
        detail=f"{_subject(kind, subject_id)} {category}: {describe(preference)}",
        channel=channel,
    )
    preferences.save(session, kind, subject_id, category, preference)


def clear(
    session: Session,
    *,
    actor: str,
    kind: str,
    subject_id: str,
    category: str | None = None,
    call_id: str | None = None,
    channel: str | None = None,
) -> int:
    """Drop the category's row (None: every row, back to SMS for all), audited; how many went."""
    preferences.check_subject(kind, subject_id)
    if category is not None:
        preferences.check_category(category)
    audit.record(
        session,
        actor=actor,
        action=ACTION_CLEAR,
        resident_id=resident_of(session, kind, subject_id),
        call_id=call_id,
        detail=f"{_subject(kind, subject_id)} {category or 'all categories'}",
        channel=channel,
    )
    return preferences.forget(session, kind, subject_id, category)


def set_voice_opt_out(
    session: Session,
    *,
    actor: str,
    phone: str,
    opted_out: bool,
    source: str,
    resident_id: int | None = None,
    call_id: str | None = None,
    channel: str | None = None,
) -> bool:
    """Add (or with opted_out False, lift) the number's voice opt-out; whether it changed.
    `phone` is in core.phones.store_form."""
    audit.record(
        session,
        actor=actor,
        action=ACTION_OPT_OUT,
        resident_id=resident_id,
        call_id=call_id,
        detail=f"{mask_phone(phone)} {'no notice calls' if opted_out else 'notice calls allowed again'}",
        channel=channel,
    )
    there = session.get(VoiceOptOut, phone) is not None
    if opted_out and not there:
        session.add(VoiceOptOut(phone=phone, at=utcnow(), source=source[:48]))
        session.flush()
        return True
    if not opted_out and there:
        session.execute(delete(VoiceOptOut).where(VoiceOptOut.phone == phone))
        return True
    return False
