"""A load-generating AGI peer: answers a FastAGI server as Asterisk 22 does.

`AgiPeer` is the protocol without I/O (bytes in, reply bytes out); `PeerProtocol` is
the thin asyncio adapter that timestamps each command. Replies follow the AGI command
docs and what Asterisk 22 sends: GET DATA gets the caller's next entry, STREAM FILE
`200 result=0 endpos=N`, WAIT FOR DIGIT `200 result=35` (the caller's `#` after a full
entry), everything else (SET VARIABLE, CHANNEL STATUS, ANSWER) `200 result=1`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

HANGUP_COMMAND = 'SET VARIABLE HOTLINE_ACTION "hangup"'
CALL_ID_PREFIX = "SET VARIABLE HOTLINE_CALL_ID "
MAX_COMMANDS = 200  # a balance query takes ~20; more means the server is looping
MAX_LINE = 4096

HASH_KEY = b"200 result=35\n"  # WAIT FOR DIGIT: the caller pressed # (ASCII 35)


def environment(script: str, uniqueid: str, callerid: str) -> bytes:
    """The block Asterisk 22 sends first (res_agi `setup_env`), ended by a blank line."""
    lines = {
        "network": "yes",
        "network_script": script,
        "request": f"agi://127.0.0.1/{script}",
        "channel": f"Local/s@hotline-caller-script-{uniqueid};1",
        "language": "en",
        "type": "Local",
        "uniqueid": uniqueid,
        "version": "22.10.1",
        "callerid": callerid,
        "calleridname": callerid,
        "callingpres": "0",
        "dnid": "unknown",
        "rdnis": "unknown",
        "context": "hotline-12333",
        "extension": "12333",
        "priority": "3",
        "enhanced": "0.0",
        "accountcode": "",
        "threadid": "140702876665536",
    }
    return "".join(f"agi_{k}: {v}\n" for k, v in lines.items()).encode() + b"\n"


class PeerFailure(Exception):
    """The server sent something a balance-query call never should."""


@dataclass
class AgiPeer:
    """One caller: keys `entries` in order, one per GET DATA (a timeout once they run out)."""

    entries: list[str]
    commands: list[str] = field(default_factory=list)
    _buffer: bytes = b""

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        """Bytes from the server to (command, reply) pairs, in order."""
        self._buffer += data
        out = []
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            command = raw.decode("utf-8", "replace").rstrip("\r")
            self.commands.append(command)
            if len(self.commands) > MAX_COMMANDS:
                raise PeerFailure(f"more than {MAX_COMMANDS} commands")
            out.append((command, self.reply(command)))
        if len(self._buffer) > MAX_LINE:
            raise PeerFailure("command line too long")
        return out

    def reply(self, command: str) -> bytes:
        verb = command.split(" ", 2)[:2]
        if verb == ["GET", "DATA"]:
            if not self.entries:
                return b"200 result= (timeout)\n"
            return f"200 result={self.entries.pop(0)}\n".encode()
        if verb == ["STREAM", "FILE"]:
            return b"200 result=0 endpos=8000\n"
        if verb == ["WAIT", "FOR"]:
            return HASH_KEY  # the `#` that ends a full entry, as the prompt asks
        return b"200 result=1\n"

    @property
    def call_id(self) -> str | None:
        for command in self.commands:
            if command.startswith(CALL_ID_PREFIX):
                return command[len(CALL_ID_PREFIX) :].strip('"')
        return None


@dataclass
class CallOutcome:
    commands: list[str]
    setup_s: float | None  # environment sent -> first command
    turnarounds_s: list[float]  # each reply sent -> next command
    closed_by_server: bool
    error: str | None
    call_id: str | None

    @property
    def ended_with_hangup(self) -> bool:
        return bool(self.commands) and self.commands[-1] == HANGUP_COMMAND


class PeerProtocol(asyncio.Protocol):
    """Sends the environment, answers each command at once in `data_received`.

    Turnaround: from our write of a reply to the arrival of the server's next command,
    i.e. the server's time per command (plus loopback and the peer's own event-loop
    delay, which the floor measured in the same run shares). Setup: from our write of the
    environment to the first command (accept, fork or session start, first store write).
    """

    def __init__(self, peer: AgiPeer, env: bytes, done: asyncio.Future[CallOutcome], think_s: float = 0.0) -> None:
        self.peer = peer
        self.think_s = think_s  # a caller's time to key an entry, before each GET DATA reply
        self.env = env
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.setup: float | None = None
        self.turnarounds: list[float] = []
        self.error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.env)
        self.sent_at = time.perf_counter()

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        assert self.transport is not None
        try:
            pairs = self.peer.feed(data)
        except PeerFailure as exc:
            self.error = str(exc)
            self.transport.abort()
            return
        for command, reply in pairs:
            if self.setup is None:
                self.setup = now - self.sent_at
            else:
                self.turnarounds.append(now - self.sent_at)
            if self.think_s and command.startswith("GET DATA"):
                # Callers are not metronomes: half to one and a half times the mean.
                delay = self.think_s * (0.5 + random.random())
                asyncio.get_running_loop().call_later(delay, self._send, reply)
            else:
                self._send(reply)
            now = time.perf_counter()

    def _send(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)
            self.sent_at = time.perf_counter()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = f"connection lost: {exc}"
        if not self.done.done():
            self.done.set_result(
                CallOutcome(
                    commands=self.peer.commands,
                    setup_s=self.setup,
                    turnarounds_s=self.turnarounds,
                    closed_by_server=exc is None and self.error is None,
                    error=self.error,
                    call_id=self.peer.call_id,
                )
            )


async def run_call(
    port: int, entries: list[str], uniqueid: str, callerid: str, limit_s: float, think_s: float = 0.0
) -> CallOutcome:
    """One complete call against 127.0.0.1:port; never longer than `limit_s`."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[CallOutcome] = loop.create_future()
    env = environment("ivr", uniqueid, callerid)
    peer = AgiPeer(list(entries))
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(limit_s):
            transport, _ = await loop.create_connection(
                lambda: PeerProtocol(peer, env, done, think_s), "127.0.0.1", port
            )
            return await done
    except TimeoutError:
        return CallOutcome(peer.commands, None, [], False, f"no end within {limit_s:g} s", peer.call_id)
    except OSError as exc:
        return CallOutcome(peer.commands, None, [], False, f"connect: {exc}", None)
    finally:
        if transport is not None and not transport.is_closing():
            transport.abort()
