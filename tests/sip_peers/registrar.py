"""SIPp as a phone registering and as a sender of a SIP MESSAGE (scenarios/register.xml,
scenarios/message.xml); the password guesser is guesser.py.

What a registration got is read from SIPp's message log, as in sipp.py: the response to
the REGISTER that answered the challenge (200, 401, 403), or none (the address is banned
and its packets are dropped).

    result = register(hotline_address(settings), "1002", "its-password", tmp_path, source="127.0.0.7")
    assert result.answers == Counter({200: 1})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tests.sip_peers.sipp import SCENARIOS, SipMessage, SippProcess, free_port

REGISTER_SCENARIO: Final = SCENARIOS / "register.xml"
MESSAGE_SCENARIO: Final = SCENARIOS / "message.xml"
_WAIT_S: Final = 2.0  # the scenarios' wait for each response
_MARGIN_S: Final = 15.0


@dataclass(frozen=True)
class Attempt:
    """One registration: whether Asterisk challenged it, and its answer to the credentials."""

    call_id: str
    challenged: bool
    answer: int | None  # final response to the REGISTER with credentials; None: none came
    messages: tuple[SipMessage, ...] = field(repr=False)


@dataclass(frozen=True)
class RegisterResult:
    attempts: tuple[Attempt, ...]
    planned: int
    log: str = field(repr=False)

    def count(self, code: int | None) -> int:
        return sum(a.answer == code for a in self.attempts) + (self.planned - len(self.attempts) if code is None else 0)

    @property
    def answers(self) -> Counter[int | None]:
        counted: Counter[int | None] = Counter(a.answer for a in self.attempts)
        counted[None] += self.planned - len(self.attempts)
        return counted


def _cseq_number(message: SipMessage) -> int | None:
    cseq = message.header("CSeq")
    return int(cseq.split()[0]) if cseq and cseq.split()[0].isdigit() else None


def _attempts(messages: Sequence[SipMessage]) -> tuple[Attempt, ...]:
    by_id: dict[str, list[SipMessage]] = {}
    for m in messages:
        if m.call_id:
            by_id.setdefault(m.call_id, []).append(m)
    out = []
    for call_id, msgs in by_id.items():
        finals = [(_cseq_number(m), m.status) for m in msgs if m.direction == "received" and (m.status or 0) >= 200]
        challenged = (1, 401) in finals
        answer = next((status for number, status in finals if number == 2), None)
        out.append(Attempt(call_id, challenged, answer, tuple(msgs)))
    return tuple(out)


def _csv(workdir: Path, name: str, rows: Sequence[tuple[str, str]]) -> Path:
    for row in rows:
        if any(";" in value or "\n" in value for value in row):
            raise ValueError(f"{row!r}: SIPp's -inf fields cannot hold ';' or a line break")
    csv = workdir / f"{name}.csv"
    # SEQUENTIAL: attempt n takes line n (SIPp's -inf file format).
    csv.write_text("SEQUENTIAL\n" + "".join(f"{a};{b};\n" for a, b in rows), encoding="ascii")
    return csv


def register(
    target: tuple[str, int],
    user: str,
    password: str,
    workdir: Path,
    *,
    source: str,
    expires: int = 60,
    port: int | None = None,
    everywhere: bool = False,
    name: str = "register",
) -> RegisterResult:
    """One REGISTER as `user`, answering the challenge with `password`, from `source` over
    UDP; wait for its answer. The Contact is `source:port` (a free port if None): to
    un-register (`expires` 0), give the port that registered, or `everywhere` (Contact: *)."""
    workdir.mkdir(parents=True, exist_ok=True)
    csv = _csv(workdir, name, [(user, "")])
    port = port or free_port(source)
    if everywhere and expires != 0:
        raise ValueError("Contact: * goes with Expires: 0 only (RFC 3261 §10.2.2)")
    contact = "*" if everywhere else f"<sip:{user}@{source}:{port}>"
    argv = [
        f"{target[0]}:{target[1]}",
        *("-sf", str(REGISTER_SCENARIO), "-inf", str(csv)),
        *("-au", user, "-ap", password),
        *("-set", "expires", str(expires), "-set", "contact", contact),
        *("-i", source, "-p", str(port), "-t", "u1", "-m", "1"),
    ]
    with SippProcess(argv, workdir, name, 4 * _WAIT_S + _MARGIN_S) as run:
        run.wait()
        return RegisterResult(_attempts(run.messages()), 1, run.output())


def send_message(target: tuple[str, int], sender: str, to: str, workdir: Path, *, source: str) -> int | None:
    """A SIP MESSAGE from `sender` to `to`, sent from `source`; Asterisk's final answer."""
    workdir.mkdir(parents=True, exist_ok=True)
    csv = _csv(workdir, "message", [(sender, to)])
    argv = [
        f"{target[0]}:{target[1]}",
        *("-sf", str(MESSAGE_SCENARIO), "-inf", str(csv)),
        *("-i", source, "-p", str(free_port(source)), "-t", "u1", "-m", "1"),
    ]
    with SippProcess(argv, workdir, "message", 5 * _WAIT_S + _MARGIN_S) as run:
        run.wait()
        finals = [m.status for m in run.messages() if m.direction == "received" and (m.status or 0) >= 200]
    return finals[0] if finals else None
