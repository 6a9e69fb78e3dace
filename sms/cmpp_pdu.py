"""CMPP 2.0 / 3.0 (China Mobile Peer to Peer, the SP-to-ISMG interface) PDUs: bytes to
frozen dataclasses and back. Pure functions, no I/O; the transport moves the bytes.

Cited as "CMPP 2.0 §x" / "CMPP 3.0 §x" (中国移动通信互联网短信网关接口协议, V2.0 and
V3.0.0): §6.2 the message header, §6.3 the bodies, §6.3.3 Msg_Id's structure. Every
integer is big-endian ("网络字节序"); an Octet String is fixed-width, padded on the right
with NUL (§6.1). DELIVER, its report and DELIVER_RESP are in `sms/cmpp_deliver.py`; long
texts in `sms/cmpp_text.py`.

Each body class has `to_body(version)` and `from_body(body, version)`; `encode()` frames
one with its header and `decode()` reads a whole PDU back:

>>> pdu = encode(7, ActiveTestResp(), Version.V30)
>>> pdu.hex(" ")
'00 00 00 0d 80 00 00 08 00 00 00 07 00'
>>> decode(pdu, Version.V30)
(Header(length=13, command=<Command.ACTIVE_TEST_RESP: 2147483656>, sequence=7), ActiveTestResp(reserved=0))
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import ClassVar, Final, Protocol

from sms.cmpp_msgid import ZERO_MSG_ID, MsgId
from sms.cmpp_results import CONNECT_STATUS, Version, outcome
from sms.errors import (
    BadCmppPdu,
    CmppConnectRefused,
    CmppFieldTooLong,
    CmppGatewayNotAuthentic,
    UnknownCmppCommand,
)

HEADER: Final = struct.Struct("!III")  # Total_Length, Command_Id, Sequence_Id (§6.2)
# No PDU of §6.3 comes near this (a 3.0 SUBMIT to 100 numbers is 3,503 octets); a larger
# Total_Length is a misframed stream, not a PDU to wait for.
MAX_LENGTH: Final = 4096


class Command(IntEnum):
    CONNECT = 0x00000001
    CONNECT_RESP = 0x80000001
    TERMINATE = 0x00000002
    TERMINATE_RESP = 0x80000002
    SUBMIT = 0x00000004
    SUBMIT_RESP = 0x80000004
    DELIVER = 0x00000005
    DELIVER_RESP = 0x80000005
    ACTIVE_TEST = 0x00000008
    ACTIVE_TEST_RESP = 0x80000008


# Msg_Fmt (§6.3.3): the ones a transport of ours sends or reads.
MSG_FMT_ASCII: Final = 0
MSG_FMT_UCS2: Final = 8
MSG_FMT_GBK: Final = 15


@dataclass(frozen=True)
class Header:
    length: int
    command: Command
    sequence: int


class Body(Protocol):
    COMMAND: ClassVar[Command]

    def to_body(self, version: Version) -> bytes: ...


# --- fixed-width fields --------------------------------------------------------------------


def octets(text: str, width: int, name: str) -> bytes:
    """`text` as an Octet String of `width`: ASCII, NUL-padded on the right (§6.1)."""
    raw = text.encode("ascii")
    if len(raw) > width:
        raise CmppFieldTooLong(f"{name} {text[:40]!r} is longer than its {width} octets")
    return raw.ljust(width, b"\0")


def text_of(raw: bytes) -> str:
    """An Octet String back: up to the first NUL (a gateway may pad with spaces: kept)."""
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def unpack(layout: struct.Struct, body: bytes, offset: int, name: str) -> tuple[int | bytes, ...]:
    if len(body) < offset + layout.size:
        raise BadCmppPdu(f"{name}: body of {len(body)} octets, its fields need {offset + layout.size}")
    return layout.unpack_from(body, offset)


def byte_of(value: int, name: str) -> int:
    if not 0 <= value <= 0xFF:
        raise CmppFieldTooLong(f"{name} {value} does not fit one octet")
    return value


# --- CONNECT (§6.3.1) ------------------------------------------------------------------------


def timestamp(when: datetime) -> int:
    """CONNECT's Timestamp: MMDDHHMMSS as an integer, China time as the caller gives it.

    >>> timestamp(datetime(2026, 1, 2, 3, 4, 5))
    102030405
    """
    return int(when.strftime("%m%d%H%M%S"))


def authenticator_source(source_addr: str, secret: str, stamp: int) -> bytes:
    """MD5(Source_Addr + 9 zero octets + shared secret + Timestamp) (§6.3.1).

    The spec has Timestamp "10位数字" here: we hash it zero-padded to ten ASCII digits
    ("0102030405" in January). Some clients hash str(int), nine digits then; a gateway
    answers those with Status 3 from January to September.

    >>> authenticator_source("901234", "secret", 102030405).hex()
    '1c39df8b9c01798a8f35c3c785cf91ce'
    """
    material = source_addr.encode("ascii") + bytes(9) + secret.encode("utf-8") + f"{stamp:010d}".encode("ascii")
    return hashlib.md5(material, usedforsecurity=False).digest()


@dataclass(frozen=True)
class Connect:
    COMMAND: ClassVar = Command.CONNECT
    LAYOUT: ClassVar = struct.Struct("!6s16sBI")  # Source_Addr, AuthenticatorSource, Version, Timestamp

    source_addr: str
    authenticator: bytes
    version: int  # as sent: a gateway may be offered a version it does not speak
    timestamp: int

    @classmethod
    def signed(cls, source_addr: str, secret: str, version: Version, stamp: int) -> Connect:
        return cls(source_addr, authenticator_source(source_addr, secret, stamp), version, stamp)

    def to_body(self, version: Version) -> bytes:
        return self.LAYOUT.pack(
            octets(self.source_addr, 6, "Source_Addr"), self.authenticator, self.version, self.timestamp
        )

    @classmethod
    def from_body(cls, body: bytes, version: Version) -> Connect:
        exact_length(body, cls.LAYOUT.size, "CMPP_CONNECT")
        addr, auth, ver, stamp = cls.LAYOUT.unpack(body)
        return cls(text_of(addr), auth, ver, stamp)


# CONNECT_RESP's Status and the RESPs' Result: one octet in 2.0, four in 3.0 (§6.3.2, §6.3.4, §6.3.8).
STATUS_CODE: Final = {Version.V20: "B", Version.V30: "I"}


def authenticator_ismg(status: int, auth_source: bytes, secret: str, version: Version) -> bytes:
    """MD5(Status + AuthenticatorSource + shared secret) (§6.3.2), Status in its field's
    width: one octet in 2.0, four big-endian in 3.0 (gocmpp does the same; some gateways
    hash one octet in 3.0 as well: `check_connect_resp` says so when that is what came)."""
    material = struct.pack("!" + STATUS_CODE[version], status) + auth_source + secret.encode("utf-8")
    return hashlib.md5(material, usedforsecurity=False).digest()


@dataclass(frozen=True)
class ConnectResp:
    COMMAND: ClassVar = Command.CONNECT_RESP

    status: int
    authenticator: bytes  # AuthenticatorISMG; empty (zeros) when Status is not 0
    version: int

    def to_body(self, version: Version) -> bytes:
        return struct.pack(f"!{STATUS_CODE[version]}16sB", self.status, self.authenticator, self.version)

    @classmethod
    def from_body(cls, body: bytes, version: Version) -> ConnectResp:
        layout = struct.Struct(f"!{STATUS_CODE[version]}16sB")
        exact_length(body, layout.size, f"CMPP_CONNECT_RESP ({version.name})")
        status, auth, ver = layout.unpack(body)
        return cls(status, auth, ver)


def check_connect_resp(resp: ConnectResp, auth_source: bytes, secret: str, version: Version) -> None:
    """Raise unless the gateway accepted us and proved it knows the shared secret."""
    if resp.status != 0:
        raise CmppConnectRefused(resp.status, CONNECT_STATUS.get(resp.status, "other error"))
    if resp.authenticator == authenticator_ismg(0, auth_source, secret, version):
        return
    hint = ""
    if version == Version.V30 and resp.authenticator == authenticator_ismg(0, auth_source, secret, Version.V20):
        hint = " (it hashed Status as one octet, the 2.0 way, where 3.0 has four)"
    raise CmppGatewayNotAuthentic(f"AuthenticatorISMG does not match the shared secret{hint}")


# --- SUBMIT (§6.3.3) -------------------------------------------------------------------------

# The fields before Dest_terminal_Id, in order (§6.3.3's table): (our name, struct code).
_SUBMIT_HEAD_20: Final = (
    ("msg_id", "8s"), ("pk_total", "B"), ("pk_number", "B"), ("registered_delivery", "B"), ("msg_level", "B"),
    ("service_id", "10s"), ("fee_user_type", "B"), ("fee_terminal_id", "21s"), ("tp_pid", "B"),
    ("tp_udhi", "B"), ("msg_fmt", "B"), ("msg_src", "6s"), ("fee_type", "2s"), ("fee_code", "6s"),
    ("valid_time", "17s"), ("at_time", "17s"), ("src_id", "21s"), ("count", "B"),
)  # fmt: skip
_SUBMIT_HEAD_30: Final = tuple(
    field
    for name, code in _SUBMIT_HEAD_20
    for field in (((name, "32s"), ("fee_terminal_type", "B")) if name == "fee_terminal_id" else ((name, code),))
)
_SUBMIT_HEAD = {
    version: (fields, struct.Struct("!" + "".join(c for _, c in fields)))
    for version, fields in ((Version.V20, _SUBMIT_HEAD_20), (Version.V30, _SUBMIT_HEAD_30))
}  # 117 octets in 2.0, 129 in 3.0
TERMINAL_WIDTH: Final = {Version.V20: 21, Version.V30: 32}
MAX_DESTINATIONS: Final = 100  # DestUsr_tl "取值范围1～100"


@dataclass(frozen=True)
class Submit:
    """One CMPP_SUBMIT: one part of a text (Pk_total/Pk_number, TP_udhi) to 1-100 numbers.
    The 3.0-only fields (Fee_terminal_type, Dest_terminal_type, LinkID) are ignored in 2.0;
    2.0's Reserve (8 octets) is sent empty."""

    COMMAND: ClassVar = Command.SUBMIT

    destinations: tuple[str, ...]
    content: bytes
    msg_fmt: int = MSG_FMT_UCS2
    src_id: str = ""  # the number residents see: the SP's access code and its extension
    msg_src: str = ""  # the SP's enterprise code (6)
    service_id: str = ""
    registered_delivery: int = 1  # 1: a status report is wanted
    pk_total: int = 1
    pk_number: int = 1
    tp_udhi: int = 0
    tp_pid: int = 0
    msg_level: int = 0
    fee_user_type: int = 0  # 0: the destination pays; 2: the SP; 3: Fee_terminal_Id
    fee_terminal_id: str = ""
    fee_terminal_type: int = 0  # 3.0: 0 a real number, 1 a pseudo-code
    fee_type: str = "01"  # "01": free of charge
    fee_code: str = "000000"
    valid_time: str = ""  # ValId_Time, SMPP's 16-character time format + NUL
    at_time: str = ""
    dest_terminal_type: int = 0  # 3.0
    link_id: str = ""  # 3.0
    msg_id: MsgId = ZERO_MSG_ID

    def to_body(self, version: Version) -> bytes:
        fields, head = _SUBMIT_HEAD[version]
        width = TERMINAL_WIDTH[version]
        if not 1 <= len(self.destinations) <= MAX_DESTINATIONS:
            raise CmppFieldTooLong(f"DestUsr_tl {len(self.destinations)}: 1 to {MAX_DESTINATIONS} numbers")
        values: list[int | bytes] = []
        for name, code in fields:
            if name == "msg_id":
                values.append(self.msg_id.to_bytes())
            elif name == "count":
                values.append(len(self.destinations))
            elif code == "B":
                values.append(byte_of(getattr(self, name), name))
            else:
                values.append(octets(getattr(self, name), int(code[:-1]), name))
        dests = b"".join(octets(d, width, "Dest_terminal_Id") for d in self.destinations)
        if version == Version.V30:
            dests += bytes((byte_of(self.dest_terminal_type, "Dest_terminal_type"),))
        length = bytes((byte_of(len(self.content), "Msg_Length"),))
        tail = octets(self.link_id, 20, "LinkID") if version == Version.V30 else bytes(8)
        return head.pack(*values) + dests + length + self.content + tail

    @classmethod
    def from_body(cls, body: bytes, version: Version) -> Submit:
        layout, head = _SUBMIT_HEAD[version]
        width = TERMINAL_WIDTH[version]
        raw = dict(zip((n for n, _ in layout), unpack(head, body, 0, "CMPP_SUBMIT"), strict=True))
        fields: dict[str, object] = {k: text_of(v) if isinstance(v, bytes) else v for k, v in raw.items()}
        count = int(raw["count"])
        i = head.size
        fields["destinations"] = tuple(text_of(body[i + n * width : i + (n + 1) * width]) for n in range(count))
        i += count * width
        if version == Version.V30:
            fields["dest_terminal_type"] = _byte_at(body, i, "CMPP_SUBMIT")
            i += 1
        length = _byte_at(body, i, "CMPP_SUBMIT")
        tail = 20 if version == Version.V30 else 8
        exact_length(body, i + 1 + length + tail, f"CMPP_SUBMIT ({version.name}, Msg_Length {length})")
        fields["content"] = body[i + 1 : i + 1 + length]
        if version == Version.V30:
            fields["link_id"] = text_of(body[-20:])
        fields["msg_id"] = MsgId.from_bytes(raw["msg_id"])  # type: ignore[arg-type]
        del fields["count"]
        return cls(**fields)  # type: ignore[arg-type]


