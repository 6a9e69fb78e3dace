"""How each resident (or employer) wants notices: channels in order, language, quiet hours.

One row per subject and category in `notice_preferences`; category '*' is the choice for
every category without a row of its own. A subject with no row at all gets every notice
by SMS, as before channels could be chosen. Whoever sets a preference (the resident in the
IVR, an agent in the console, the business system, `hotline prefs`) goes through `parse`,
which refuses an unknown channel or language naming the ones there are; the gateway reads
rows the business system wrote itself through `parse` too, so a bad row is refused there
with its reason rather than sent nowhere.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, Table, delete, select
from sqlalchemy.orm import Session

from core.db import among, chunks, upsert
from core.errors import HotlineError
from core.models import NoticePreference, utcnow
from core.states import Channel

ALL: Final = "*"
CHANNELS: Final = tuple(c.value for c in Channel)
LANGUAGES: Final = ("zh", "en")
SUBJECT_KINDS: Final = ("person", "unit")
_CATEGORY = re.compile(r"^[a-z_]{1,20}$")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
TABLE: Table = NoticePreference.__table__  # type: ignore[assignment]


class PreferenceRefused(HotlineError, ValueError):
    """A preference that cannot be kept: the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Preference:
    channels: tuple[Channel, ...]
    language: str = "zh"
    quiet: tuple[dt.time, dt.time] | None = None  # local start, end (may cross midnight)
    voice_number: str | None = None
    source: str = "business"

    def describe(self) -> str:
        """One line for a person to read, e.g. `voice, sms · zh · quiet 21:00-08:00`."""
        parts = [", ".join(self.channels), self.language]
        if self.quiet:
            parts.append(f"quiet {self.quiet[0]:%H:%M}-{self.quiet[1]:%H:%M}")
        return " · ".join(parts)


DEFAULT: Final = Preference(channels=(Channel.SMS,))


def parse_channels(text: str) -> tuple[Channel, ...]:
    """Channels in order from `"voice, sms"` (commas or spaces), each once.

    >>> parse_channels("Voice, sms")
    (<Channel.VOICE: 'voice'>, <Channel.SMS: 'sms'>)
    >>> parse_channels("fax")
    Traceback (most recent call last):
    ...
    core.preferences.PreferenceRefused: unknown channel 'fax': the channels are sms, voice, wechat
    """
    names = [n for n in re.split(r"[\s,]+", text.strip().lower()) if n]
    if not names:
        raise PreferenceRefused(f"no channel given: the channels are {', '.join(CHANNELS)}")
    chosen: list[Channel] = []
    for name in names:
        if name not in CHANNELS:
            raise PreferenceRefused(f"unknown channel {name[:20]!r}: the channels are {', '.join(CHANNELS)}")
        if Channel(name) in chosen:
            raise PreferenceRefused(f"channel {name} is named twice")
        chosen.append(Channel(name))
    return tuple(chosen)


def quiet_end(window: tuple[dt.time, dt.time], zone: str, now: dt.datetime) -> dt.datetime:
    """`now`, or the end of the local `window` (which may cross midnight) if `now` is inside.

    >>> at = dt.datetime(2026, 12, 3, 14, 0, tzinfo=dt.UTC)  # 22:00 in Beijing
    >>> quiet_end((dt.time(21), dt.time(8)), "Asia/Shanghai", at)
    datetime.datetime(2026, 12, 4, 0, 0, tzinfo=datetime.timezone.utc)
    """
    start, end = window
    local = now.astimezone(zoneinfo.ZoneInfo(zone))
    t = local.time().replace(tzinfo=None)
    inside = (start <= t or t < end) if start > end else (start <= t < end)
    if not inside:
        return now
    wake = local.replace(hour=end.hour, minute=end.minute, second=end.second, microsecond=0)
    if wake <= local:
        wake += dt.timedelta(days=1)
    return wake.astimezone(dt.UTC)


def parse_clock(text: str) -> dt.time:
    if not _CLOCK.match(text.strip()):
        raise PreferenceRefused(f"not a time of day {text[:10]!r}: write HH:MM, e.g. 21:00")
    hour, minute = text.strip().split(":")
    return dt.time(int(hour), int(minute))


