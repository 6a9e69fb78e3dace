"""SIPp as the carrier: calls into the hotline (UAC) and an answering side for calls out (UAS).

The calling side sends what a carrier sends: an INVITE from the trunk's address with PCMA
and RFC 4733 telephone-event, the caller id in the From user and the called number in the
Request-URI, then the caller's keys as RTP events (dtmf_pcap.py, played by SIPp's
`play_pcap_audio` at the capture's packet times), then a BYE. Our scenarios are in
scenarios/; per-call values come from an -inf CSV (caller, called), the rest from -key and
-set. SIPp's own verdicts are not used: what each call got is read back from the message
log (-trace_msg), so a refused INVITE is a result to look at, not an exception.

Every run binds its own local SIP port and control port (-cp; the default 8888 collides
with any other SIPp), never reads stdin (-nostdin), ends on its own (-timeout) and is
killed if it outlives that.

    plan = UacPlan((CarrierCall("+8613800000001", "12333"),), dtmf="1W1", tail_s=4)
    result = place_calls(hotline_address(settings), plan, tmp_path)
    assert result.calls[0].completed

    with CarrierUas(tmp_path, CARRIER_UAS_PORT, mode="busy", asterisk=local) as uas:
        ...  # make the hotline call out through the trunk
        [invite] = uas.wait_invites(1, timeout_s=30)
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

from core.settings import Settings
from ivr.asterisk import LocalAsterisk
from ivr.errors import AsteriskCommandFailed
from ivr.pjsip_config import TRUNK_PREFIX
from tests.real.sip_setup import CARRIER_ADDR
from tests.sip_peers.dtmf_pcap import dtmf_pcap

SCENARIOS: Final = Path(__file__).resolve().parent / "scenarios"
UAC_SCENARIO: Final = SCENARIOS / "uac_dtmf.xml"
ANSWER_TIMEOUT_S: Final = 30.0  # the scenario's wait for a final response (uac_dtmf.xml)
_BYE_TIMEOUT_S: Final = 10.0
_MARGIN_S: Final = 15.0
# -t: one UDP socket for all calls, or one TCP connection per call (RFC 3261 §18).
_TRANSPORTS: Final = {"udp": "u1", "tcp": "tn"}
_SEPARATOR: Final = re.compile(r"^-{40,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.MULTILINE)
_HEAD: Final = re.compile(r"^(UDP|TCP|TLS) message (sent|received)\b[^\n]*\n\n", re.MULTILINE)
_USER: Final = re.compile(r"sips?:([^@;>]+)@")
_CONTACT_HOST: Final = re.compile(r"sips?:(?:[^@;>]*@)?\[?([^\];>]+?)\]?(?::\d+)?[;>]")

Transport = Literal["udp", "tcp"]


class SippFailed(RuntimeError):
    """SIPp could not run the scenario (a bad option, a port it could not bind) or hung."""


@dataclass(frozen=True)
class CarrierCall:
    """One call as the carrier presents it."""

    caller: str = "13800000000"  # the From user (the caller id)
    called: str = "12333"  # the Request-URI user
    header_value: str = ""  # the value of the plan's `header` in this call's INVITE


@dataclass(frozen=True)
class SipMessage:
    direction: Literal["sent", "received"]
    at: dt.datetime
    text: str

    @property
    def first_line(self) -> str:
        return self.text.split("\r\n", 1)[0].split("\n", 1)[0].strip()

    @property
    def status(self) -> int | None:
        """The response code, None for a request."""
        parts = self.first_line.split()
        return int(parts[1]) if parts and parts[0] == "SIP/2.0" else None

    @property
    def method(self) -> str | None:
        """The request method, None for a response."""
        return None if self.status is not None else self.first_line.split(" ", 1)[0]

    def header(self, name: str) -> str | None:
        """The first header of that name (compact forms not read: SIPp and Asterisk send long ones)."""
        match = re.search(rf"^{re.escape(name)}\s*:\s*(.*?)\s*$", self.text, re.MULTILINE | re.IGNORECASE)
        return match.group(1) if match else None

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def cseq_method(self) -> str | None:
        cseq = self.header("CSeq")
        return cseq.split()[-1] if cseq else None

    @property
    def request_user(self) -> str | None:
        if self.method is None:
            return None
        return uri_user(self.first_line.split()[1])


def uri_user(text: str | None) -> str | None:
    """The user part of the first SIP URI in `text` (a Request-URI, a From or To value)."""
    match = _USER.search(text or "")
    return match.group(1) if match else None


def read_messages(path: Path) -> list[SipMessage]:
    """The SIP messages of a SIPp -trace_msg log, in order."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    marks = list(_SEPARATOR.finditer(text))
    out = []
    for i, mark in enumerate(marks):
        block = text[mark.end() + 1 : marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        head = _HEAD.match(block)
        if head:
            at = dt.datetime.strptime(mark.group(1), "%Y-%m-%d %H:%M:%S.%f")
            direction: Literal["sent", "received"] = "sent" if head.group(2) == "sent" else "received"
            out.append(SipMessage(direction, at, block[head.end() :].strip() + "\n"))
    return out


@dataclass(frozen=True)
class CallResult:
    """What one call got: every response code to its INVITE (in order, each once) and to its BYE."""

    call_id: str
    caller: str | None
    called: str | None
    invite_codes: tuple[int, ...]
    bye_code: int | None
    messages: tuple[SipMessage, ...] = field(repr=False)

    @property
    def final_code(self) -> int | None:
        finals = [c for c in self.invite_codes if c >= 200]
        return finals[0] if finals else None

    @property
    def answered(self) -> bool:
        return self.final_code == 200

    @property
    def completed(self) -> bool:
        """Answered, and our BYE was accepted: the caller hung up as planned."""
        return self.answered and self.bye_code == 200

    # The call's timeline, from the message log's times (SIPp's clock: local time).
    @property
    def invited_at(self) -> dt.datetime | None:
        """When our first INVITE went out."""
        return next((m.at for m in self.messages if m.direction == "sent" and m.method == "INVITE"), None)

    def _answer(self) -> SipMessage | None:
        return next(
            (m for m in self.messages if m.direction == "received" and m.status == 200 and m.cseq_method == "INVITE"),
            None,
        )

    @property
    def answered_at(self) -> dt.datetime | None:
        answer = self._answer()
        return answer.at if answer else None

    @property
    def answered_by(self) -> str | None:
        """The host of the answer's Contact: who took the call (a cluster node behind a proxy)."""
        answer = self._answer()
        match = _CONTACT_HOST.search(answer.header("Contact") or "") if answer else None
        return match.group(1) if match else None

    @property
    def bye_sent_at(self) -> dt.datetime | None:
        return next((m.at for m in self.messages if m.direction == "sent" and m.method == "BYE"), None)


def _call_results(messages: Sequence[SipMessage]) -> tuple[CallResult, ...]:
    by_id: dict[str, list[SipMessage]] = {}
    for m in messages:
        if m.call_id:
            by_id.setdefault(m.call_id, []).append(m)
    results = []
    for call_id, msgs in by_id.items():
        invite = next((m for m in msgs if m.cseq_method == "INVITE"), None)
        if invite is None:
            continue
        # Over TCP SIPp logs no INVITE that had to wait for the connection: the responses
        # carry the same From and To (the Request-URI's user, in our scenario).
        sent = next((m for m in msgs if m.direction == "sent" and m.method == "INVITE"), None)
        codes: dict[str, list[int]] = {"INVITE": [], "BYE": []}
        for m in msgs:
            method, status = m.cseq_method, m.status
            if m.direction == "received" and status is not None and method in codes and status not in codes[method]:
                codes[method].append(status)
        bye = [c for c in codes["BYE"] if c >= 200]
        results.append(
            CallResult(
                call_id,
                uri_user(invite.header("From")),
                sent.request_user if sent else uri_user(invite.header("To")),
                tuple(codes["INVITE"]),
                bye[0] if bye else None,
                tuple(msgs),
            )
        )
    return tuple(results)


@dataclass(frozen=True)
class UacResult:
    planned: int
    calls: tuple[CallResult, ...]
    exit_code: int
    messages: tuple[SipMessage, ...] = field(repr=False)
    log: str = field(repr=False)

    @property
    def successful(self) -> int:
        return sum(c.completed for c in self.calls)

    @property
    def failed(self) -> int:
        return self.planned - self.successful

    @property
    def codes(self) -> Counter[int]:
        """Final INVITE response codes, and how many calls got each."""
        return Counter(c.final_code for c in self.calls if c.final_code is not None)

    def by_caller(self, caller: str) -> CallResult:
        matches = [c for c in self.calls if c.caller == caller]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} calls from caller {caller!r}")
        return matches[0]