def _byte_at(body: bytes, i: int, name: str) -> int:
    if i >= len(body):
        raise BadCmppPdu(f"{name}: body of {len(body)} octets ends before octet {i + 1}")
    return body[i]


@dataclass(frozen=True)
class SubmitResp:
    """Msg_Id and Result: one octet in 2.0, four in 3.0 (§6.3.4). `outcome(version)` says
    whether a Result is worth a retry (`sms/cmpp_results.py`)."""

    COMMAND: ClassVar = Command.SUBMIT_RESP

    msg_id: MsgId
    result: int

    def to_body(self, version: Version) -> bytes:
        return self.msg_id.to_bytes() + struct.pack("!" + STATUS_CODE[version], self.result)

    @classmethod
    def from_body(cls, body: bytes, version: Version) -> SubmitResp:
        layout = struct.Struct(f"!8s{STATUS_CODE[version]}")
        exact_length(body, layout.size, f"CMPP_SUBMIT_RESP ({version.name})")
        raw, result = layout.unpack(body)
        return cls(MsgId.from_bytes(raw), result)

    def outcome(self, version: Version) -> str:
        return outcome(self.result, version).kind


# --- the bodiless and near-bodiless (§6.3.5 TERMINATE, §6.3.9 ACTIVE_TEST) -----------------


