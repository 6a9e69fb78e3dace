"""GSM 7-bit and UCS2 encoding, segmentation with a 16-bit concatenation reference; every
part within GSM 03.40's 140 octets of user data, counted as the air interface counts them."""

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


def _air_octets(data_coding: int, short_message: bytes, udhi: bool) -> int:
    """TP-UDL in octets (TS 23.040 §9.2.3.16), UDH included: UCS2 as sent; GSM septets
    (sent unpacked, one per octet) packed 8 to 7 after the UDH and its fill bits."""
    if data_coding == DATA_CODING_UCS2:
        return len(short_message)
    header = short_message[0] + 1 if udhi else 0
    septets = (header * 8 + 6) // 7 + len(short_message) - header
    return (septets * 7 + 7) // 8


def _octets(text: str) -> list[int]:
    enc = encode(text, 0x1234)
    return [_air_octets(enc.data_coding, s.short_message, enc.esm_class == 0x40) for s in enc.segments]


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


@pytest.mark.parametrize(
    ("length", "octets"), [(160, [140]), (161, [140, 15]), (304, [140, 140]), (305, [140, 140, 8])]
)
def test_gsm_parts_hold_152_septets_after_a_7_octet_udh(length: int, octets: list[int]) -> None:
    # 7 octets of UDH are 56 bits, 8 septets: 152 are left of the 160 (153 after an 8-bit
    # reference's 6 octets and one fill bit).
    assert encode("a" * length).data_coding == DATA_CODING_GSM
    assert _octets("a" * length) == octets


@pytest.mark.parametrize(("length", "octets"), [(70, [140]), (71, [139, 17]), (132, [139, 139]), (133, [139, 139, 9])])
def test_ucs2_parts_hold_66_characters_after_a_7_octet_udh(length: int, octets: list[int]) -> None:
    # 67 characters would be 134 octets + 7 = 141, one over TP-UDL's 140.
    assert encode("社" * length).data_coding == DATA_CODING_UCS2
    assert _octets("社" * length) == octets


def test_one_chinese_character_makes_the_whole_message_ucs2() -> None:
    assert encode("Your pension: 1,234.00" + SIGNATURE).data_coding == DATA_CODING_UCS2
    assert encode("Your pension: 1,234.00 [AJ]").data_coding == DATA_CODING_GSM


def test_an_extension_character_is_never_split_between_segments() -> None:
    enc = encode("a" * 151 + "€" + "b" * 20)
    first = enc.segments[0].payload
    assert first[-1] != ESCAPE and len(first) == 151  # the escape pair moved to the next part
    assert enc.segments[1].payload.startswith(bytes((ESCAPE, 0x65)))


def test_a_surrogate_pair_is_never_split_between_segments() -> None:
    text = "社" * 65 + "😀" + "保" * 10
    enc = encode(text)
    assert len(enc.segments[0].payload) == 130  # 65 characters; the emoji's 4 octets go on
    assert enc.segments[1].payload.startswith("😀".encode("utf-16-be"))
    assert _octets(text) == [137, 7 + 4 + 20]
    assert _reassemble(text, 7) == text
    emoji = "😀" * 40  # a surrogate pair each: 33 to a part (132 octets), 7 left
    assert _octets(emoji) == [139, 7 + 7 * 4]
    assert _reassemble(emoji, 9) == emoji


def test_too_long_and_bad_reference() -> None:
    with pytest.raises(TooLong):
        encode("社" * 66 * 255 + "保")
    assert len(encode("社" * 66 * 255).segments) == 255
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


@given(st.text(max_size=700).filter(lambda t: "\x00" not in t))
def test_every_part_fits_in_140_octets(text: str) -> None:
    assert all(octets <= 140 for octets in _octets(text))
