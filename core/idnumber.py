"""Citizen ID numbers (GB 11643-1999): 18 characters, the last a check character.

The check character is ISO 7064 MOD 11-2 over the first 17 digits with weights
2^(17-i) mod 11; a value of 10 is written `X`. On a phone keypad the caller enters `X`
as `*`.

>>> check_character("33052319800101001")
'1'
>>> is_valid("330523198001010011")
True
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Final

WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))
CHECK_CHARS: Final = "10X98765432"


class IdProblem(enum.Enum):
    """Why an entered ID number was refused; each has its own spoken prompt."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    NOT_DIGITS = "not_digits"
    BAD_DATE = "bad_date"
    BAD_CHECK = "bad_check"


def check_character(first17: str) -> str:
    """The GB 11643 check character for 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def from_keypad(entry: str) -> str:
    """Keypad entry to ID number: `*` in the last place stands for `X`."""
    if entry.endswith("*"):
        return entry[:-1] + "X"
    return entry


def problem(id_number: str) -> IdProblem | None:
    """What is wrong with an ID number, or None when it is well formed."""
    if len(id_number) < 18:
        return IdProblem.TOO_SHORT
    if len(id_number) > 18:
        return IdProblem.TOO_LONG
    body, last = id_number[:17], id_number[17].upper()
    if not body.isdigit() or not (last.isdigit() or last == "X"):
        return IdProblem.NOT_DIGITS
    try:
        dt.date(int(body[6:10]), int(body[10:12]), int(body[12:14]))
    except ValueError:
        return IdProblem.BAD_DATE
    if check_character(body) != last:
        return IdProblem.BAD_CHECK
    return None


def is_valid(id_number: str) -> bool:
    return problem(id_number) is None


def complete(first17: str) -> str:
    """The full 18-character ID number for 17 digits."""
    return first17 + check_character(first17)
