"""The smallest carrier-side caller these tests need: SIPp on CARRIER_ADDR dials 12333 over
UDP, keys DTMF as RFC 4733 telephone-events and hangs up after a set time.

(The SIPp harness of tests/sip_peers, on its own branch, does the same at large; this one
is what the agents' phone test needs until the two meet.)

The DTMF is an RTP capture SIPp replays (`play_pcap_audio`): per digit one event of
RFC 4733 §2.3 packets, 20 ms apart, all with the event's start timestamp and a growing
duration, the first with the marker bit, then three end packets (E bit) as §2.5.1.4 asks.
Timestamps and sequence numbers grow across digits, so Asterisk takes a repeated digit
for a new event.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from tests.real.sip_setup import CARRIER_ADDR

EVENT_PT = 101  # telephone-event's payload type in our SDP offer
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
PACKETS_PER_DIGIT = 5  # 100 ms of tone
GAP_S = 0.2  # between digits


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def _frame(payload: bytes) -> bytes:
    """Ethernet, IPv4 and UDP around an RTP packet (SIPp rewrites addresses and ports)."""
    udp = struct.pack("!HHHH", 6000, 6000, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), bytes(4))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\0" * 12 + b"\x08\x00" + ip + udp


def dtmf_pcap(digits: str, path: Path) -> Path:
    records = []
    seq, timestamp, at = 1, 8000, 0.0
    for digit in digits:
        event = EVENTS[digit]
        for n in range(PACKETS_PER_DIGIT + 3):
            end = n >= PACKETS_PER_DIGIT
            duration = SAMPLES_PER_PACKET * min(n + 1, PACKETS_PER_DIGIT)
            marker = 0x80 if n == 0 else 0
            rtp = struct.pack("!BBHII", 0x80, marker | EVENT_PT, seq, timestamp, 0x12333)
            rtp += struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
            frame = _frame(rtp)
            records.append(struct.pack("<IIII", int(at), int(at % 1 * 1e6), len(frame), len(frame)) + frame)
            seq += 1
            at += 0.02
        timestamp += SAMPLES_PER_PACKET * (PACKETS_PER_DIGIT + int(GAP_S * 8000 / SAMPLES_PER_PACKET))
        at += GAP_S
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(records))
    return path


SCENARIO = """<?xml version="1.0" encoding="UTF-8"?>
<scenario name="carrier call: dial, key DTMF, talk, hang up">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: "caller" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=carrier 1 1 IN IP4 [media_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: "caller" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <pause milliseconds="{lead_ms}"/>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="{talk_ms}"/>
  <send retrans="500"><![CDATA[
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: "caller" <sip:[caller]@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:[caller]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
</scenario>
"""


def start_call(
    work: Path,
    sip_port: int,
    digits: str,
    *,
    caller: str,
    lead_s: float,
    talk_s: float,
    control_port: int,
    media_port: int,
) -> subprocess.Popen[bytes]:
    """Start one call from CARRIER_ADDR to 12333; the caller keys `digits` `lead_s` after
    the answer and hangs up `talk_s` later. SIPp exits 0 when the call went through."""
    pcap = dtmf_pcap(digits, work / "dtmf.pcap")
    scenario = work / "carrier.xml"
    scenario.write_text(
        SCENARIO.replace("{lead_ms}", str(int(lead_s * 1000)))
        .replace("{talk_ms}", str(int(talk_s * 1000)))
        .replace("{pcap}", str(pcap))
        .replace("[caller]", caller),
        encoding="utf-8",
    )
    bound = int(lead_s + talk_s + 30)
    command = [
        "sipp", f"127.0.0.1:{sip_port}", "-sf", str(scenario), "-s", "12333",
        "-i", CARRIER_ADDR, "-mi", CARRIER_ADDR, "-mp", str(media_port), "-cp", str(control_port),
        "-m", "1", "-nostdin", "-timeout", f"{bound}s", "-timeout_error",
        "-trace_err", "-error_file", str(work / "sipp-errors.log"),
    ]  # fmt: skip
    log = (work / "sipp.log").open("wb")
    try:
        return subprocess.Popen(command, cwd=work, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()
