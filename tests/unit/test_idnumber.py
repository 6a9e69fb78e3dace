import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from core import idnumber
from core.idnumber import IdProblem


def test_published_examples_are_valid() -> None:
    # The GB 11643 worked example and a number ending in X.
    assert idnumber.is_valid("11010519491231002X")
    assert idnumber.check_character("11010519491231002") == "X"
    assert idnumber.is_valid("330523198001010011")


def test_keypad_star_stands_for_x() -> None:
    assert idnumber.from_keypad("11010519491231002*") == "11010519491231002X"
    assert idnumber.is_valid(idnumber.from_keypad("11010519491231002*"))


def test_problems_are_named() -> None:
    assert idnumber.problem("33052319800101001") is IdProblem.TOO_SHORT
    assert idnumber.problem("3305231980010100111") is IdProblem.TOO_LONG
    assert idnumber.problem("33052319800101*011") is IdProblem.NOT_DIGITS
    assert idnumber.problem("330523198013010011") is IdProblem.BAD_DATE
    assert idnumber.problem("330523198001010012") is IdProblem.BAD_CHECK


@given(st.dates(dt.date(1900, 1, 1), dt.date(2099, 12, 31)), st.integers(0, 999))
def test_completed_numbers_are_valid_and_one_wrong_digit_is_caught(birth, seq) -> None:  # type: ignore[no-untyped-def]
    first17 = f"330523{birth:%Y%m%d}{seq:03d}"
    full = idnumber.complete(first17)
    assert idnumber.is_valid(full)
    # MOD 11-2 detects every single-digit substitution.
    for pos in range(17):
        changed = first17[:pos] + str((int(first17[pos]) + 1) % 10) + first17[pos + 1 :]
        assert idnumber.check_character(changed) != full[17]