def hotline_address(settings: Settings) -> tuple[str, int]:
    """Where the carrier sends its INVITEs: Asterisk's SIP transport (UDP and TCP)."""
    host = "127.0.0.1" if settings.sip.bind in ("0.0.0.0", "::") else settings.sip.bind
    return host, settings.sip.port


def free_port(address: str, *, tcp_too: bool = False) -> int:
    """A UDP port on `address` that was free a moment ago (and free on TCP too if asked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((address, 0))
            port: int = udp.getsockname()[1]
            if not tcp_too:
                return port
            with socket.socket() as tcp:
                try:
                    tcp.bind((address, port))
                except OSError:
                    continue
                return port
    raise OSError(f"no free port on {address}")


def _bound(address: str, port: int, transport: Transport) -> bool:
    """Whether a socket is bound to address:port (Linux /proc/net/udp or tcp; looking, not
    binding, so the check cannot take the port from SIPp)."""
    local = f"{socket.inet_aton(address)[::-1].hex().upper()}:{port:04X}"
    table = Path("/proc/net") / transport
    return any(line.split()[1] == local for line in table.read_text().splitlines()[1:])


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise SippFailed("sipp is not installed (Debian package sip-tester)")
    return path


class SippProcess:
    """A SIPp child process with its files in `workdir`; killed on exit if still running."""

    def __init__(self, argv: list[str], workdir: Path, name: str, timeout_s: float) -> None:
        self.workdir = workdir
        self.name = name
        self.timeout_s = timeout_s
        self.message_file = workdir / f"{name}_messages.log"
        self.out_file = workdir / f"{name}.out"
        full = [
            sipp_binary(),
            *argv,
            *("-cp", str(free_port("127.0.0.1")), "-nostdin"),
            *("-timeout", f"{int(timeout_s)}s", "-timeout_error"),
            *("-trace_msg", "-message_file", str(self.message_file)),
            *("-trace_err", "-error_file", str(workdir / f"{name}_errors.log")),
            # SIPp asks for 50,000 sockets by default and stops if the open-file limit is lower.
            *("-max_socket", "1000"),
        ]
        self._out = self.out_file.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            full, cwd=workdir, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT
        )
        self.started = time.monotonic()

    def wait(self) -> int:
        """The exit code; SippFailed if SIPp outlives its own -timeout or stops on a fatal error."""
        try:
            code = self.proc.wait(max(1.0, self.timeout_s + _MARGIN_S - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.kill()
            raise SippFailed(f"{self.name}: SIPp still running after {self.timeout_s:.0f} s: {self.output()}") from None
        finally:
            self._out.close()
        # 255 and 254: SIPp's fatal error and failure to bind (its exit codes -1 and -2).
        if code in (254, 255):
            raise SippFailed(f"{self.name}: SIPp exit {code}: {self.output()}")
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()

    def output(self) -> str:
        text = self.out_file.read_text(encoding="utf-8", errors="replace") if self.out_file.exists() else ""
        return text[-3000:]

    def messages(self) -> list[SipMessage]:
        return read_messages(self.message_file)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()


@dataclass(frozen=True)
class UacPlan:
    """What the carrier's calls do: each waits `lead_s` after the answer, keys `dtmf`
    (ScriptedCaller notation, ivr/caller.py), stays `tail_s`, hangs up."""

    calls: tuple[CarrierCall, ...]
    dtmf: str = ""
    lead_s: float = 1.0
    tail_s: float = 4.0
    transport: Transport = "udp"
    source: str = CARRIER_ADDR
    rate_per_s: float = 10.0  # new calls per second
    concurrency: int | None = None  # at most this many at once (SIPp -l); None: all
    header: str = ""  # a header every INVITE carries, valued per call (CarrierCall.header_value)


class UacRun(SippProcess):
    """Calls from SIPp under way; `result()` waits for them."""

    def __init__(self, target: tuple[str, int], plan: UacPlan, workdir: Path, name: str = "uac") -> None:
        if not plan.calls:
            raise ValueError("no calls to place")
        workdir.mkdir(parents=True, exist_ok=True)
        self.plan = plan
        pcap = workdir / f"{name}_dtmf.pcap"
        play_ms = dtmf_pcap(pcap, plan.dtmf)
        csv = workdir / f"{name}_calls.csv"
        # SEQUENTIAL: call n takes line n (SIPp's -inf file format); field2 the header's value.
        lines = "".join(f"{c.caller};{c.called};{c.header_value};\n" for c in plan.calls)
        csv.write_text("SEQUENTIAL\n" + lines, encoding="utf-8")
        scenario = _with_header(UAC_SCENARIO, plan.header, workdir / f"{name}_scenario.xml")
        one_call_s = ANSWER_TIMEOUT_S + plan.lead_s + play_ms / 1000 + plan.tail_s + _BYE_TIMEOUT_S
        limit = plan.concurrency or len(plan.calls)
        waves = -(-len(plan.calls) // limit)
        timeout_s = len(plan.calls) / plan.rate_per_s + waves * one_call_s + _MARGIN_S
        argv = [
            f"{target[0]}:{target[1]}",
            *("-sf", str(scenario), "-inf", str(csv)),
            *("-key", "dtmf_pcap", str(pcap)),
            *("-set", "lead_ms", str(int(plan.lead_s * 1000))),
            *("-set", "talk_ms", str(play_ms + int(plan.tail_s * 1000))),
            *("-i", plan.source, "-mi", plan.source),
            *("-p", str(free_port(plan.source, tcp_too=plan.transport == "tcp"))),
            *("-t", _TRANSPORTS[plan.transport]),
            *("-m", str(len(plan.calls)), "-l", str(limit)),
            *("-r", f"{plan.rate_per_s:g}", "-rp", "1000"),
        ]
        super().__init__(argv, workdir, name, timeout_s)

    def result(self) -> UacResult:
        code = self.wait()
        messages = self.messages()
        return UacResult(len(self.plan.calls), _call_results(messages), code, tuple(messages), self.output())


def _with_header(scenario: Path, header: str, copy: Path) -> Path:
    """The scenario, or a copy of it whose INVITE carries `header: [field2]`."""
    if not header:
        return scenario
    marker = "      User-Agent: test-carrier\n"
    text = scenario.read_text(encoding="utf-8")
    assert text.count(marker) == 1, "the INVITE's User-Agent line moved: put the header elsewhere"
    copy.write_text(text.replace(marker, marker + f"      {header}: [field2]\n"), encoding="utf-8")
    return copy


def place_calls(target: tuple[str, int], plan: UacPlan, workdir: Path, name: str = "uac") -> UacResult:
    """Place the plan's calls from SIPp and wait until all have ended."""
    with UacRun(target, plan, workdir, name) as run:
        return run.result()


