"""Delivery receipts and message ids across hex, decimal, leading zeros and case."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.receipts import BadReceipt, FinalState, canonical, parse_receipt, receipt_text


@given(st.integers(0, 2**64), st.integers(0, 6), st.booleans())
def test_hex_and_decimal_forms_of_one_id_meet(n: int, zeros: int, upper: bool) -> None:
    hex_id = "0" * zeros + (f"{n:X}" if upper else f"{n:x}")
    assert canonical(hex_id, 16) == canonical("0" * zeros + str(n), 10) == str(n)


def test_opaque_ids_ignore_case_and_leading_zeros_and_bad_numbers_are_refused() -> None:
    assert canonical("000aBc-9", 0) == canonical("ABC-9", 0) == "abc-9"
    assert canonical("0000", 0) == "0"
    with pytest.raises(BadReceipt, match="not a base-10 number"):
        canonical("1A", 10)


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DELIVRD", FinalState.DELIVERED),
        ("UNDELIV", FinalState.UNDELIVERED),
        ("EXPIRED", FinalState.EXPIRED),
        ("REJECTD", FinalState.REJECTED),
        ("UNKNOWN", FinalState.UNKNOWN),
        ("ACCEPTD", None),
    ],
)
def test_receipt_states(stat: str, state: FinalState | None) -> None:
    r = parse_receipt(receipt_text("0001A2B", stat, "007"))
    assert (r.message_id, r.stat, r.state, r.err) == ("0001A2B", stat, state, "007")


def test_the_tlv_id_wins_and_a_text_with_id_in_its_body_is_not_fooled() -> None:
    text = "id:123 sub:001 dlvrd:001 submit date:2611280605 done date:2611280606 stat:DELIVRD err:000 text:id:999"
    assert parse_receipt(text).message_id == "123"
    assert parse_receipt(text, receipted_message_id="7B").message_id == "7B"
    with pytest.raises(BadReceipt):
        parse_receipt("hello, this is a reply")
