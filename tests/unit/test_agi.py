"""AGI parsing against what Asterisk 22.10 really sent (shared fixture, copied into tests/fixtures)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ivr.agi import MalformedEnvironment, parse_environment, parse_reply
from ivr.errors import AgiError

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "fastagi-caller-hangs-up.txt"


def transcript() -> list[tuple[str, bytes]]:
    lines = []
    for raw in FIXTURE.read_text(encoding="utf-8").splitlines():
        direction, _, literal = raw.partition(" ")
        lines.append((direction, ast.literal_eval(literal)))
    return lines


def test_environment_from_real_asterisk() -> None:
    block = b"".join(data for d, data in transcript() if d == "<")
    env = parse_environment(block[: block.index(b"\n\n") + 2])
    assert env.network_script == "main"
    assert env.uniqueid == "1795835831.24"
    assert env.callerid == "13812345678"
    assert env.raw["accountcode"] == ""


def test_replies_from_real_asterisk() -> None:
    replies = [parse_reply(data.decode().strip()) for d, data in transcript() if d == "<" and data[:3].isdigit()]
    assert [r.code for r in replies] == [200, 200, 511, 511]
    assert replies[1].failed


@pytest.mark.parametrize(
    "block",
    [b"agi_network_script ivr\n\n", b"agi_uniqueid: 1\n\n", b"hello: world\n\n", b"\xff\xfe\n\n"],
)
def test_malformed_environment(block: bytes) -> None:
    with pytest.raises(MalformedEnvironment):
        parse_environment(block)


@pytest.mark.parametrize("line", ["", "HELLO", "200 banana", "99 result=1"])
def test_malformed_reply(line: str) -> None:
    with pytest.raises(AgiError):
        parse_reply(line)
