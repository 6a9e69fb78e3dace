"""GSM 7-bit and UCS2 encoding, segmentation with a 16-bit concatenation reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms.encoding import (
    DATA_CODING_GSM,
    DATA_CODING_UCS2,
    ESCAPE,
    GSM_BASIC,
    GSM_EXTENSION,
    TooLong,
    decode,
    encode,
    split_udh,
)

SIGNATURE = "【安吉人社】"
GSM_CHARS = st.sampled_from([c for c in GSM_BASIC if c != "\x1b"] + list(GSM_EXTENSION))


def _reassemble(text: str, reference: int = 0x1234) -> str:
    enc = encode(text, reference)
    if len(enc.segments) == 1:
        assert enc.segments[0].udh == b"" and enc.esm_class == 0
        return decode(enc.data_coding, enc.segments[0].payload)
    assert enc.esm_class == 0x40
    payload = b""
    for i, seg in enumerate(enc.segments, 1):
        concat, body = split_udh(seg.short_message)
        assert concat is not None and (concat.reference, concat.total, concat.seq) == (reference, len(enc.segments), i)
        payload += body
    return decode(enc.data_coding, payload)


@pytest.mark.parametrize(("length", "segments"), [(160, 1), (161, 2), (304, 2), (305, 3)])
def test_gsm_limits(length: int, segments: int) -> None:
    enc = encode("a" * length)
    assert enc.data_coding == DATA_CODING_GSM and len(enc.segments) == segments
    assert all(len(s.payload) <= 152 for s in enc.segments) or segments == 1


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_limits(length: int, segments: int) -> None:
    enc = encode("社" * length)
    assert enc.data_coding == DATA_CODING_UCS2 and len(enc.segments) == segments
    assert all(len(s.payload) <= 134 for s in enc.segments) or segments == 1


def test_one_chinese_character_makes_the_whole_message_ucs2() -> None:
    assert encode("Your pension: 1,234.00" + SIGNATURE).data_coding == DATA_CODING_UCS2
    assert encode("Your pension: 1,234.00 [AJ]").data_coding == DATA_CODING_GSM


def test_an_extension_character_is_never_split_between_segments() -> None:
    enc = encode("a" * 151 + "€" + "b" * 20)
    first = enc.segments[0].payload
    assert first[-1] != ESCAPE and len(first) == 151  # the escape pair moved to the next part
    assert enc.segments[1].payload.startswith(bytes((ESCAPE, 0x65)))


def test_a_surrogate_pair_is_never_split_between_segments() -> None:
    enc = encode("社" * 66 + "😀" + "保" * 10)
    assert len(enc.segments[0].payload) == 132  # 66 characters; the emoji's 4 octets go on
    assert _reassemble("社" * 66 + "😀" + "保" * 10, 7) == "社" * 66 + "😀" + "保" * 10


def test_too_long_and_bad_reference() -> None:
    with pytest.raises(TooLong):
        encode("社" * 67 * 256)
    with pytest.raises(ValueError, match="reference"):
        encode("x", reference=70_000)


def test_an_8_bit_reference_udh_from_a_phone_is_read_too() -> None:
    concat, body = split_udh(bytes((5, 0x00, 3, 0xAB, 2, 1)) + b"hello")
    assert concat is not None and (concat.reference, concat.total, concat.seq) == (0xAB, 2, 1) and body == b"hello"


@given(st.text(GSM_CHARS, max_size=700), st.integers(0, 0xFFFF))
def test_gsm_round_trip(text: str, reference: int) -> None:
    assert _reassemble(text, reference) == text


@given(st.text(max_size=400).filter(lambda t: "\x00" not in t), st.integers(0, 0xFFFF))
def test_any_text_round_trips(text: str, reference: int) -> None:
    assert _reassemble(text, reference) == text