@dataclass(frozen=True)
class _Empty:
    def to_body(self, version: Version) -> bytes:
        return b""

    @classmethod
    def from_body(cls, body: bytes, version: Version) -> _Empty:
        exact_length(body, 0, cls.__name__)
        return cls()


@dataclass(frozen=True)
class Terminate(_Empty):
    COMMAND: ClassVar = Command.TERMINATE


@dataclass(frozen=True)
class TerminateResp(_Empty):
    COMMAND: ClassVar = Command.TERMINATE_RESP


@dataclass(frozen=True)
class ActiveTest(_Empty):
    COMMAND: ClassVar = Command.ACTIVE_TEST


@dataclass(frozen=True)
class ActiveTestResp:
    """One Reserved octet (§6.3.10). Some gateways send the RESP with no body: read as 0."""

    COMMAND: ClassVar = Command.ACTIVE_TEST_RESP

    reserved: int = 0

    def to_body(self, version: Version) -> bytes:
        return bytes((self.reserved,))

    @classmethod
    def from_body(cls, body: bytes, version: Version) -> ActiveTestResp:
        if len(body) > 1:
            raise BadCmppPdu(f"CMPP_ACTIVE_TEST_RESP: body of {len(body)} octets, at most 1")
        return cls(body[0] if body else 0)


