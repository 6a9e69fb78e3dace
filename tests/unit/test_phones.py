"""One form for every number that enters: E.164 outside, national in the store."""

from __future__ import annotations

import pytest

from core.phones import BadPhoneNumber, spellings, store_form, to_e164


@pytest.mark.parametrize(
    "raw", ["13812345678", "8613812345678", "+8613812345678", "008613812345678", "+86 138-1234-5678", "(138) 1234 5678"]
)
def test_every_way_a_handset_number_arrives_is_one_number(raw: str) -> None:
    assert to_e164(raw) == "+8613812345678"
    assert store_form(raw) == "13812345678"


def test_landlines_keep_their_trunk_prefix_and_other_countries_stay_e164() -> None:
    assert to_e164("0572-5197616") == "+865725197616"
    assert store_form("+865725197616") == "05725197616"
    assert store_form("0044 20 7946 0000") == "+442079460000"
    assert store_form("9123 4567", country_code="65") == "+6591234567"


@pytest.mark.parametrize("raw", ["", "abc", "1381234567x", "+", "12333", "1381234567", "+86138123456789", "1" * 17])
def test_garbage_is_refused_by_name(raw: str) -> None:
    with pytest.raises(BadPhoneNumber):
        to_e164(raw)


def test_the_spellings_a_business_table_may_hold() -> None:
    assert set(spellings("13812345678")) == {"008613812345678", "13812345678", "+8613812345678", "8613812345678"}


def test_beijing_fixed_lines_are_phone_numbers_not_short_mobiles() -> None:
    """Seen in review: area code 010 begins with 1 after the trunk prefix, and was refused
    as 'a mobile number of China has 11 digits' (or lost its 0)."""
    forms = ("010-88888888", "01088888888", "+86 10 8888 8888", "861088888888", "00861088888888")
    assert {store_form(f) for f in forms} == {"01088888888"}
    assert to_e164("010-6512 3456") == "+861065123456"
    assert store_form("+86 138 1234 5678") == "13812345678"  # mobiles unchanged
