"""The nuisance list (骚扰电话): calling numbers a supervisor listed, with a reason, until an
expiry; and the calls from them the IVR met.

A number is listed and looked up in one form, `number_key`: a Chinese mobile or fixed line
in the national form the call records use (`core.phones.phone_number`: `+86 138-1234-5678`,
`8613812345678` and `13812345678` are one number), any other country's number in E.164.
A withheld caller id (none, `anonymous`, `unknown`, ...) or one that is no phone number is
never listed: it would block every caller who presents the same, and the refusal says so.

A block holds while the clock given is before its `until`; an expired row stays until it is
listed again or lifted, and blocks nothing. Every change is audited (who, the number masked,
until when, the reason with any long number masked) in the transaction that makes it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.orm import Session

from core import audit
from core.db import Store
from core.errors import BlockRefused
from core.masking import mask_numbers, mask_phone
from core.models import BlockedCall, BlockedCaller, Call, Wrapup
from core.phones import BadPhoneNumber, phone_number, to_e164

ACTION_BLOCK: Final = "callers:block"
ACTION_UNBLOCK: Final = "callers:unblock"
STAGES: Final = ("ivr", "queue")
REASON_MAX: Final = 200
# The wrap-up code an agent gives a call from an abusive or nuisance caller (console/work.py):
# such a number is proposed for the list, never listed without a supervisor.
WRAPUP_ABUSIVE: Final = "abusive"
FLAGGED_WITHIN: Final = dt.timedelta(days=30)
CALLS_WITHIN: Final = dt.timedelta(hours=24)
# What carriers and SIP peers present when the caller withheld their number.
WITHHELD: Final = frozenset({"", "anonymous", "unknown", "withheld", "private", "restricted", "unavailable"})
_SEPARATORS: Final = re.compile(r"[\s\-().]")
_DURATION: Final = re.compile(r"(\d{1,4})([dh])")


@dataclass(frozen=True, slots=True)
class Block:
    number: str
    reason: str
    until: dt.datetime
    blocked_by: str
    blocked_at: dt.datetime

    def active(self, now: dt.datetime) -> bool:
        return now < self.until

    def as_json(self, now: dt.datetime) -> dict[str, Any]:
        return {
            "number": self.number,
            "reason": self.reason,
            "until": self.until.isoformat(),
            "blocked_by": self.blocked_by,
            "blocked_at": self.blocked_at.isoformat(),
            "active": self.active(now),
        }


def number_key(raw: str | None) -> str | None:
    """The form a caller id is listed and looked up in, or None for a withheld or malformed one.

    >>> number_key("+86 138-1234-5678"), number_key("0571 8765 4321"), number_key("+44 20 7946 0000")
    ('13812345678', '057187654321', '+442079460000')
    >>> number_key("anonymous"), number_key("12345"), number_key("sip:evil@x")
    (None, None, None)
    """
    if raw is None:
        return None
    text = raw.strip()
    if text.lower() in WITHHELD:
        return None
    national = phone_number(text)
    if national is not None:
        return national
    compact = _SEPARATORS.sub("", text)
    if compact.startswith(("+", "00")) and not compact.startswith(("+86", "0086")):
        try:
            return to_e164(compact)
        except BadPhoneNumber:
            return None
    return None


def listable(raw: str | None) -> str:
    """`number_key` of a number to list; BlockRefused saying why for one that cannot be."""
    key = number_key(raw)
    if key is not None:
        return key
    text = (raw or "").strip()
    if text.lower() in WITHHELD:
        raise BlockRefused(
            f"a withheld caller id ({text or 'none'}) cannot be listed: "
            "it would block every caller who withholds theirs"
        )
    raise BlockRefused(
        f"not a phone number ({len(text)} characters): give a mobile (11 digits), a fixed line with its area code, "
        "or + and a country code"
    )


def parse_until(text: str, now: dt.datetime, zone: str) -> dt.datetime:
    """An expiry as typed: a local date (the block holds through that day), a local date and
    time (`2027-01-31T18:00`), one with its offset, or a duration from now (`30d`, `12h`).
    BlockRefused for anything else or a moment not after `now`."""
    text = text.strip()
    tz = ZoneInfo(zone)
    until: dt.datetime | None = None
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        n, unit = int(duration.group(1)), duration.group(2)
        until = now + (dt.timedelta(days=n) if unit == "d" else dt.timedelta(hours=n))
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise BlockRefused(f"--until {text!r} is not a date") from None
        until = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    else:
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            raise BlockRefused(
                f"an expiry is a date (2027-01-31), a date and time (2027-01-31T18:00) or a duration (30d, 12h), "
                f"not {text[:40]!r}"
            ) from None
        until = moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
    if until <= now:
        raise BlockRefused(f"the expiry {until.astimezone(tz):%Y-%m-%d %H:%M} is not in the future")
    return until.astimezone(dt.UTC)


def _reason(text: str) -> str:
    reason = " ".join(text.split())
    if not reason:
        raise BlockRefused("a reason is needed: supervisors reviewing the list read it")
    if len(reason) > REASON_MAX:
        raise BlockRefused(f"a reason has at most {REASON_MAX} characters, not {len(reason)}")
    return reason


def _view(row: BlockedCaller) -> Block:
    return Block(row.number, row.reason, row.until, row.blocked_by, row.blocked_at)


def _audit(s: Session, actor: str, action: str, detail: str, channel: str | None) -> None:
    audit.record(s, actor=actor, action=action, resident_id=None, detail=mask_numbers(detail), channel=channel)


def block(
    store: Store,
    raw: str,
    *,
    reason: str,
    until: dt.datetime,
    actor: str,
    now: dt.datetime,
    channel: str | None = None,
) -> Block:
    """List the number until `until` (again, with a new reason and expiry, if it was), audited."""
    number, why = listable(raw), _reason(reason)
    if until <= now:
        raise BlockRefused("the expiry is not in the future")
    with store.session() as s:
        _audit(s, actor, ACTION_BLOCK, f"{mask_phone(number)} until {until.isoformat()}: {why}", channel)
        row = s.get(BlockedCaller, number)
        if row is None:
            row = BlockedCaller(number=number)
            s.add(row)
        row.reason, row.until, row.blocked_by, row.blocked_at = why, until, actor[:64], now
        s.flush()
        return _view(row)


def unblock(store: Store, raw: str, *, actor: str, channel: str | None = None) -> Block:
    """Lift the number's block (an expired one too), audited; BlockRefused if it is not listed."""
    number = listable(raw)
    with store.session() as s:
        row = s.get(BlockedCaller, number)
        if row is None:
            raise BlockRefused(f"{mask_phone(number)} is not on the list")
        gone = _view(row)
        _audit(s, actor, ACTION_UNBLOCK, f"{mask_phone(number)} (was until {gone.until.isoformat()})", channel)
        s.execute(delete(BlockedCaller).where(BlockedCaller.number == number))
    return gone