def parse(
    channels: str,
    language: str = "zh",
    quiet_start: str | None = None,
    quiet_end: str | None = None,
    voice_number: str | None = None,
    source: str = "business",
) -> Preference:
    """A preference from its stored or given text; PreferenceRefused says what is wrong."""
    if language not in LANGUAGES:
        raise PreferenceRefused(f"unknown language {language[:10]!r}: the languages are {', '.join(LANGUAGES)}")
    if (quiet_start is None) != (quiet_end is None):
        raise PreferenceRefused("quiet hours need both a start and an end (HH:MM), or neither")
    quiet = None
    if quiet_start is not None and quiet_end is not None:
        quiet = (parse_clock(quiet_start), parse_clock(quiet_end))
        if quiet[0] == quiet[1]:
            raise PreferenceRefused("quiet hours that start when they end: give two different times")
    number = (voice_number or "").strip() or None
    if number is not None and not re.fullmatch(r"\+?[0-9 -]{5,20}", number):
        raise PreferenceRefused("the number to call is not a phone number")
    return Preference(parse_channels(channels), language, quiet, number, source)


def check_subject(kind: str, subject_id: str) -> None:
    if kind not in SUBJECT_KINDS:
        raise PreferenceRefused(f"unknown subject kind {kind[:10]!r}: person (ID number) or unit (credit code)")
    if not subject_id or len(subject_id) > 32:
        raise PreferenceRefused("no subject id given (an ID number or a unified social credit code)")


def check_category(category: str, known: frozenset[str] | None = None) -> None:
    """'*' or a category name; with `known`, one of them (the gateway's template categories)."""
    if category == ALL:
        return
    if not _CATEGORY.match(category) or (known is not None and category not in known):
        listed = f": {ALL} or one of {', '.join(sorted(known))}" if known else ""
        raise PreferenceRefused(f"unknown notice category {category[:20]!r}{listed}")


def _of(row: Any) -> Preference:
    return parse(row.channels, row.language, row.quiet_start, row.quiet_end, row.voice_number, row.source)


def load(conn: Connection | Session, kind: str, subject_ids: list[str]) -> dict[str, dict[str, Preference | str]]:
    """Per subject with any row, per category: its Preference, or the reason a row the
    business system wrote cannot be used (a string), for the gateway to record."""
    bind = conn.connection() if isinstance(conn, Session) else conn
    out: dict[str, dict[str, Preference | str]] = {}
    for part in chunks(sorted(set(subject_ids))):
        query = select(TABLE).where(TABLE.c.subject_kind == kind, among(bind, TABLE.c.subject_id, part))
        for row in bind.execute(query):
            try:
                out.setdefault(row.subject_id, {})[row.category] = _of(row)
            except PreferenceRefused as exc:
                out.setdefault(row.subject_id, {})[row.category] = f"preference {row.category}: {exc}"
    return out


def choose(rows: dict[str, Preference | str] | None, category: str) -> Preference | str:
    """The subject's preference for `category`: its own row, else '*', else SMS."""
    if not rows:
        return DEFAULT
    return rows.get(category) or rows.get(ALL) or DEFAULT


def show(conn: Connection | Session, kind: str, subject_id: str) -> dict[str, Preference | str]:
    return load(conn, kind, [subject_id]).get(subject_id, {})


def save(
    session: Session | Connection,
    kind: str,
    subject_id: str,
    category: str,
    preference: Preference,
    now: dt.datetime | None = None,
) -> None:
    """Keep `preference` for the subject's `category` ('*': all), replacing what was there.
    Auditing the change is the caller's (it knows who asked)."""
    check_subject(kind, subject_id)
    check_category(category)
    values = {
        "subject_kind": kind,
        "subject_id": subject_id,
        "category": category,
        "channels": ",".join(preference.channels),
        "language": preference.language,
        "quiet_start": f"{preference.quiet[0]:%H:%M}" if preference.quiet else None,
        "quiet_end": f"{preference.quiet[1]:%H:%M}" if preference.quiet else None,
        "voice_number": preference.voice_number,
        "source": preference.source[:48],
        "updated_at": now or utcnow(),
    }
    conn = session.connection() if isinstance(session, Session) else session
    stmt = upsert(conn, TABLE).values(**values)
    keys = ["subject_kind", "subject_id", "category"]
    conn.execute(
        stmt.on_conflict_do_update(index_elements=keys, set_={k: v for k, v in values.items() if k not in keys})
    )


def forget(session: Session | Connection, kind: str, subject_id: str, category: str | None = None) -> int:
    """Drop the subject's row for `category` (None: all their rows): back to SMS. How many went."""
    conn = session.connection() if isinstance(session, Session) else session
    stmt = delete(TABLE).where(TABLE.c.subject_kind == kind, TABLE.c.subject_id == subject_id)
    if category is not None:
        stmt = stmt.where(TABLE.c.category == category)
    return int(conn.execute(stmt).rowcount)
