"""Phone numbers in one form: E.164 on the wire to the outside, the national form in the store.

Numbers reach us written many ways: a handset's MO source as `13812345678`, `8613812345678`,
`+8613812345678` or `008613812345678` (the SMSC's choice of TON), a registered number typed
by a clerk as `138-1234-5678`. `to_e164` reads all of these as one E.164 number (ITU-T
E.164: `+`, country code, national significant number, at most 15 digits). The store keeps
what the business system keeps, China's national form (`13812345678`, a landline
`05721234567`; any other number stays E.164), so `store_form` is what every number is turned
into where it enters, and what numbers are compared in. `spellings` lists the forms a
business system may hold the same number in, for look-ups in tables that are not ours.

Caller ids are another matter: whatever the carrier or a SIP peer presented, possibly longer
than `calls.caller_number`, with letters (`anonymous`, a SIP URI) or control characters
(PostgreSQL refuses NUL in text). `clean_caller_id` stores them trimmed and flagged, so a
call's record is never lost to one; `phone_number` says whether one looks like a real
Chinese phone number, the only kind offered a callback. Carriers send the same line as
`13812345678`, `+8613812345678`, `8613812345678` or `008613812345678` (their choice of
number format): a Chinese number sent in digits is stored in the national form, so one
caller's calls are one number in the records.

>>> clean_caller_id("13812345678"), clean_caller_id("+8613812345678"), clean_caller_id("anonymous")
(('13812345678', None), ('13812345678', None), ('anonymous', 'not_digits'))
>>> phone_number("+86 138-1234-5678"), phone_number("057187654321"), phone_number("12345")
('13812345678', '057187654321', None)
"""

from __future__ import annotations

import re
from typing import Final

from core.errors import HotlineError

_SEPARATORS: Final = re.compile(r"[\s\-.()]")
E164_MAX_DIGITS: Final = 15  # ITU-T E.164 §6.2.1
NATIONAL_MIN_DIGITS: Final = 7  # shorter is a short code or a typo, not a handset


class BadPhoneNumber(HotlineError):
    """Text that cannot be read as a phone number."""


def to_e164(raw: str, country_code: str = "86") -> str:
    """The number as E.164; a national one is taken to be in `country_code`.

    >>> [to_e164(n) for n in ("13812345678", "8613812345678", "+86 138-1234-5678", "008613812345678")]
    ['+8613812345678', '+8613812345678', '+8613812345678', '+8613812345678']
    >>> to_e164("0572-1234567")
    '+865721234567'
    """
    text = _SEPARATORS.sub("", raw or "")
    plus = text.startswith("+")
    digits = text[1:] if plus else text
    if not digits.isdigit() or not digits.isascii():
        raise BadPhoneNumber(f"not a phone number: {len(raw or '')} characters, not all digits")
    if plus:
        international = digits
    elif digits.startswith("00"):  # the international prefix dialled in China (and most places)
        international = digits[2:]
    elif digits.startswith("0"):  # the national trunk prefix
        international = country_code + digits[1:]
    elif digits.startswith(country_code) and len(digits) > 11:
        # A national number is at most 11 digits (China's mobiles), so a longer one that
        # begins with the country code is international written without its `+`.
        international = digits
    else:
        international = country_code + digits
    national = international.removeprefix(country_code)
    if len(international) > E164_MAX_DIGITS or len(national) < NATIONAL_MIN_DIGITS:
        raise BadPhoneNumber(f"not a phone number: {len(international)} digits")
    mobile = country_code == "86" and international.startswith("86") and _china_mobile_like(national)
    if mobile and len(national) != 11:
        raise BadPhoneNumber(f"a mobile number of China has 11 digits, not {len(national)}")
    return "+" + international


def _china_mobile_like(national: str) -> bool:
    """A mobile (13x-19x); Beijing's fixed lines (area code 10) also begin with 1."""
    return national.startswith("1") and not national.startswith("10")


def national(e164: str, country_code: str = "86") -> str:
    """The store's form of an E.164 number: in China (`country_code` 86, the sample's and
    the business system's form) national, mobiles as they are and other numbers with the
    trunk prefix 0; any other number stays E.164 (no national rule is assumed for it)."""
    prefix = "+" + country_code
    if country_code != "86" or not e164.startswith(prefix):
        return e164
    rest = e164[len(prefix) :]
    return rest if _china_mobile_like(rest) else "0" + rest


def store_form(raw: str, country_code: str = "86") -> str:
    """`raw` in the one form the store keeps and compares numbers in.

    >>> store_form("+86 138 1234 5678"), store_form("0086-572-1234567"), store_form("+44 20 7946 0000")
    ('13812345678', '05721234567', '+442079460000')
    """
    return national(to_e164(raw, country_code), country_code)


def spellings(number: str, country_code: str = "86") -> list[str]:
    """The forms a table we do not own may hold `number` (in store form) in: national,
    E.164, and the country code with 00 or nothing before it."""
    e164 = to_e164(number, country_code)
    digits = e164[1:]
    return sorted({national(e164, country_code), e164, digits, "00" + digits})


# --- caller ids ---------------------------------------------------------------------------

CALLER_ID_MAX: Final = 32  # calls.caller_number
_DIGITS: Final = re.compile(r"\+?\d+")
_CALLER_SEPARATORS: Final = re.compile(r"[ \-()]")
_COUNTRY = re.compile(r"^(?:\+86|0086|86)(?=\d{9,12}$)")
# Mobile: 1, then 3-9, then 9 digits (MIIT's numbering plan: 11 digits, 13x-19x).
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Fixed line: trunk prefix 0, area code of 2 or 3 digits (010, 021, 0571), a local number of
# 7 or 8 digits that does not start with 0 or 1.
_FIXED = re.compile(r"0[1-9]\d{1,2}[2-9]\d{6,7}")


def clean_caller_id(raw: str | None) -> tuple[str | None, str | None]:
    """The caller id to store and its flag: a Chinese phone number in digits (with +86, 86
    or 0086 or without) in the national form, anything else as presented (flag None) or
    flagged `not_digits` (anything but digits with an optional leading +) and `too_long`
    (cut to the column)."""
    if raw is None or raw in ("", "unknown"):
        return None, None
    digits = _DIGITS.fullmatch(raw) is not None
    national = phone_number(raw) if digits else None
    if national is not None:
        return national, None
    flags = [] if digits else ["not_digits"]
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
    digits = _COUNTRY.sub("", _CALLER_SEPARATORS.sub("", text))
    if _MOBILE.fullmatch(digits) or _FIXED.fullmatch(digits):
        return digits
    if _FIXED.fullmatch("0" + digits) and len(digits) < len(_CALLER_SEPARATORS.sub("", text)):
        return "0" + digits  # +86 571 ...: the trunk 0 is dropped after the country code
    return None
