"""Reading a deliver_sm PDU ourselves (SMPP 3.4 §4.6.1): aiosmpplib 0.7.4 strips the UDH
from inbound texts and reads a 16-bit concatenation reference as 4 bytes, so long MO texts
could not be reassembled from what it hands over. Pure function, bytes in, value out."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from core.errors import HotlineError

HEADER = struct.Struct("!IIII")  # command_length, command_id, command_status, sequence_number
DELIVER_SM = 0x00000005
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_PAYLOAD = 0x0424


class BadPdu(HotlineError):
    """A PDU that does not parse as the command it claims to be."""


@dataclass(frozen=True)
class Inbound:
    """A deliver_sm: a receipt (esm_class bit 2) or a resident's text, bytes untouched."""

    source: str
    destination: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_id: str | None

    @property
    def is_receipt(self) -> bool:
        return bool(self.esm_class & 0x04)


def parse_deliver_sm(pdu: bytes) -> Inbound:
    """>>> body = b"\\0\\1\\1139\\0\\0\\0" + b"12333\\0" + bytes((0, 0, 0)) + b"\\0\\0" + bytes((0, 0, 8, 0, 2)) + b"hi"
    >>> pdu = HEADER.pack(16 + len(body), DELIVER_SM, 0, 1) + body
    >>> parse_deliver_sm(pdu).short_message
    b'hi'
    """
    if len(pdu) < HEADER.size:
        raise BadPdu("shorter than a PDU header")
    length, command, _status, _seq = HEADER.unpack_from(pdu)
    if command != DELIVER_SM or length != len(pdu):
        raise BadPdu(f"not a whole deliver_sm (command 0x{command:08X}, length {length} of {len(pdu)})")
    i = HEADER.size

    def cstring(limit: int = 65) -> str:
        nonlocal i
        end = pdu.find(b"\0", i, i + limit + 1)
        if end < 0:
            raise BadPdu("unterminated C-octet string")
        value = pdu[i:end].decode("ascii", errors="replace")
        i = end + 1
        return value

    def byte() -> int:
        nonlocal i
        if i >= len(pdu):
            raise BadPdu("truncated body")
        i += 1
        return pdu[i - 1]

    try:
        cstring(6)  # service_type
        byte(), byte()  # source ton, npi
        source = cstring(21)
        byte(), byte()  # dest ton, npi
        destination = cstring(21)
        esm_class = byte()
        byte(), byte()  # protocol_id, priority_flag
        cstring(17), cstring(17)  # schedule_delivery_time, validity_period (empty in deliver_sm)
        byte(), byte()  # registered_delivery, replace_if_present_flag
        data_coding = byte()
        byte()  # sm_default_msg_id
        sm_length = byte()
        short_message = pdu[i : i + sm_length]
        i += sm_length
        receipted = None
        while i + 4 <= len(pdu):
            tag, tlv_len = struct.unpack_from("!HH", pdu, i)
            value = pdu[i + 4 : i + 4 + tlv_len]
            i += 4 + tlv_len
            if tag == TLV_RECEIPTED_MESSAGE_ID:
                receipted = value.rstrip(b"\0").decode("ascii", errors="replace")
            elif tag == TLV_MESSAGE_PAYLOAD and not short_message:
                short_message = value
    except struct.error as exc:
        raise BadPdu(f"truncated optional parameter: {exc}") from None
    return Inbound(source, destination, esm_class, data_coding, short_message, receipted)
