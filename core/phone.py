"""Caller ids and phone numbers: what may be stored, and what may be called back.

Pure functions. A caller id is whatever the carrier or a SIP peer presented: it may be
longer than `calls.caller_number`, hold letters (`anonymous`, a SIP URI) or control
characters (PostgreSQL refuses NUL in text). It is stored trimmed and flagged, so the
call's record is never lost to it; only a number that looks like a real Chinese phone
number is offered a callback.

>>> clean_caller_id("13812345678")
('13812345678', None)
>>> clean_caller_id("anonymous")
('anonymous', 'not_digits')
>>> phone_number("+86 138-1234-5678"), phone_number("057187654321"), phone_number("12345")
('13812345678', '057187654321', None)
"""

from __future__ import annotations

import re

CALLER_ID_MAX = 32  # calls.caller_number
_DIGITS = re.compile(r"\+?\d+")
_SEPARATORS = re.compile(r"[ \-()]")
_COUNTRY = re.compile(r"^(?:\+86|0086|86)(?=\d{9,12}$)")
# Mobile: 1, then 3-9, then 9 digits (MIIT's numbering plan: 11 digits, 13x-19x).
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Fixed line: trunk prefix 0, area code of 2 or 3 digits (010, 021, 0571), a local number of
# 7 or 8 digits that does not start with 0 or 1.
_FIXED = re.compile(r"0[1-9]\d{1,2}[2-9]\d{6,7}")


def clean_caller_id(raw: str | None) -> tuple[str | None, str | None]:
    """The caller id to store and its flag (None if stored as presented): `not_digits` for
    anything but digits with an optional leading +, `too_long` when cut to the column."""
    if raw is None or raw in ("", "unknown"):
        return None, None
    flags = [] if _DIGITS.fullmatch(raw) else ["not_digits"]
    text = "".join(ch for ch in raw if ch.isprintable())
    if len(text) > CALLER_ID_MAX:
        text = text[:CALLER_ID_MAX]
        flags.append("too_long")
    return text or None, ",".join(flags) or None


def phone_number(text: str | None) -> str | None:
    """The national number if `text` looks like a real Chinese mobile or fixed-line number
    (optionally +86, 86 or 0086 before it, spaces and dashes allowed), else None."""
    if not text or len(text) > 24:
        return None
    digits = _COUNTRY.sub("", _SEPARATORS.sub("", text))
    if _MOBILE.fullmatch(digits) or _FIXED.fullmatch(digits):
        return digits
    if _FIXED.fullmatch("0" + digits) and len(digits) < len(_SEPARATORS.sub("", text)):
        return "0" + digits  # +86 571 ...: the trunk 0 is dropped after the country code
    return None
