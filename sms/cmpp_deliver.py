"""CMPP_DELIVER (CMPP 2.0/3.0 §6.3.7): a resident's text (Registered_Delivery 0) or a
status report (1) whose Msg_Content is the report's own fixed layout; and DELIVER_RESP
(§6.3.8). Pure, like `sms/cmpp_pdu.py`, whose framing and fields these use.

>>> report = StatusReport(MsgId(9, 26, 9, 17, 17, 3, 1), "DELIVRD", "2609260917", "2609260917", "13800000000", 1)
>>> len(report.to_bytes(Version.V20)), len(report.to_bytes(Version.V30))
(60, 71)
>>> StatusReport.from_bytes(report.to_bytes(Version.V30), Version.V30) == report
True
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from sms.cmpp_msgid import MsgId
from sms.cmpp_pdu import (
    MSG_FMT_ASCII,
    STATUS_CODE,
    TERMINAL_WIDTH,
    Command,
    byte_of,
    exact_length,
    octets,
    text_of,
    unpack,
)
from sms.cmpp_results import Version
from sms.errors import BadCmppPdu

# Msg_Id, Dest_Id, Service_Id, TP_pid, TP_udhi, Msg_Fmt, Src_terminal_Id [, Src_terminal_type],
# Registered_Delivery, Msg_Length: 65 octets in 2.0, 77 in 3.0.
_HEAD: Final = {
    Version.V20: struct.Struct("!8s21s10sBBB21sBB"),
    Version.V30: struct.Struct("!8s21s10sBBB32sBBB"),
}
_TAIL: Final = {Version.V20: 8, Version.V30: 20}  # 2.0's Reserve, 3.0's LinkID
# Msg_Id, Stat, Submit_time, Done_time, Dest_terminal_Id, SMSC_sequence.
_REPORT: Final = {
    Version.V20: struct.Struct("!8s7s10s10s21sI"),  # 60 octets
    Version.V30: struct.Struct("!8s7s10s10s32sI"),  # 71 octets
}


@dataclass(frozen=True)
class StatusReport:
    """The Msg_Content of a DELIVER with Registered_Delivery 1. `msg_id` is the one
    SUBMIT_RESP gave; Stat is DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD, UNKNOWN,
    REJECTD or a gateway's own code (MA:0001, MK:0005...); times are YYMMDDHHMM."""

    msg_id: MsgId
    stat: str
    submit_time: str
    done_time: str
    dest_terminal_id: str
    smsc_sequence: int

    def to_bytes(self, version: Version) -> bytes:
        return _REPORT[version].pack(
            self.msg_id.to_bytes(),
            octets(self.stat, 7, "Stat"),
            octets(self.submit_time, 10, "Submit_time"),
            octets(self.done_time, 10, "Done_time"),
            octets(self.dest_terminal_id, TERMINAL_WIDTH[version], "Dest_terminal_Id"),
            self.smsc_sequence,
        )

    @classmethod
    def from_bytes(cls, content: bytes, version: Version) -> StatusReport:
        layout = _REPORT[version]
        if len(content) != layout.size:
            raise BadCmppPdu(f"a {version.name} status report is {layout.size} octets, not {len(content)}")
        raw, stat, submitted, done, dest, seq = layout.unpack(content)
        return cls(MsgId.from_bytes(raw), text_of(stat), text_of(submitted), text_of(done), text_of(dest), seq)


@dataclass(frozen=True)
class Deliver:
    COMMAND: ClassVar = Command.DELIVER

    msg_id: MsgId  # the gateway's id of this DELIVER (a report's subject is inside it)
    dest_id: str  # our access code as the resident dialled it
    src_terminal_id: str  # the resident's number
    content: bytes
    registered_delivery: int = 0  # 1: a status report
    msg_fmt: int = MSG_FMT_ASCII
    service_id: str = ""
    tp_pid: int = 0
    tp_udhi: int = 0
    src_terminal_type: int = 0  # 3.0
    link_id: str = ""  # 3.0

    @property
    def is_report(self) -> bool:
        return self.registered_delivery == 1

    def report(self, version: Version) -> StatusReport:
        if not self.is_report:
            raise BadCmppPdu("not a status report: Registered_Delivery is 0")
        return StatusReport.from_bytes(self.content, version)

    def to_body(self, version: Version) -> bytes:
        width = TERMINAL_WIDTH[version]
        fields: list[int | bytes] = [
            self.msg_id.to_bytes(),
            octets(self.dest_id, 21, "Dest_Id"),
            octets(self.service_id, 10, "Service_Id"),
            byte_of(self.tp_pid, "TP_pid"),
            byte_of(self.tp_udhi, "TP_udhi"),
            byte_of(self.msg_fmt, "Msg_Fmt"),
            octets(self.src_terminal_id, width, "Src_terminal_Id"),
        ]
        if version == Version.V30:
            fields.append(byte_of(self.src_terminal_type, "Src_terminal_type"))
        fields += [byte_of(self.registered_delivery, "Registered_Delivery"), byte_of(len(self.content), "Msg_Length")]
        tail = octets(self.link_id, 20, "LinkID") if version == Version.V30 else bytes(8)
        return _HEAD[version].pack(*fields) + self.content + tail

    @classmethod
    def from_body(cls, body: bytes, version: Version) -> Deliver:
        head = _HEAD[version]
        f = list(unpack(head, body, 0, "CMPP_DELIVER"))
        src_type = f.pop(7) if version == Version.V30 else 0
        raw_id, dest, service, tp_pid, tp_udhi, msg_fmt, src, registered, length = f
        assert isinstance(raw_id, bytes) and isinstance(length, int) and isinstance(src_type, int)
        exact_length(body, head.size + length + _TAIL[version], f"CMPP_DELIVER ({version.name}, Msg_Length {length})")
        content = body[head.size : head.size + length]
        link_id = text_of(body[-20:]) if version == Version.V30 else ""
        texts = [text_of(v) if isinstance(v, bytes) else "" for v in (dest, service, src)]
        ints = [v if isinstance(v, int) else 0 for v in (tp_pid, tp_udhi, msg_fmt, registered)]
        return cls(
            MsgId.from_bytes(raw_id), texts[0], texts[2], content, ints[3], ints[2], texts[1], ints[0], ints[1],
            src_type, link_id,
        )  # fmt: skip


@dataclass(frozen=True)
class DeliverResp:
    """Msg_Id (the DELIVER's own) and Result: one octet in 2.0, four in 3.0 (§6.3.8)."""

    COMMAND: ClassVar = Command.DELIVER_RESP

    msg_id: MsgId
    result: int = 0

    def to_body(self, version: Version) -> bytes:
        return self.msg_id.to_bytes() + struct.pack("!" + STATUS_CODE[version], self.result)

    @classmethod
    def from_body(cls, body: bytes, version: Version) -> DeliverResp:
        layout = struct.Struct(f"!8s{STATUS_CODE[version]}")
        exact_length(body, layout.size, f"CMPP_DELIVER_RESP ({version.name})")
        raw, result = layout.unpack(body)
        return cls(MsgId.from_bytes(raw), result)
