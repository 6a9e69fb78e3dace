"""CMPP's Msg_Id (CMPP 2.0/3.0 §6.3.3, "信息标识"): the 8 octets a gateway gives each
accepted SUBMIT and quotes in its status report, read as the typed value it is."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar, Final

from sms.errors import BadCmppPdu, CmppFieldTooLong


@dataclass(frozen=True)
class MsgId:
    """The gateway's 64-bit message id: bits 64-61 month, 60-56 day, 55-51 hour, 50-45
    minute, 44-39 second, 38-17 the gateway's code, 16-1 a sequence.

    `str()` is the canonical form the store keeps: MMDDHHMMSS, the gateway code in 7
    digits and the sequence in 5 (every field fits, so two ids are equal exactly when
    their strings are).

    >>> m = MsgId.from_bytes(bytes.fromhex("9d2514400003d5e5"))
    >>> m
    MsgId(month=9, day=26, hour=9, minute=17, second=17, gateway=3, sequence=54757)
    >>> str(m)
    '0926091717000000354757'
    >>> MsgId.from_int(0xFFFFFFFFFFFFFFFF).to_bytes().hex()
    'ffffffffffffffff'
    """

    month: int
    day: int
    hour: int
    minute: int
    second: int
    gateway: int
    sequence: int

    _FIELDS: ClassVar = (("month", 4), ("day", 5), ("hour", 5), ("minute", 6), ("second", 6), ("gateway", 22))

    @classmethod
    def from_int(cls, value: int) -> MsgId:
        parts, shift = {}, 64
        for name, bits in cls._FIELDS:
            shift -= bits
            parts[name] = (value >> shift) & ((1 << bits) - 1)
        return cls(sequence=value & 0xFFFF, **parts)

    @classmethod
    def from_bytes(cls, raw: bytes) -> MsgId:
        if len(raw) != 8:
            raise BadCmppPdu(f"a Msg_Id is 8 octets, not {len(raw)}")
        return cls.from_int(int.from_bytes(raw, "big"))

    @classmethod
    def parse(cls, text: str) -> MsgId:
        """The canonical string back (what the store kept)."""
        if len(text) != 22 or not text.isdigit():
            raise BadCmppPdu(f"{text[:40]!r} is not a 22-digit Msg_Id")
        cuts = (0, 2, 4, 6, 8, 10, 17, 22)
        month, day, hour, minute, second, gateway, sequence = (int(text[a:b]) for a, b in itertools.pairwise(cuts))
        return cls(month, day, hour, minute, second, gateway, sequence)

    def to_int(self) -> int:
        value = 0
        for name, bits in (*self._FIELDS, ("sequence", 16)):
            field = getattr(self, name)
            if not 0 <= field < 1 << bits:
                raise CmppFieldTooLong(f"Msg_Id {name} {field} does not fit {bits} bits")
            value = (value << bits) | field
        return value

    def to_bytes(self) -> bytes:
        return self.to_int().to_bytes(8, "big")

    def __str__(self) -> str:
        m = self
        return f"{m.month:02d}{m.day:02d}{m.hour:02d}{m.minute:02d}{m.second:02d}{m.gateway:07d}{m.sequence:05d}"


ZERO_MSG_ID: Final = MsgId(0, 0, 0, 0, 0, 0, 0)  # what SUBMIT carries: the gateway fills it in