def listed(store: Store, now: dt.datetime, *, expired: bool = False) -> list[Block]:
    """The blocks in force at `now` (with `expired`, the lapsed rows too), soonest expiry first."""
    query = select(BlockedCaller).order_by(BlockedCaller.until, BlockedCaller.number)
    if not expired:
        query = query.where(BlockedCaller.until > now)
    with store.session() as s:
        return [_view(r) for r in s.scalars(query)]


def blocked(store: Store, raw: str | None, now: dt.datetime) -> Block | None:
    """The block in force at `now` on this caller id, if any."""
    number = number_key(raw)
    if number is None:
        return None
    with store.session() as s:
        row = s.get(BlockedCaller, number)
        return _view(row) if row is not None and now < row.until else None


def meet_call(
    store: Store, raw: str | None, call_id: str, *, stage: str, treatment: str, now: dt.datetime
) -> Block | None:
    """At a call's start (`ivr`) or its queue entry (`queue`): the block on its caller id, if
    one holds, recorded once per call for the report."""
    number = number_key(raw)
    if number is None:
        return None
    with store.session() as s:
        row = s.get(BlockedCaller, number)
        if row is None or now >= row.until:
            return None
        if s.get(BlockedCall, call_id) is None:
            s.add(BlockedCall(call_id=call_id[:64], number=number, at=now, stage=stage, treatment=treatment))
        return _view(row)


def blocked_calls(c: Connection, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """Calls from listed numbers met in [start, end): how many, and from how many numbers."""
    where = (BlockedCall.at >= start, BlockedCall.at < end)
    calls, numbers = c.execute(select(func.count(), func.count(func.distinct(BlockedCall.number))).where(*where)).one()
    return {"calls": int(calls), "numbers": int(numbers)}


@dataclass(frozen=True, slots=True)
class Proposal:
    """A number proposed for the list: it called more than the set number of times in the
    last 24 hours (`calls`), or agents flagged its calls abusive in the last 30 days (`flagged`)."""

    number: str
    calls: int
    flagged: int

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "calls_24h": self.calls, "flagged_30d": self.flagged}


def proposals(store: Store, now: dt.datetime, *, calls_per_day: int) -> list[Proposal]:
    """Numbers a supervisor may want to list (`ivr.nuisance_calls_per_day`), not listed now;
    withheld and malformed caller ids are never proposed. Most flagged first, then most calls."""
    recent = (
        select(Call.caller_number, func.count())
        .where(Call.started_at >= now - CALLS_WITHIN, Call.started_at <= now, Call.caller_number.is_not(None))
        .group_by(Call.caller_number)
        .having(func.count() > calls_per_day)
    )
    flagged = (
        select(Call.caller_number, func.count())
        .join(Wrapup, Wrapup.call_id == Call.id)
        .where(Wrapup.code == WRAPUP_ABUSIVE, Wrapup.saved_at >= now - FLAGGED_WITHIN, Call.caller_number.is_not(None))
        .group_by(Call.caller_number)
    )
    with store.session() as s:
        calls: dict[str, int] = {}
        flags: dict[str, int] = {}
        for raw, n in s.execute(recent):
            if (key := number_key(raw)) is not None:
                calls[key] = calls.get(key, 0) + int(n)
        for raw, n in s.execute(flagged):
            if (key := number_key(raw)) is not None:
                flags[key] = flags.get(key, 0) + int(n)
        listed = set(s.scalars(select(BlockedCaller.number).where(BlockedCaller.until > now)))
    found = [Proposal(n, calls.get(n, 0), flags.get(n, 0)) for n in set(calls) | set(flags) if n not in listed]
    return sorted(found, key=lambda p: (-p.flagged, -p.calls, p.number))
