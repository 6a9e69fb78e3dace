"""A subject's notice preferences as a person at a desk reads them: every category of their
kind with its own row and the choice the gateway would make, the numbers that may be called
and whether each asked not to be, and whether WeChat is bound.

`hotline prefs` and the console's notification settings page both show this, and change it
through `set_choice` and `clear_choice`; every read and every change goes through
core/preference_audit.py (audited). Categories are the templates' (sms/templates.py), per
subject kind: a person's notices are not an employer's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit, preference_audit, preferences
from core.business import BusinessPort
from core.db import Store
from core.destinations import DestinationPolicy, DestinationRefused
from core.idnumber import IdProblem, problem
from core.masking import mask_phone
from core.models import VoiceOptOut, WeChatBinding
from core.phones import BadPhoneNumber, store_form
from core.preferences import ALL, Preference, PreferenceRefused
from core.sample import credit_code_valid
from sms.templates import TEMPLATES

_ID_PROBLEMS: Final = {
    IdProblem.TOO_SHORT: "it has fewer than 18 characters",
    IdProblem.TOO_LONG: "it has more than 18 characters",
    IdProblem.NOT_DIGITS: "17 digits then a digit or X",
    IdProblem.BAD_DATE: "the birth date in it is not a date",
    IdProblem.BAD_CHECK: "its check character is wrong",
}


def categories(kind: str) -> tuple[str, ...]:
    """The notice categories a subject of `kind` can get, from the templates."""
    return tuple(sorted({t.category for t in TEMPLATES.values() if t.subject_kind == kind}))


def check_subject(kind: str, subject_id: str) -> None:
    """PreferenceRefused unless `subject_id` is a well-formed ID number (GB 11643) for a
    person, or unified social credit code (GB 32100) for a unit."""
    preferences.check_subject(kind, subject_id)
    if kind == "person":
        wrong = problem(subject_id)
        if wrong is not None:
            raise PreferenceRefused(f"not a valid ID number (GB 11643): {_ID_PROBLEMS[wrong]}")
    elif not credit_code_valid(subject_id):
        raise PreferenceRefused("not a valid unified social credit code (GB 32100): 18 characters, check included")


def check_category(kind: str, category: str) -> None:
    """'*' or one of the kind's categories; the refusal lists them."""
    preferences.check_category(category, frozenset(categories(kind)))


@dataclass(frozen=True)
class Choice:
    category: str
    own: Preference | str | None  # the category's own row (a string: why it cannot be used)
    effective: Preference | str  # what the gateway uses: own row, else '*', else SMS
    via: str  # "own", "*" or "default"


@dataclass(frozen=True)
class Number:
    phone: str  # store form
    registered: bool  # a registered phone (else only named as the number to call)
    voice_opt_out: bool


@dataclass(frozen=True)
class PreferenceView:
    kind: str
    subject_id: str
    star: Preference | str | None
    choices: tuple[Choice, ...]
    others: dict[str, Preference | str]  # rows for categories no template of the kind has
    numbers: tuple[Number, ...]
    wechat_bound: bool

    def as_json(self) -> dict[str, Any]:
        """The view with every phone number masked (it is printed and logged by scripts)."""
        return {
            "subject_kind": self.kind,
            "star": preference_json(self.star),
            "categories": [
                {
                    "category": c.category,
                    "own": preference_json(c.own),
                    "effective": preference_json(c.effective),
                    "via": c.via,
                }
                for c in self.choices
            ],
            "other_rows": {k: preference_json(v) for k, v in sorted(self.others.items())},
            "numbers": [
                {"phone": mask_phone(n.phone), "registered": n.registered, "voice_opt_out": n.voice_opt_out}
                for n in self.numbers
            ],
            "wechat_bound": self.wechat_bound,
        }


def preference_json(p: Preference | str | None) -> dict[str, Any] | None:
    if p is None:
        return None
    if isinstance(p, str):
        return {"refused": p}
    return {
        "channels": list(p.channels),
        "language": p.language,
        "quiet": [f"{p.quiet[0]:%H:%M}", f"{p.quiet[1]:%H:%M}"] if p.quiet else None,
        "voice_number": mask_phone(p.voice_number) if p.voice_number else None,
        "source": p.source,
    }


def describe(p: Preference | str | None) -> str:
    """One line for a screen, the number to call masked; a refused row says why."""
    if p is None:
        return "-"
    if isinstance(p, str):
        return f"refused, sent by SMS ({p})"
    return preference_audit.describe(p)


