"""Long texts for CMPP: 70 UCS2 characters (140 ASCII) fit one SUBMIT, longer ones go
in parts of 67 (134) behind the 6-octet header 05 00 03 ref total number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.cmpp_pdu import MSG_FMT_ASCII, MSG_FMT_UCS2
from sms.cmpp_text import part_text, split_text
from sms.errors import CmppTextTooLong


def test_seventy_characters_fit_one_part_and_seventy_one_take_two() -> None:
    one = split_text("社" * 70)
    assert one.msg_fmt == MSG_FMT_UCS2 and [(p.pk_total, p.tp_udhi, len(p.content)) for p in one.parts] == [(1, 0, 140)]
    two = split_text("社" * 71, reference=0x1FF)
    assert [(p.pk_total, p.pk_number, p.tp_udhi) for p in two.parts] == [(2, 1, 1), (2, 2, 1)]
    assert two.parts[0].content[:6] == bytes((5, 0, 3, 0xFF, 2, 1))  # an 8-bit reference: its low octet
    assert [len(p.content) - 6 for p in two.parts] == [134, 8]  # 67 characters, then 4


def test_ascii_goes_as_octets_140_then_134() -> None:
    assert [len(p.content) for p in split_text("a" * 140).parts] == [140]
    parts = split_text("a" * 141).parts
    assert split_text("a").msg_fmt == MSG_FMT_ASCII and [len(p.content) - 6 for p in parts] == [134, 7]


def test_a_surrogate_pair_is_never_split() -> None:
    text = "社" * 66 + "😀" + "保" * 5  # the emoji would straddle octets 133-136 of the first part
    parts = split_text(text).parts
    assert len(parts[0].content) == 6 + 132 and parts[1].content[6:].decode("utf-16-be") == "😀保保保保保"


def test_more_than_255_parts_is_refused() -> None:
    with pytest.raises(CmppTextTooLong):
        split_text("社" * (67 * 255 + 1))


@given(st.text(min_size=1, max_size=600), st.integers(0, 255))
def test_parts_join_back_to_the_text_each_within_140_octets(text: str, reference: int) -> None:
    encoded = split_text(text, reference)
    assert all(len(p.content) <= 140 for p in encoded.parts)
    pieces = [part_text(encoded.msg_fmt, p.tp_udhi, p.content) for p in encoded.parts]
    if len(encoded.parts) > 1:
        assert [key for key, _ in pieces] == [(reference, len(pieces), n) for n in range(1, len(pieces) + 1)]
    assert "".join(t for _, t in pieces) == text
