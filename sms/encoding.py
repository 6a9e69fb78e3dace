"""Text to SMS segments: GSM 03.38 7-bit where every character allows it, else UCS2, and
long messages split with a concatenation UDH (3GPP TS 23.040 §9.2.3.24.1 and .8).

Pure functions, no I/O. A part's user data is at most 140 octets (TS 23.040 §9.2.3.16,
TP-UDL), its UDH included; per segment:

| coding | single | with UDH (16-bit reference, 7 octets) |
| --- | --- | --- |
| GSM 7-bit (data_coding 0) | 160 septets | 152 septets (the UDH takes 8, padded to a septet) |
| UCS2 (data_coding 8) | 70 characters (140 octets) | 66 characters (132 + 7 octets) |

(With an 8-bit reference, 6 octets, it would be 153 septets or 67 characters.) We always
use the 16-bit reference IE (0x08): 65,536 references instead of 256, so references
allocated per recipient (`sms.refs`) do not wrap while messages are in flight.
A GSM extension character (escape + char, two septets) and a UTF-16 surrogate pair are
never split across segments. GSM text is sent unpacked, one septet per octet, as SMPP
SMSCs expect for data_coding 0; the SMSC packs it, 8 septets to 7 octets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# GSM 03.38 default alphabet, index = septet value.
GSM_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table, reached with the escape septet 0x1B.
GSM_EXTENSION: Final = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
ESCAPE: Final = 0x1B
_BASIC_INDEX: Final = {ch: i for i, ch in enumerate(GSM_BASIC) if ch != "\x1b"}

DATA_CODING_GSM: Final = 0x00
DATA_CODING_UCS2: Final = 0x08
ESM_CLASS_UDHI: Final = 0x40

USER_DATA_OCTETS: Final = 140  # TS 23.040 §9.2.3.16: TP-UDL, the UDH included
UDH_OCTETS: Final = 7  # UDHL, IEI 0x08, IEDL 4, a 16-bit reference, total, seq
GSM_SINGLE: Final = USER_DATA_OCTETS * 8 // 7  # 160 septets
# The UDH is padded with fill bits to a septet boundary (§9.2.3.24): 56 bits take 8 septets.
UDH_SEPTETS: Final = (UDH_OCTETS * 8 + 6) // 7
GSM_PART: Final = GSM_SINGLE - UDH_SEPTETS  # 152 septets
UCS2_SINGLE: Final = USER_DATA_OCTETS // 2  # 70 characters
UCS2_PART: Final = (USER_DATA_OCTETS - UDH_OCTETS) // 2  # 66 characters: 132 octets, 133 would be half a one
MAX_SEGMENTS: Final = 255


@dataclass(frozen=True)
class Segment:
    """One submit_sm's short_message: the UDH (empty for a single segment) and the payload."""

    udh: bytes
    payload: bytes

    @property
    def short_message(self) -> bytes:
        return self.udh + self.payload


@dataclass(frozen=True)
class Encoded:
    data_coding: int
    segments: tuple[Segment, ...]

    @property
    def esm_class(self) -> int:
        return ESM_CLASS_UDHI if len(self.segments) > 1 else 0


class TooLong(ValueError):
    """More than 255 segments: no UDH can number them."""


def gsm_septets(text: str) -> list[bytes] | None:
    """Each character as its septet(s), or None if a character is not in GSM 03.38."""
    out = []
    for ch in text:
        if ch in _BASIC_INDEX:
            out.append(bytes((_BASIC_INDEX[ch],)))
        elif ch in GSM_EXTENSION:
            out.append(bytes((ESCAPE, GSM_EXTENSION[ch])))
        else:
            return None
    return out


def gsm_decode(data: bytes) -> str:
    """Unpacked septets back to text (an unknown escape reads as a space, per 23.038)."""
    reverse_ext = {v: k for k, v in GSM_EXTENSION.items()}
    out, escaped = [], False
    for b in data:
        if escaped:
            out.append(reverse_ext.get(b, " "))
            escaped = False
        elif b == ESCAPE:
            escaped = True
        else:
            out.append(GSM_BASIC[b & 0x7F])
    return "".join(out)


def _ucs2_units(text: str) -> list[bytes]:
    """Characters as UTF-16BE code units, a surrogate pair kept together as one item."""
    return [ch.encode("utf-16-be") for ch in text]


def _pack(items: list[bytes], limit: int) -> list[bytes]:
    """Greedy: as many whole items (characters) per part as fit in `limit` octets."""
    parts: list[bytes] = []
    current = bytearray()
    for item in items:
        if len(current) + len(item) > limit:
            parts.append(bytes(current))
            current = bytearray()
        current += item
    if current or not parts:
        parts.append(bytes(current))
    return parts


def udh(reference: int, total: int, seq: int) -> bytes:
    """Concatenation with a 16-bit reference: UDHL 6, IEI 0x08, IEDL 4, ref, total, seq."""
    return bytes((6, 0x08, 4, (reference >> 8) & 0xFF, reference & 0xFF, total, seq))


def encode(text: str, reference: int = 0) -> Encoded:
    """The segments of `text`; `reference` (0..65535) numbers the parts of a long one.

    >>> [s.short_message for s in encode("Hi {1}").segments]
    [b'Hi \\x1b(1\\x1b)']
    >>> [len(s.short_message) for s in encode("您好" * 40).segments]  # 80 characters: 66 + 14, UDH included
    [139, 35]
    """
    if not 0 <= reference <= 0xFFFF:
        raise ValueError("reference must be 0..65535")
    septets = gsm_septets(text)
    if septets is not None:
        coding, items, part = DATA_CODING_GSM, septets, GSM_PART
        whole = b"".join(items)
        if len(whole) <= GSM_SINGLE:
            return Encoded(coding, (Segment(b"", whole),))
    else:
        whole = text.encode("utf-16-be")  # a short text is not split into characters
        if len(whole) <= UCS2_SINGLE * 2:
            return Encoded(DATA_CODING_UCS2, (Segment(b"", whole),))
        coding, items, part = DATA_CODING_UCS2, _ucs2_units(text), UCS2_PART * 2
    parts = _pack(items, part)
    if len(parts) > MAX_SEGMENTS:
        raise TooLong(f"{len(parts)} segments; at most {MAX_SEGMENTS}")
    return Encoded(coding, tuple(Segment(udh(reference, len(parts), i + 1), p) for i, p in enumerate(parts)))


def decode(data_coding: int, payload: bytes) -> str:
    if data_coding == DATA_CODING_UCS2:
        return payload.decode("utf-16-be", errors="replace")
    if data_coding == DATA_CODING_GSM:
        return gsm_decode(payload)
    return payload.decode("latin-1")


@dataclass(frozen=True)
class Concatenation:
    reference: int
    total: int
    seq: int


def split_udh(short_message: bytes) -> tuple[Concatenation | None, bytes]:
    """A received short_message with UDHI set: its concatenation IE (8- or 16-bit) and payload."""
    if not short_message:
        return None, short_message
    length = short_message[0]
    header, payload = short_message[1 : 1 + length], short_message[1 + length :]
    i, found = 0, None
    while i + 2 <= len(header):
        iei, iedl = header[i], header[i + 1]
        data = header[i + 2 : i + 2 + iedl]
        if iei == 0x00 and iedl == 3 and len(data) == 3:
            found = Concatenation(data[0], data[1], data[2])
        elif iei == 0x08 and iedl == 4 and len(data) == 4:
            found = Concatenation((data[0] << 8) | data[1], data[2], data[3])
        i += 2 + iedl
    return found, payload