def _choices(kind: str, rows: dict[str, Preference | str]) -> tuple[Choice, ...]:
    out = []
    for category in categories(kind):
        own = rows.get(category)
        via = "own" if own else ALL if rows.get(ALL) else "default"
        out.append(Choice(category, own, preferences.choose(rows, category), via))
    return tuple(out)


def _numbers(
    session: Session, registered: Sequence[str], rows: dict[str, Preference | str], country_code: str
) -> tuple[Number, ...]:
    chosen = []
    for p in rows.values():
        if isinstance(p, Preference) and p.voice_number:
            try:
                chosen.append(store_form(p.voice_number, country_code))
            except BadPhoneNumber:
                continue  # the gateway skips voice for it, saying why in the notice's history
    every = sorted(set(registered) | set(chosen))
    out_ = set(session.scalars(select(VoiceOptOut.phone).where(VoiceOptOut.phone.in_(every)))) if every else set()
    return tuple(Number(p, p in registered, p in out_) for p in every)


def registered_phones(port: BusinessPort, kind: str, subject_id: str, country_code: str) -> list[str]:
    """The subject's registered numbers in store form (one that is no number left out)."""
    found = []
    for raw in port.recipients(kind, [subject_id]).get(subject_id, []):
        try:
            found.append(store_form(raw, country_code))
        except BadPhoneNumber:
            continue
    return sorted(set(found))


def view(
    store: Store,
    port: BusinessPort,
    *,
    actor: str,
    kind: str,
    subject_id: str,
    channel: str,
    country_code: str = "86",
) -> PreferenceView:
    """The subject's preferences (the read audited as `actor` on `channel`)."""
    check_subject(kind, subject_id)
    registered = registered_phones(port, kind, subject_id, country_code)
    with store.session() as s:
        rows = preference_audit.read(s, actor=actor, kind=kind, subject_id=subject_id, channel=channel)
        known = set(categories(kind)) | {ALL}
        bound = kind == "person" and s.get(WeChatBinding, subject_id) is not None
        return PreferenceView(
            kind,
            subject_id,
            rows.get(ALL),
            _choices(kind, rows),
            {k: v for k, v in rows.items() if k not in known},
            _numbers(s, registered, rows, country_code),
            bound,
        )


def set_choice(
    store: Store,
    *,
    actor: str,
    kind: str,
    subject_id: str,
    category: str,
    preference: Preference,
    channel: str,
    keep_voice_number: bool = False,
) -> None:
    """Keep `preference` for the category ('*': every one without its own row), audited.
    With `keep_voice_number`, a preference naming no number to call keeps the one the
    category's row named (a form that does not show the number does not drop it)."""
    check_subject(kind, subject_id)
    check_category(kind, category)
    with store.session() as s:
        audit.lock_chain(s)
        if keep_voice_number and preference.voice_number is None:
            before = preferences.show(s, kind, subject_id).get(category)
            if isinstance(before, Preference) and before.voice_number:
                preference = dataclasses.replace(preference, voice_number=before.voice_number)
        preference_audit.change(
            s, actor=actor, kind=kind, subject_id=subject_id, category=category, preference=preference, channel=channel
        )


def clear_choice(store: Store, *, actor: str, kind: str, subject_id: str, category: str | None, channel: str) -> int:
    """Drop the category's row (None: every row, back to SMS), audited; how many went."""
    check_subject(kind, subject_id)
    if category is not None:
        check_category(kind, category)
    with store.session() as s:
        return preference_audit.clear(
            s, actor=actor, kind=kind, subject_id=subject_id, category=category, channel=channel
        )


def parse_quiet(text: str) -> tuple[str, str] | None:
    """`21:00-08:00` as its two ends; `""` or `none`: no quiet hours.

    >>> parse_quiet("21:00-08:00"), parse_quiet("none")
    (('21:00', '08:00'), None)
    """
    given = text.strip().lower()
    if given in ("", "none"):
        return None
    start, dash, end = given.partition("-")
    if not dash:
        raise PreferenceRefused(f"quiet hours {text[:20]!r}: write HH:MM-HH:MM, e.g. 21:00-08:00, or none")
    return start.strip(), end.strip()


def phone_number(
    text: str | None, country_code: str, what: str = "the number to call", policy: DestinationPolicy | None = None
) -> str | None:
    """`text` in store form (None if empty); PreferenceRefused naming `what` if it is no number,
    or (with `policy`: a number to call) one the destination policy refuses (its cause)."""
    if not text or not text.strip():
        return None
    try:
        return store_form(text, country_code) if policy is None else policy.check(text)
    except DestinationRefused as exc:
        raise PreferenceRefused(f"{what}: {exc}") from exc
    except BadPhoneNumber as exc:
        raise PreferenceRefused(f"{what} is not a phone number ({exc})") from exc
