"""Phone numbers in one form: E.164 on the wire to the outside, the national form in the store.

Numbers reach us written many ways: a handset's MO source as `13812345678`, `8613812345678`,
`+8613812345678` or `008613812345678` (the SMSC's choice of TON), a registered number typed
by a clerk as `138-1234-5678`. `to_e164` reads all of these as one E.164 number (ITU-T
E.164: `+`, country code, national significant number, at most 15 digits). The store keeps
what the business system keeps, China's national form (`13812345678`, a landline
`05721234567`; any other number stays E.164), so `store_form` is what every number is turned
into where it enters, and what numbers are compared in. `spellings` lists the forms a
business system may hold the same number in, for look-ups in tables that are not ours.
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
    if country_code == "86" and international.startswith("86") and national.startswith("1") and len(national) != 11:
        raise BadPhoneNumber(f"a mobile number of China has 11 digits, not {len(national)}")
    return "+" + international


def national(e164: str, country_code: str = "86") -> str:
    """The store's form of an E.164 number: in China (`country_code` 86, the sample's and
    the business system's form) national, mobiles as they are and other numbers with the
    trunk prefix 0; any other number stays E.164 (no national rule is assumed for it)."""
    prefix = "+" + country_code
    if country_code != "86" or not e164.startswith(prefix):
        return e164
    rest = e164[len(prefix) :]
    return rest if rest.startswith("1") else "0" + rest


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
