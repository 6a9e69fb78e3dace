"""A text to CMPP_SUBMIT parts, and parts back to text.

Not `sms/encoding.py`'s splitting: CMPP's Msg_Fmt 0 is ASCII sent as octets (no GSM 7-bit
packing), and the gateways of China's carriers expect the 6-octet concatenation header
with an 8-bit reference (05 00 03 ref total seq, 3GPP TS 23.040 §9.2.3.24.1), where
encoding.py always uses the 16-bit one (IEI 0x08, 7 octets). Its `split_udh`, which reads
both, is reused for texts received.

A part's Msg_Content is at most 140 octets, the header included (TS 23.040 §9.2.3.16):

| Msg_Fmt | single | per part (6-octet header) |
| --- | --- | --- |
| 0, ASCII | 140 characters | 134 characters |
| 8, UCS2 | 70 characters | 67 characters (134 octets) |

(CMPP 2.0 §6.3.3 allows Msg_Length up to 159 for Msg_Fmt 0; we keep to 140, what
every handset and gateway takes.) A surrogate pair is never split across parts.

>>> [(p.pk_number, len(p.content)) for p in split_text("您好" * 35).parts]
[(1, 140)]
>>> [(p.pk_number, p.tp_udhi, len(p.content)) for p in split_text("您好" * 40, reference=7).parts]
[(1, 1, 140), (2, 1, 32)]
>>> split_text("您好" * 40, reference=7).parts[1].content[:6].hex(" ")
'05 00 03 07 02 02'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sms.cmpp_pdu import MSG_FMT_ASCII, MSG_FMT_GBK, MSG_FMT_UCS2
from sms.encoding import split_udh
from sms.errors import CmppTextTooLong

CONTENT_OCTETS: Final = 140
UDH_OCTETS: Final = 6
MAX_PARTS: Final = 255


@dataclass(frozen=True)
class Part:
    pk_total: int
    pk_number: int
    tp_udhi: int
    content: bytes  # Msg_Content: the UDH (when tp_udhi) and the text's octets


@dataclass(frozen=True)
class CmppText:
    msg_fmt: int
    parts: tuple[Part, ...]


def udh(reference: int, total: int, number: int) -> bytes:
    """UDHL 5, IEI 0x00 (concatenation, 8-bit reference), IEDL 3, ref, total, number."""
    return bytes((5, 0x00, 3, reference & 0xFF, total, number))


def split_text(text: str, reference: int = 0) -> CmppText:
    """`text` as ASCII if it is, else UCS2; in parts when longer than one holds."""
    if text.isascii():
        msg_fmt, units = MSG_FMT_ASCII, [ch.encode("ascii") for ch in text]
    else:
        msg_fmt, units = MSG_FMT_UCS2, [ch.encode("utf-16-be") for ch in text]
    whole = b"".join(units)
    if len(whole) <= CONTENT_OCTETS:
        return CmppText(msg_fmt, (Part(1, 1, 0, whole),))
    chunks: list[bytes] = [b""]
    for unit in units:
        if len(chunks[-1]) + len(unit) > CONTENT_OCTETS - UDH_OCTETS:
            chunks.append(b"")
        chunks[-1] += unit
    if len(chunks) > MAX_PARTS:
        raise CmppTextTooLong(f"{len(chunks)} parts; Pk_total is one octet (at most {MAX_PARTS})")
    total = len(chunks)
    return CmppText(msg_fmt, tuple(Part(total, i, 1, udh(reference, total, i) + c) for i, c in enumerate(chunks, 1)))


def decode_content(msg_fmt: int, content: bytes) -> str:
    """Msg_Content's text (its UDH already removed) as Msg_Fmt says; binary formats and
    unknown ones read as Latin-1, so nothing is lost."""
    if msg_fmt == MSG_FMT_UCS2:
        return content.decode("utf-16-be", errors="replace")
    if msg_fmt == MSG_FMT_GBK:
        return content.decode("gbk", errors="replace")
    if msg_fmt == MSG_FMT_ASCII:
        return content.decode("ascii", errors="replace")
    return content.decode("latin-1")


def part_text(msg_fmt: int, tp_udhi: int, content: bytes) -> tuple[tuple[int, int, int] | None, str]:
    """A received part: (reference, total, number) when it has a concatenation header,
    and its text."""
    if not tp_udhi:
        return None, decode_content(msg_fmt, content)
    concat, payload = split_udh(content)
    key = (concat.reference, concat.total, concat.seq) if concat else None
    return key, decode_content(msg_fmt, payload)
