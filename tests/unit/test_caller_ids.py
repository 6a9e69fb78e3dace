"""Caller ids as stored, and which numbers may be called back."""

from __future__ import annotations

import pytest

from core.phones import CALLER_ID_MAX, clean_caller_id, phone_number


@pytest.mark.parametrize(
    ("raw", "stored", "flag"),
    [
        ("13812345678", "13812345678", None),
        # The forms carriers send one Chinese number in: one national form in the record.
        ("+8613812345678", "13812345678", None),
        ("8613812345678", "13812345678", None),
        ("008613812345678", "13812345678", None),
        ("+8657187654321", "057187654321", None),
        ("8657187654321", "057187654321", None),
        ("057187654321", "057187654321", None),
        # Not a Chinese phone number: as presented.
        ("12333", "12333", None),
        ("+442079460000", "+442079460000", None),
        ("+86 138 1234 5678", "+86 138 1234 5678", "not_digits"),
        ("1" * 200, "1" * CALLER_ID_MAX, "too_long"),
        ("Anonymous", "Anonymous", "not_digits"),
        ("sip:" + "a" * 196, ("sip:" + "a" * 196)[:CALLER_ID_MAX], "not_digits,too_long"),
        ("138\x0012345678", "13812345678", "not_digits"),  # NUL: PostgreSQL refuses it in text
        ("unknown", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_caller_ids_are_stored_trimmed_and_flagged(raw: str | None, stored: str | None, flag: str | None) -> None:
    assert clean_caller_id(raw) == (stored, flag)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("13812345678", "13812345678"),
        ("19912345678", "19912345678"),
        ("+8613812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("008613812345678", "13812345678"),
        ("138 1234 5678", "13812345678"),
        ("01087654321", "01087654321"),  # Beijing, 8-digit local number
        ("05718765432", "05718765432"),  # a 3-digit area code, 7-digit local number
        ("+86 571 87654321", "057187654321"),  # the trunk 0 dropped after +86
        ("12812345678", None),  # no 12x mobiles
        ("1381234567", None),  # one digit short
        ("138123456789", None),
        ("12333", None),  # a service number, not a line to call back
        ("057101234567", None),  # local numbers do not start with 0
        ("1" * 200, None),
        ("Anonymous", None),
        ("1381234567x", None),
        ("", None),
        (None, None),
    ],
)
def test_only_real_phone_numbers_may_be_called_back(text: str | None, number: str | None) -> None:
    assert phone_number(text) == number
