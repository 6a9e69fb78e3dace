"""Learning the base a link's receipts write message ids in (`sms.receipts.ReceiptIds`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.receipts import BadReceipt, ReceiptIds, canonical


def _link(ids: ReceiptIds, numbers: list[int], submit: str, receipt: str, *, early: bool = False) -> list[str]:
    """Submissions answered with ids written `submit`, receipts quoting them as `receipt`;
    returns the keys the receipts were recorded under, with corrections applied."""
    recorded: dict[str, str] = {}
    for n in numbers:
        smsc = canonical(submit.format(n), 16)
        if not early:
            ids.submitted(smsc)
        recorded[receipt.format(n)] = ids.key(receipt.format(n), "delivered")
        if early:
            ids.submitted(smsc)
        for key, _state in ids.corrections():  # each names its submission's id: str(n)
            recorded[receipt.format(int(key))] = key
    return [recorded[receipt.format(n)] for n in numbers]


@pytest.mark.parametrize("early", [False, True])
def test_hex_both_ways_in_another_case_and_padding_is_learnt_as_hex(early: bool) -> None:
    ids = ReceiptIds(16, None, confirm_after=10)
    numbers = list(range(1, 80))
    keys = _link(ids, numbers, "{:X}", "{:010x}", early=early)
    assert ids.base == 16 and ids.learnt is not None and "base 16" in ids.learnt
    assert keys == [str(n) for n in numbers]  # every receipt under its submission's id


@pytest.mark.parametrize("early", [False, True])
def test_hex_submissions_with_decimal_receipts_are_learnt_as_decimal(early: bool) -> None:
    ids = ReceiptIds(16, None, confirm_after=10)
    numbers = list(range(1000, 1080))
    keys = _link(ids, numbers, "{:X}", "{:d}", early=early)
    assert ids.base == 10
    assert keys == [str(n) for n in numbers]


def test_ids_starting_high_and_all_digits_in_hex_are_learnt_too() -> None:
    """0x10000000 onwards for a while: every hex id is all digits, both readings parse."""
    ids = ReceiptIds(16, None, confirm_after=10)
    numbers = list(range(0x10000000, 0x10000000 + 40))
    keys = _link(ids, numbers, "{:X}", "{:012X}")
    assert ids.base == 16 and keys == [str(n) for n in numbers]


def test_a_set_base_overrides_learning_and_opaque_ids_stay_opaque() -> None:
    fixed = ReceiptIds(16, 10)
    assert fixed.base == 10 and fixed.key("0042", "delivered") == "42"
    with pytest.raises(BadReceipt):
        fixed.key("1a", "delivered")
    assert ReceiptIds(0, None).key("00Ab-C", "delivered") == "ab-c"


def test_an_id_neither_decimal_nor_hex_is_refused_while_learning() -> None:
    with pytest.raises(BadReceipt, match="neither decimal nor hex"):
        ReceiptIds(16, None).key("xyz", "delivered")


@given(st.integers(1, 2**40), st.sampled_from(["{:x}", "{:X}", "{:08x}", "{:016X}", "{:d}", "{:012d}"]), st.booleans())
def test_any_link_ends_with_every_receipt_under_its_submission(start: int, form: str, early: bool) -> None:
    ids = ReceiptIds(16, None, confirm_after=10)
    numbers = list(range(start, start + 60))
    assert _link(ids, numbers, "{:X}", form, early=early) == [str(n) for n in numbers]
