"""One helper for every piece of private data that may appear in a log line or a screen."""

from __future__ import annotations

import re


def mask_id(id_number: str | None) -> str:
    """330523********123X style: region and last four stay, birth date hidden."""
    if not id_number:
        return "-"
    if len(id_number) < 10:
        return "*" * len(id_number)
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def mask_phone(phone: str | None) -> str:
    """138****5678."""
    if not phone:
        return "-"
    if len(phone) < 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_openid(openid: str | None) -> str:
    """oAbC***: a WeChat openid names one resident to one official account, so only its
    first four characters show (enough to tell two apart in a log, not to address one)."""
    if not openid:
        return "-"
    if len(openid) < 8:
        return "***"
    return openid[:4] + "***"


def mask_digits(digits: str | None) -> str:
    """Any entry that may be a PIN or an ID: only its length shows."""
    return "*" * len(digits or "")


def mask_numbers(text: str) -> str:
    """Free text (an error message) with every run of seven or more digits masked: phone
    and ID numbers never leave in it."""
    return _LONG_NUMBER.sub(lambda m: "*" * len(m.group()), text)


_LONG_NUMBER = re.compile(r"\d{7,}")