# --- the answering side -------------------------------------------------------------------

UasMode = Literal["answer", "answer_keys", "busy", "no_answer"]
_UAS_SCENARIOS: Final = {
    "answer": "uas_answer.xml",
    "answer_keys": "uas_answer_keys.xml",
    "busy": "uas_busy.xml",
    "no_answer": "uas_no_answer.xml",
}


@dataclass(frozen=True)
class Invite:
    """An INVITE the answering side got."""

    call_id: str
    request_user: str | None  # the number dialled out
    from_user: str | None  # the caller id the hotline presented
    to_user: str | None
    message: SipMessage = field(repr=False)


class CarrierUas(SippProcess):
    """The carrier's side of calls out: SIPp listening on `address:port`, answering every
    INVITE (`answer`; then waits for the hotline's BYE, or hangs up after `hold_s`), or
    answering and keying `keys` `lead_s` after the answer, then waiting for the hotline's
    BYE (`answer_keys`: a resident answering a notice call), or busy (486), or ringing until
    cancelled (`no_answer`). Use as a context manager.

    Asterisk qualifies the trunk's contact (OPTIONS every qualify_frequency) and dials no
    contact it last found unreachable, as it was before this side started: given
    `asterisk`, the trunk is qualified again once SIPp listens (see `qualify_trunk`).
    """

    def __init__(
        self,
        workdir: Path,
        port: int,
        *,
        mode: UasMode = "answer",
        address: str = CARRIER_ADDR,
        transport: Transport = "udp",
        hold_s: float = 0.0,
        lifetime_s: float = 300.0,
        name: str = "uas",
        asterisk: LocalAsterisk | None = None,
        trunk: str = "carrier",
        keys: str = "",
        lead_s: float = 0.0,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            *("-sf", str(SCENARIOS / _UAS_SCENARIOS[mode])),
            *("-i", address, "-mi", address, "-p", str(port)),
            *("-t", _TRANSPORTS[transport]),
            "-aa",  # 200 to out-of-call OPTIONS (Asterisk qualifies the trunk's contact)
        ]
        if mode != "answer_keys":
            argv += ["-set", "hold_ms", str(int(hold_s * 1000))]
        else:
            pcap = workdir / f"{name}_keys.pcap"
            dtmf_pcap(pcap, keys or "w")  # no keys: half a second of silence
            argv += [*("-key", "dtmf_pcap", str(pcap)), *("-set", "lead_ms", str(int(lead_s * 1000)))]
        super().__init__(argv, workdir, name, lifetime_s)
        self._wait_listening(address, port, transport)
        if asterisk is not None:
            try:
                qualify_trunk(asterisk, trunk)
            except BaseException:
                self.kill()
                raise

    def _wait_listening(self, address: str, port: int, transport: Transport) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SippFailed(f"{self.name}: SIPp exited at start: {self.output()}")
            if _bound(address, port, transport):
                return
            time.sleep(0.05)
        self.kill()
        raise SippFailed(f"{self.name}: SIPp did not bind {address}:{port}: {self.output()}")

    def invites(self) -> list[Invite]:
        """The INVITEs received so far, one per call (retransmissions not repeated)."""
        seen: dict[str, Invite] = {}
        for m in self.messages():
            if m.direction == "received" and m.method == "INVITE" and m.call_id and m.call_id not in seen:
                seen[m.call_id] = Invite(
                    m.call_id, m.request_user, uri_user(m.header("From")), uri_user(m.header("To")), m
                )
        return list(seen.values())

    def wait_invites(self, count: int, timeout_s: float) -> list[Invite]:
        """At least `count` INVITEs, or TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.invites()
            if len(got) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if len(got) < count:
            raise TimeoutError(f"{self.name}: {len(got)} of {count} INVITEs in {timeout_s:.0f} s")
        return got


def qualify_trunk(
    asterisk: LocalAsterisk, trunk: str = "carrier", timeout_s: float = 10.0, want: str = "Avail"
) -> None:
    """Qualify the trunk's contact now (`pjsip qualify`) and wait until Asterisk finds it
    reachable (`want` "Unavail": unreachable); TimeoutError if it does not within `timeout_s`."""
    endpoint = TRUNK_PREFIX + trunk
    deadline = time.monotonic() + timeout_s
    asked = False
    while time.monotonic() < deadline:
        try:  # `asterisk -rx` now and then finds no console socket on a loaded machine
            if not asked:
                asterisk.cli(f"pjsip qualify {endpoint}")
                asked = True
            rows = [line.split() for line in asterisk.cli("pjsip show contacts").splitlines()]
        except AsteriskCommandFailed:
            rows = []
        if any(len(r) > 3 and r[1].startswith(endpoint + "/") and r[3] == want for r in rows):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{endpoint}'s contact not {want} after {timeout_s:.0f} s")
