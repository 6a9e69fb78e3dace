"""A scripted AGI peer: connects to the FastAGI server as Asterisk does and answers commands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.agi_peer import HASH_KEY
from bench.agi_peer import environment as bench_environment

HANGUP_511 = b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n"
DEAD_511 = b"511 Command Not Permitted on a dead channel or intercept routine\n"


def environment(script: str = "ivr", uniqueid: str = "1795835831.24", callerid: str = "13812345678") -> bytes:
    """The environment block Asterisk 22 sends first (the benchmark's peer builds the same)."""
    return bench_environment(script, uniqueid, callerid)


@dataclass
class Caller:
    """Answers like Asterisk with a caller who keys `entries`, one per GET DATA.

    `fault(index, command)` may return bytes to send instead of the normal reply, or
    b"" to close the socket.
    """

    entries: list[str | None]
    fault: Callable[[int, str], bytes | None] = lambda i, c: None
    commands: list[str] = field(default_factory=list)
    hung_up: bool = False
    # WAIT FOR DIGIT after a full entry: these replies in turn, then `#` as the prompt asks.
    after_full: list[str] = field(default_factory=list)

    def reply(self, command: str) -> bytes:
        index = len(self.commands)
        self.commands.append(command)
        injected = self.fault(index, command)
        if injected is not None:
            if injected.startswith((b"HANGUP", b"200 result=-1")):
                self.hung_up = True
            return injected
        if self.hung_up:
            return DEAD_511
        verb = command.split(" ", 2)[:2]
        if verb == ["GET", "DATA"]:
            entry = self.entries.pop(0) if self.entries else None
            return b"200 result= (timeout)\n" if entry is None else f"200 result={entry}\n".encode()
        if verb == ["STREAM", "FILE"]:
            return b"200 result=0 endpos=8000\n"
        if verb == ["CHANNEL", "STATUS"]:
            return b"200 result=6\n"
        if verb == ["WAIT", "FOR"]:
            return self.after_full.pop(0).encode() if self.after_full else HASH_KEY
        return b"200 result=1\n"


async def run_peer(port: int, caller: Caller, env: bytes | None = None, limit_s: float = 10.0) -> list[str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(environment() if env is None else env)
    await writer.drain()
    try:
        async with asyncio.timeout(limit_s):
            while True:
                line = await reader.readline()
                if not line:
                    break
                answer = caller.reply(line.decode().rstrip("\n"))
                if answer == b"":
                    break
                writer.write(answer)
                await writer.drain()
    except ConnectionError:
        pass  # the server closed on us: that is what some tests expect
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return caller.commands
