"""The test carrier's answering side: SIPp as a UAS on CARRIER_ADDR:CARRIER_UAS_PORT, where
the trunk `carrier` sends calls out. The smallest scenarios the callback tests need: answer
(and wait for Asterisk's BYE) or ring for 3 s and refuse with 486 Busy Here. Every message SIPp sees is
written to a message log, so a test can read the INVITE it got.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.procs import free_port
from ivr.asterisk import LocalAsterisk
from ivr.pjsip_config import TRUNK_PREFIX
from tests.real.sip_setup import CARRIER_ADDR, CARRIER_TRUNK, CARRIER_UAS_PORT

# 180, then 200 with an SDP offering PCMA (the trunk allows alaw, ulaw); Asterisk hangs up.
ANSWER: Final = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier answers">
  <recv request="INVITE" crlf="true" />
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=carrier 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv request="ACK" crlf="true" />
  <recv request="BYE" />
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

BUSY: Final = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="carrier busy">
  <recv request="INVITE" crlf="true" />
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <pause milliseconds="3000" />
  <send><![CDATA[
SIP/2.0 486 Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK" />
</scenario>
"""


@dataclass
class Uas:
    process: subprocess.Popen[bytes]
    messages: Path
    log: Path

    def _messages(self) -> list[tuple[str, str]]:
        """(sent|received, message) in order; SIPp writes each with a header line."""
        text = self.messages.read_text(encoding="utf-8", errors="replace") if self.messages.exists() else ""
        parts = re.split(r"^(?:UDP|TCP) message (sent|received)[^\n]*\n", text, flags=re.MULTILINE)
        return [(parts[i], parts[i + 1].strip()) for i in range(1, len(parts) - 1, 2)]

    def invites(self) -> list[tuple[str, str]]:
        """(Request-URI user, From user) of every INVITE received so far (a retransmission once)."""
        out: dict[str, tuple[str, str]] = {}
        for way, message in self._messages():
            uri = re.match(r"INVITE sip:([^@;> ]+)@", message)
            sender = re.search(r"^From:.*?<sip:([^@;>]+)@", message, re.MULTILINE)
            call_id = re.search(r"^Call-ID:\s*(\S+)", message, re.MULTILINE)
            if way == "received" and uri and sender and call_id:
                out.setdefault(call_id.group(1), (uri.group(1), sender.group(1)))
        return list(out.values())

    def seen(self, way: str, first_line: str, method: str) -> int:
        """How many calls had a message of `way` starting with `first_line` for CSeq `method`."""
        calls = set()
        for w, message in self._messages():
            call_id = re.search(r"^Call-ID:\s*(\S+)", message, re.MULTILINE)
            cseq = re.search(r"^CSeq:\s*\d+\s+(\w+)", message, re.MULTILINE)
            if w == way and message.startswith(first_line) and call_id and cseq and cseq.group(1) == method:
                calls.add(call_id.group(1))
        return len(calls)

    def wait_for(self, way: str, first_line: str, method: str, count: int = 1, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while self.seen(way, first_line, method) < count:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"SIPp UAS: no {count} x {way} {first_line!r} ({method}): {self.log.read_text()}")
            time.sleep(0.1)


def _wait_bound(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 10.0) -> None:
    """Until SIPp holds its UDP port (binding it ourselves fails), so no INVITE is sent to nobody."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"SIPp UAS exited at once: {log.read_text()}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((CARRIER_ADDR, CARRIER_UAS_PORT))
            except OSError:
                return
        time.sleep(0.05)
    raise AssertionError(f"SIPp UAS not listening on {CARRIER_ADDR}:{CARRIER_UAS_PORT} within {timeout_s:g} s")


def _wait_qualified(asterisk: LocalAsterisk, timeout_s: float = 10.0) -> None:
    endpoint = TRUNK_PREFIX + CARRIER_TRUNK
    asterisk.cli(f"pjsip qualify {endpoint}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        contacts = asterisk.cli(f"pjsip show contacts like {endpoint}")
        if re.search(r"Contact:\s+\S+\s+\S+\s+Avail", contacts):
            return
        time.sleep(0.1)
        asterisk.cli(f"pjsip qualify {endpoint}")
    raise AssertionError(f"the trunk's contact is not available within {timeout_s:g} s: {contacts}")


@contextmanager
def carrier_uas(tmp: Path, asterisk: LocalAsterisk, scenario: str, *, timeout_s: int = 60) -> Iterator[Uas]:
    """SIPp answering calls with `scenario` until the block ends, bound where the trunk sends calls out,
    once Asterisk's qualify found it there (a trunk whose carrier did not answer OPTIONS has
    no usable contact: its calls out fail with CHANUNAVAIL)."""
    xml = tmp / "uas.xml"
    xml.write_text(scenario, encoding="iso-8859-1")
    messages, log = tmp / "uas-messages.log", tmp / "uas.log"
    args = [
        "sipp",
        "-sf",
        str(xml),
        "-i",
        CARRIER_ADDR,
        "-p",
        str(CARRIER_UAS_PORT),
        "-mp",
        str(free_port()),
        "-cp",
        str(free_port()),
        "-nostdin",
        # Answers the trunk's qualify OPTIONS (and INFO, NOTIFY, UPDATE) with 200 by itself.
        # Each such OPTIONS counts as a call of the scenario, so no call limit (-m) is set:
        # tests read what was sent and received from the message log instead.
        "-aa",
        "-timeout",
        f"{timeout_s}s",
        "-timeout_error",
        "-trace_msg",
        "-message_file",
        str(messages),
        "-trace_err",
        "-error_file",
        str(tmp / "uas-errors.log"),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    uas = Uas(process, messages, log)
    try:
        _wait_bound(process, log)
        _wait_qualified(asterisk)
        yield uas
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
