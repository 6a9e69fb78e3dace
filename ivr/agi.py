"""The AGI wire protocol as pure functions: environment block and reply lines to typed values.

Replies follow Asterisk's AGI documentation and what Asterisk 22.10 sent here
(shared/fixtures/asterisk22/fastagi-caller-hangs-up.txt):

>>> parse_reply("200 result=1234 (timeout)")
AgiReply(code=200, result='1234', data='timeout', endpos=None)
>>> parse_reply("511 Command Not Permitted on a dead channel or intercept routine").code
511
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ivr.errors import AgiError

MAX_ENV_BYTES = 16 * 1024
HANGUP_LINE = "HANGUP"
_REPLY = re.compile(r"^(?P<code>\d{3})(?P<sep>[ -])(?P<rest>.*)$")
_RESULT = re.compile(r"^result=(?P<result>\S*)(?: \((?P<data>[^)]*)\))?(?: endpos=(?P<endpos>-?\d+))?")


class MalformedEnvironment(AgiError):
    """The AGI environment block is not `agi_name: value` lines ended by a blank line."""


@dataclass(frozen=True)
class AgiEnvironment:
    network_script: str
    uniqueid: str
    channel: str
    callerid: str
    language: str
    extension: str
    context: str
    args: tuple[str, ...] = ()
    raw: dict[str, str] = field(default_factory=dict)


def parse_environment(block: bytes) -> AgiEnvironment:
    """Parse the block Asterisk sends first, up to and including the blank line."""
    if len(block) > MAX_ENV_BYTES:
        raise MalformedEnvironment(f"environment larger than {MAX_ENV_BYTES} bytes")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEnvironment("environment is not UTF-8") from exc
    values: dict[str, str] = {}
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        name, sep, value = line.partition(": ")
        if not sep and line.endswith(":"):
            name, value = line[:-1], ""
        elif not sep:
            raise MalformedEnvironment(f"not a variable line: {line[:60]!r}")
        if not name.startswith("agi_"):
            raise MalformedEnvironment(f"unexpected variable {name[:40]!r}")
        values[name[4:]] = value
    for required in ("network_script", "uniqueid", "channel"):
        if not values.get(required):
            raise MalformedEnvironment(f"agi_{required} missing")
    args = tuple(v for k, v in sorted(values.items()) if k.startswith("arg_"))
    return AgiEnvironment(
        network_script=values["network_script"],
        uniqueid=values["uniqueid"],
        channel=values["channel"],
        callerid=values.get("callerid", "unknown"),
        language=values.get("language", ""),
        extension=values.get("extension", ""),
        context=values.get("context", ""),
        args=args,
        raw=values,
    )


@dataclass(frozen=True)
class AgiReply:
    code: int
    result: str
    data: str = ""
    endpos: int | None = None

    @property
    def failed(self) -> bool:
        """`result=-1`: the channel failed or hung up during the command."""
        return self.result == "-1"


def parse_reply(line: str) -> AgiReply:
    """One reply line (without its newline) to an AgiReply; raises AgiError if malformed."""
    m = _REPLY.match(line.strip())
    if not m:
        raise AgiError(f"malformed AGI reply {line[:80]!r}")
    code, rest = int(m["code"]), m["rest"]
    if code != 200:
        return AgiReply(code, "", rest)
    r = _RESULT.match(rest)
    if not r:
        raise AgiError(f"malformed AGI 200 reply {line[:80]!r}")
    endpos = int(r["endpos"]) if r["endpos"] is not None else None
    return AgiReply(200, r["result"], r["data"] or "", endpos)


# What GET DATA and STREAM FILE may return as keys: DTMF digits (RFC 4733 events 0-15).
DTMF_KEYS = frozenset("0123456789*#ABCD")


def interrupting_key(reply: AgiReply, escape_digits: str) -> str | None:
    """The key that interrupted a STREAM FILE, or None if it played through.

    Asterisk answers `result=0` when no key was pressed, else the key's ASCII code (AGI
    command docs, STREAM FILE); only one of `escape_digits` may interrupt. Anything else
    is not a reply Asterisk sends, and the session cannot trust the channel's state.

    >>> interrupting_key(AgiReply(200, "51", "", 1200), "0123456789*#")
    '3'
    >>> interrupting_key(AgiReply(200, "0", "", 8000), "")
    """
    if reply.result in ("", "0"):
        return None
    code = int(reply.result) if reply.result.isdigit() and len(reply.result) <= 3 else -1
    key = chr(code) if 0 < code < 128 else ""
    if not key or key not in escape_digits:
        raise AgiError(f"STREAM FILE answered result={reply.result[:20]!r}, not one of the keys {escape_digits!r}")
    return key


def entered_digits(reply: AgiReply, max_digits: int) -> str:
    """GET DATA's digits; raises AgiError if Asterisk answered with anything else."""
    if len(reply.result) > max_digits or not set(reply.result) <= DTMF_KEYS:
        raise AgiError(f"GET DATA answered result={reply.result[:20]!r} for at most {max_digits} keys")
    return reply.result


def is_usage_start(line: str) -> bool:
    """`520-Invalid command syntax.  Proper usage follows:` opens a multi-line usage block."""
    return line.startswith("520-")


def quote(arg: str) -> str:
    """Quote an AGI command argument (spaces and quotes escaped as Asterisk's parser expects)."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