# --- framing ---------------------------------------------------------------------------------


def exact_length(body: bytes, size: int, name: str) -> None:
    if len(body) != size:
        raise BadCmppPdu(f"{name}: body of {len(body)} octets, the layout has {size}")


def read_header(data: bytes) -> Header:
    """The first 12 octets: enough to know how many more to read.

    >>> read_header(bytes.fromhex("0000000c0000000800000001"))
    Header(length=12, command=<Command.ACTIVE_TEST: 8>, sequence=1)
    >>> read_header(bytes.fromhex("0000000c0000000900000001"))
    Traceback (most recent call last):
    sms.errors.UnknownCmppCommand: unknown CMPP Command_Id 0x00000009
    """
    if len(data) < HEADER.size:
        raise BadCmppPdu(f"{len(data)} octets: shorter than the 12-octet header")
    length, command, sequence = HEADER.unpack_from(data)
    if not HEADER.size <= length <= MAX_LENGTH:
        raise BadCmppPdu(f"Total_Length {length}: not 12 to {MAX_LENGTH}")
    try:
        return Header(length, Command(command), sequence)
    except ValueError:
        raise UnknownCmppCommand(command) from None


def encode(sequence: int, message: Body, version: Version) -> bytes:
    body = message.to_body(version)
    return HEADER.pack(HEADER.size + len(body), message.COMMAND, sequence) + body


def decode(pdu: bytes, version: Version) -> tuple[Header, object]:
    """A whole PDU (header and body) to its header and body value."""
    from sms.cmpp_deliver import Deliver, DeliverResp  # they build on this module

    header = read_header(pdu)
    if header.length != len(pdu):
        raise BadCmppPdu(f"Total_Length {header.length}, but {len(pdu)} octets")
    kinds = (Connect, ConnectResp, Submit, SubmitResp, Terminate, TerminateResp, ActiveTest, ActiveTestResp)
    readers: dict[Command, Callable[[bytes, Version], object]] = {k.COMMAND: k.from_body for k in kinds}
    readers[Command.DELIVER], readers[Command.DELIVER_RESP] = Deliver.from_body, DeliverResp.from_body
    return header, readers[header.command](pdu[HEADER.size :], version)
