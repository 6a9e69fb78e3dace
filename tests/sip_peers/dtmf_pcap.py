"""A key string as RTP (RFC 4733 telephone-events), written as a libpcap file for SIPp.

SIPp's `play_pcap_audio` replays a capture's UDP payloads at the capture's packet times,
re-addressed to the call's media (the addresses in the file do not matter, but are kept
valid). Its shipped `dtmf_2833_*.pcap` files are one key each and reuse their RTP
timestamps, so Asterisk takes a repeated key for a retransmission of the last event and
drops it. Here one stream carries the whole key string: one SSRC, sequence numbers that
always increase, and each event stamped with the RTP time at which it starts, so events
never share a timestamp.

The notation is the scripted caller's (ivr/caller.py, SendDTMF): 0-9 * # A-D, `w` a
0.5 s pause and `W` a 1 s pause. A key sounds `key_ms` (Asterisk's default DTMF duration,
100 ms) and is followed by `gap_ms` (SendDTMF's default 250 ms between tones). Between
events the stream carries PCMA silence, as a phone's does: Asterisk's strict RTP learns the
peer from the first packets (asterisk rtp.conf `strictrtp`, `probation`), better from
silence than from a key's first packets.

>>> packets = rtp_stream("1w1")
>>> [p.event.event for p in packets if p.event and p.marker]
[1, 1]
>>> len({p.timestamp for p in packets if p.event})
2
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CLOCK_HZ: Final = 8000  # RFC 4733 §2.1: the telephone-event clock of an 8 kHz audio stream
PACKET_MS: Final = 20
SAMPLES_PER_PACKET: Final = CLOCK_HZ * PACKET_MS // 1000
PT_PCMA: Final = 8  # RFC 3551 §6, static payload type
PT_EVENT: Final = 101  # dynamic; the SDP of our scenarios maps it to telephone-event/8000
END_PACKETS: Final = 3  # RFC 4733 §2.5.1.4: the final packet is sent three times
VOLUME_DBM0: Final = 10  # RFC 4733 §2.3.4: power level, 0..63 as -dBm0
PCMA_SILENCE: Final = b"\xd5" * SAMPLES_PER_PACKET  # A-law code of a zero sample (G.711)
KEY_MS: Final = 100
GAP_MS: Final = 250
LEAD_IN_MS: Final = 100  # silence before the first key
PAUSES: Final = {"w": 500, "W": 1000}
# RFC 4733 §3.2, table 1: DTMF named events.
EVENTS: Final = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}

_RTP: Final = struct.Struct("!BBHII")
_EVENT: Final = struct.Struct("!BBH")
_PCAP_HEADER: Final = struct.Struct("<IHHiIII")
_PCAP_RECORD: Final = struct.Struct("<IIII")
_PCAP_MAGIC: Final = 0xA1B2C3D4  # microsecond timestamps
_LINKTYPE_ETHERNET: Final = 1
_ETHERNET: Final = bytes.fromhex("0200000000010200000000020800")  # locally administered MACs, IPv4


class BadKeys(ValueError):
    """A key string with characters that are neither keys nor pauses."""


@dataclass(frozen=True)
class TelephoneEvent:
    """The payload of an RFC 4733 §2.3 event packet."""

    event: int
    end: bool
    volume: int
    duration: int  # in RTP clock units since the event's timestamp

    def encode(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @classmethod
    def decode(cls, payload: bytes) -> TelephoneEvent:
        event, flags, duration = _EVENT.unpack(payload[: _EVENT.size])
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True)
class RtpPacket:
    at_ms: int  # send time, from the stream's first packet
    seq: int
    timestamp: int
    marker: bool
    payload_type: int
    ssrc: int
    payload: bytes

    @property
    def event(self) -> TelephoneEvent | None:
        return TelephoneEvent.decode(self.payload) if self.payload_type == PT_EVENT else None

    def encode(self) -> bytes:
        second = (0x80 if self.marker else 0) | self.payload_type
        return _RTP.pack(0x80, second, self.seq, self.timestamp, self.ssrc) + self.payload  # V=2

    @classmethod
    def decode(cls, at_ms: int, data: bytes) -> RtpPacket:
        first, second, seq, timestamp, ssrc = _RTP.unpack(data[: _RTP.size])
        if first >> 6 != 2:
            raise ValueError(f"not RTP version 2 (first byte {first:#x})")
        header = _RTP.size + 4 * (first & 0x0F)  # CSRC list
        return cls(at_ms, seq, timestamp, bool(second & 0x80), second & 0x7F, ssrc, data[header:])


def check_keys(keys: str) -> None:
    bad = {c for c in keys if c not in EVENTS and c not in PAUSES}
    if bad:
        raise BadKeys(f"keys may be 0-9 * # A-D and the pauses w W, not {''.join(sorted(bad))!r}")


def _schedule(keys: str, key_ms: int, gap_ms: int, lead_in_ms: int) -> tuple[list[tuple[int, int]], int]:
    """(start ms, event) of each key, and the stream's length in ms."""
    starts: list[tuple[int, int]] = []
    at = lead_in_ms
    for char in keys:
        if char in PAUSES:
            at += PAUSES[char]
        else:
            at = -(-at // PACKET_MS) * PACKET_MS  # on the 20 ms packet clock, as a phone sends
            starts.append((at, EVENTS[char]))
            at += key_ms + gap_ms
    return starts, at


def _event_packets(start_ms: int, event: int, key_ms: int) -> list[tuple[int, bool, TelephoneEvent]]:
    """(send ms, marker, payload) of one key: updates every 20 ms with growing durations,
    then the final duration three times with the E bit (RFC 4733 §2.5.1.2-§2.5.1.4)."""
    steps = max(1, key_ms // PACKET_MS)
    final = steps * SAMPLES_PER_PACKET
    out = [
        (start_ms + k * PACKET_MS, k == 0, TelephoneEvent(event, False, VOLUME_DBM0, (k + 1) * SAMPLES_PER_PACKET))
        for k in range(steps - 1)
    ]
    first_end = start_ms + (steps - 1) * PACKET_MS
    out += [
        (first_end + j * PACKET_MS, steps == 1 and j == 0, TelephoneEvent(event, True, VOLUME_DBM0, final))
        for j in range(END_PACKETS)
    ]
    return out


def rtp_stream(
    keys: str,
    *,
    key_ms: int = KEY_MS,
    gap_ms: int = GAP_MS,
    silence: bool = True,
    lead_in_ms: int = LEAD_IN_MS,
    seed: int | None = None,
) -> list[RtpPacket]:
    """The packets of `keys`, in send order. Random SSRC and initial sequence number and
    timestamp (RFC 3550 §5.1), from `seed` when given."""
    check_keys(keys)
    if gap_ms < END_PACKETS * PACKET_MS:
        raise BadKeys(f"a gap of {gap_ms} ms leaves no room for a key's {END_PACKETS} end packets")
    rng = random.Random(seed)
    ssrc, seq0, ts0 = rng.getrandbits(32), rng.getrandbits(15), rng.getrandbits(31)
    starts, length_ms = _schedule(keys, key_ms, gap_ms, lead_in_ms if silence else 0)
    timed: list[tuple[int, int, bool, int, bytes]] = []  # (ms, timestamp ms, marker, type, payload)
    busy: set[int] = set()
    for start, event in starts:
        for at, marker, payload in _event_packets(start, event, key_ms):
            timed.append((at, start, marker, PT_EVENT, payload.encode()))
            busy.add(at // PACKET_MS)
    if silence:
        for slot in range(length_ms // PACKET_MS):
            if slot not in busy:
                at = slot * PACKET_MS
                timed.append((at, at, False, PT_PCMA, PCMA_SILENCE))
    timed.sort(key=lambda t: t[0])
    return [
        RtpPacket(
            at,
            (seq0 + i) & 0xFFFF,
            (ts0 + ts_ms * CLOCK_HZ // 1000) & 0xFFFFFFFF,
            marker,
            pt,
            ssrc,
            payload,
        )
        for i, (at, ts_ms, marker, pt, payload) in enumerate(timed)
    ]


def stream_ms(packets: Sequence[RtpPacket]) -> int:
    """How long playing the packets takes: up to the end of the last packet's 20 ms."""
    return packets[-1].at_ms + PACKET_MS if packets else 0


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes, src: tuple[str, int], dst: tuple[str, int], ident: int) -> bytes:
    """Ethernet II / IPv4 (RFC 791) / UDP (RFC 768) around `payload`, checksums filled in."""
    saddr, daddr = socket.inet_aton(src[0]), socket.inet_aton(dst[0])
    udp_len = 8 + len(payload)
    pseudo = saddr + daddr + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_len)
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    udp_sum = _checksum(pseudo + udp) or 0xFFFF  # 0 would mean "no checksum"
    udp = udp[:6] + struct.pack("!H", udp_sum) + udp[8:]
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident & 0xFFFF, 0x4000, 64, socket.IPPROTO_UDP, 0, saddr, daddr
    )
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _ETHERNET + ip + udp


def write_pcap(
    path: Path,
    packets: Iterable[RtpPacket],
    *,
    src: tuple[str, int] = ("127.0.0.2", 6000),
    dst: tuple[str, int] = ("127.0.0.1", 10000),
) -> None:
    """A libpcap file (the classic format, Ethernet link type) of the packets, in order."""
    out = [_PCAP_HEADER.pack(_PCAP_MAGIC, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    for i, packet in enumerate(packets):
        frame = _frame(packet.encode(), src, dst, i)
        sec, ms = divmod(packet.at_ms, 1000)
        out += [_PCAP_RECORD.pack(sec, ms * 1000, len(frame), len(frame)), frame]
    path.write_bytes(b"".join(out))


def read_pcap(path: Path) -> list[RtpPacket]:
    """The RTP packets of a file written by `write_pcap` (times relative to the first)."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = _PCAP_HEADER.unpack_from(data)
    if magic != _PCAP_MAGIC or linktype != _LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: not a little-endian microsecond Ethernet pcap")
    packets: list[RtpPacket] = []
    offset, first_us = _PCAP_HEADER.size, None
    while offset < len(data):
        sec, usec, caplen, _ = _PCAP_RECORD.unpack_from(data, offset)
        frame = data[offset + _PCAP_RECORD.size : offset + _PCAP_RECORD.size + caplen]
        offset += _PCAP_RECORD.size + caplen
        at_us = sec * 1_000_000 + usec
        first_us = at_us if first_us is None else first_us
        ip = frame[len(_ETHERNET) :]
        udp = ip[4 * (ip[0] & 0x0F) :]
        packets.append(RtpPacket.decode((at_us - first_us) // 1000, udp[8:]))
    return packets


def dtmf_pcap(
    path: Path, keys: str, *, key_ms: int = KEY_MS, gap_ms: int = GAP_MS, silence: bool = True, seed: int | None = None
) -> int:
    """Write `keys` to `path` as a pcap for `play_pcap_audio`; returns its length in ms."""
    packets = rtp_stream(keys, key_ms=key_ms, gap_ms=gap_ms, silence=silence, seed=seed)
    write_pcap(path, packets)
    return stream_ms(packets)
