"""FastAGI transport: panoramisk's Application routes sessions by `agi_network_script`;
our Request reads replies the way Asterisk 22 really sends them.

Where panoramisk's own handler falls short for a public hotline, we override it: only
configured peers may connect, the environment block is bounded in size and time, an
inline `HANGUP` line is consumed before the real reply (panoramisk returns it as the
result and leaves the `200`/`511` line unread), every command has a timeout, a caller
who hangs up ends the session without a stack trace, a reply Asterisk would never send
(an over-long line, a STREAM FILE key that may not interrupt) ends it as failed, and
connections over `agi.max_sessions` are closed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from panoramisk.fast_agi import Application, Request

from core import metrics
from ivr import dialplan
from ivr.agi import (
    HANGUP_LINE,
    MAX_ENV_BYTES,
    AgiEnvironment,
    AgiReply,
    MalformedEnvironment,
    entered_digits,
    interrupting_key,
    is_usage_start,
    parse_environment,
    parse_reply,
    quote,
)
from ivr.errors import AgiError, AsteriskGone, CallerHungUp
from ivr.prompts import SILENCE_ID

log = logging.getLogger(__name__)
ALL_KEYS = "0123456789*#"
RECORD_SLACK_S = 30  # beyond a recording's length limit: the beep, and Asterisk closing the file
# After an entry that filled GET DATA's count (18 keys of an ID number), how long the `#`
# the prompt asked for may still come. GET DATA returns at the count, before that `#`,
# which would otherwise interrupt the next prompt and read as an empty entry.
TERMINATOR_WAIT_MS = 1000
MAX_LINE_BYTES = MAX_ENV_BYTES  # the StreamReader's limit: one environment, or one reply line


class AgiChannel(Request):  # type: ignore[misc]  # panoramisk ships no type hints
    """One FastAGI connection: send a command, get a typed reply or CallerHungUp."""

    def __init__(
        self,
        app: Application,
        env: AgiEnvironment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        command_timeout: float,
    ) -> None:
        super().__init__(app, env.raw, reader, writer)
        self.env = env
        self.command_timeout = command_timeout
        self.hung_up = False
        # When the last reply (or the environment) was read: the next command's turnaround.
        self._replied_at = time.monotonic()

    async def _line(self, limit_s: float | None = None) -> str:
        limit = limit_s or self.command_timeout
        try:
            async with asyncio.timeout(limit):  # no task per line, unlike wait_for
                raw = await self.reader.readline()
        except TimeoutError:
            raise AgiError(f"no reply from Asterisk within {limit:.0f} s") from None
        except (ConnectionError, asyncio.IncompleteReadError):
            raise self._gone("connection lost") from None
        except ValueError:
            # StreamReader.readline past the reader's limit (asyncio streams docs): not a
            # reply Asterisk sends. End the session; the dialplan queues the caller.
            raise AgiError(f"reply line longer than {MAX_LINE_BYTES} bytes") from None
        if not raw:
            raise self._gone("connection closed by Asterisk")
        line: str = raw.decode("utf-8", "replace")
        return line.rstrip("\r\n")

    def _gone(self, why: str) -> CallerHungUp:
        """A closed connection after Asterisk said HANGUP is the caller's hang-up; before it,
        Asterisk itself went away (a node killed) and the records say so."""
        return CallerHungUp(why) if self.hung_up else AsteriskGone(why)

    async def command(self, command: str, limit_s: float | None = None) -> AgiReply:
        """Send one command and read its reply, within `limit_s` (default agi.command_timeout_s)."""
        if self.hung_up:
            raise CallerHungUp("caller already hung up")
        metrics.agi_turnaround(command, time.monotonic() - self._replied_at)
        try:
            self.writer.write(command.encode("utf-8") + b"\n")
            await self.writer.drain()
        except ConnectionError:
            raise CallerHungUp("connection lost while sending") from None
        while True:
            line = await self._line(limit_s)
            if line == HANGUP_LINE:
                # Asterisk announces the hang-up inline; the command's own reply follows.
                self.hung_up = True
                continue
            if is_usage_start(line):
                while not (await self._line()).startswith("520 "):
                    pass
                raise AgiError(f"520 usage error for {command.split(' ', 1)[0]}")
            reply = parse_reply(line)
            if reply.code == 100:  # "100 Trying..." precedes the real reply
                continue
            if reply.code == 511:
                self.hung_up = True
                raise CallerHungUp("511 dead channel")
            if reply.code != 200:
                raise AgiError(f"{reply.code} {reply.data} for {command.split(' ', 1)[0]}")
            if self.hung_up:
                raise CallerHungUp("hung up during command")
            self._replied_at = time.monotonic()
            return reply

    async def send_command(self, command: str) -> dict[str, str]:
        """panoramisk's API, kept working for code written against it."""
        reply = await self.command(command)
        return {"status_code": str(reply.code), "result": reply.result, "data": reply.data}

    async def probe(self) -> None:
        """After `result=-1`: raise CallerHungUp if the channel is gone, else return."""
        await self.command("CHANNEL STATUS")


def sound(lang: str, prompt_id: str) -> str:
    return f"{dialplan.SOUNDS_SUBDIR}/{lang}/{prompt_id}"


class AgiVoice:
    """The session's Voice over an AgiChannel."""

    def __init__(self, channel: AgiChannel) -> None:
        self.ch = channel
        # A key pressed just after a full entry (the next entry begun): the next collect's
        # first key. Any other command in between drops it, as a key during a prompt that
        # nothing interrupts is dropped.
        self.carried = ""

    async def answer(self) -> None:
        reply = await self.ch.command("ANSWER")
        if reply.failed:
            raise CallerHungUp("answer failed")

    async def collect(self, prompts: Sequence[str], lang: str, max_digits: int, timeout_ms: int) -> str | None:
        first, self.carried = self.carried, ""
        for pid in prompts[:-1] if not first else ():
            reply = await self.ch.command(f"STREAM FILE {sound(lang, pid)} {quote(ALL_KEYS)}")
            if reply.failed:
                await self.ch.probe()
                log.warning("channel %s: could not play %s", self.ch.env.channel, sound(lang, pid))
            else:
                key = interrupting_key(reply, ALL_KEYS)
                if key is not None:
                    first = key
                    break
        if first == "#":
            return ""
        if first and max_digits == 1:
            return first
        prompt = sound(lang, prompts[-1] if not first else SILENCE_ID)
        want = max_digits - len(first)
        reply = await self.ch.command(f"GET DATA {prompt} {timeout_ms} {want}")
        if reply.failed:
            # result=-1: hung up, or the prompt file is missing; the probe tells which.
            await self.ch.probe()
            log.warning("channel %s: GET DATA failed on %s", self.ch.env.channel, prompt)
            return first or None
        entered = entered_digits(reply, want)
        digits = first + entered
        if not digits and reply.data == "timeout":
            return None
        if max_digits > 1 and len(entered) == want and reply.data != "timeout":
            await self._after_full_entry()
        return digits

    async def _after_full_entry(self) -> None:
        """Take the `#` that ends a full entry; keep another key for the next entry."""
        reply = await self.ch.command(f"WAIT FOR DIGIT {TERMINATOR_WAIT_MS}")
        if reply.failed:
            await self.ch.probe()
            return
        key = interrupting_key(reply, ALL_KEYS)
        if key is not None and key != "#":
            self.carried = key

    async def play(self, prompts: Sequence[str], lang: str) -> None:
        self.carried = ""
        for pid in prompts:
            reply = await self.ch.command(f"STREAM FILE {sound(lang, pid)} {quote('')}")
            if reply.failed:
                await self.ch.probe()
                log.warning("channel %s: could not play %s", self.ch.env.channel, sound(lang, pid))
            else:
                interrupting_key(reply, "")  # no key may interrupt: any other result is bad

    async def record(self, path: str, max_s: int, silence_s: int) -> str:
        """Record the caller into `path` (as Asterisk names it, no extension) after a beep,
        until `#`, `max_s` or `silence_s` of silence; how it ended: dtmf | timeout | failed.

        RECORD FILE <file> <format> <escape digits> <timeout ms> BEEP s=<silence> (res_agi
        docs; the source closes the file before it replies, so the take is complete when
        the reply arrives, also after a hang-up). A hang-up raises CallerHungUp as for any
        command, whether Asterisk announced it inline or answered `result=-1 (hangup)`.
        """
        self.carried = ""
        command = f"RECORD FILE {quote(path)} wav # {max_s * 1000} BEEP s={silence_s}"
        # The recording may outlast agi.command_timeout_s: its own limit, and the beep, bound it.
        reply = await self.ch.command(command, limit_s=max(self.ch.command_timeout, max_s + RECORD_SLACK_S))
        if reply.failed:
            if reply.data == "hangup":
                raise CallerHungUp("hung up while recording")
            await self.ch.probe()
            # writefile: the file could not be opened (directory missing, not writable, disk
            # full); randomerror: the beep could not be played.
            log.error("channel %s: RECORD FILE failed (%s) for %s", self.ch.env.channel, reply.data, path)
            return "failed"
        return "dtmf" if reply.data == "dtmf" else "timeout"

    async def play_file(self, path: str) -> None:
        """Play a file outside the prompts (a caller's own recording); no key interrupts."""
        self.carried = ""
        reply = await self.ch.command(f"STREAM FILE {quote(path)} {quote('')}")
        if reply.failed:
            await self.ch.probe()
            log.warning("channel %s: could not play %s", self.ch.env.channel, path)

    async def _set(self, name: str, value: str) -> None:
        await self.ch.command(f"SET VARIABLE {name} {quote(value)}")

    async def transfer(self, queue: str, call_id: str, max_penalty: int | None = None) -> None:
        await self._set(dialplan.VAR_CALL_ID, call_id)
        await self._set(dialplan.VAR_QUEUE, queue)
        if max_penalty is not None:  # a skill queue: its skilled agents first (ivr/skills.py)
            await self._set("QUEUE_MAX_PENALTY", str(max_penalty))
        await self._set(dialplan.VAR_ACTION, dialplan.ACTION_QUEUE)

    async def finish(self, call_id: str) -> None:
        await self._set(dialplan.VAR_CALL_ID, call_id)
        await self._set(dialplan.VAR_ACTION, dialplan.ACTION_HANGUP)


Route = Callable[[AgiChannel], Awaitable[None]]


class FastAgiServer(Application):  # type: ignore[misc]
    """panoramisk's Application with a hardened connection handler."""

    def __init__(
        self, allowed_peers: Sequence[str], header_timeout: float, command_timeout: float, max_sessions: int = 1000
    ) -> None:
        super().__init__()
        self.allowed = [ipaddress.ip_network(p, strict=False) for p in allowed_peers]
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_sessions = max_sessions
        self.refused = 0  # connections refused in the current burst over max_sessions
        self.sessions: set[asyncio.Task[None]] = set()

    def _over_cap(self) -> bool:
        """Over `agi.max_sessions`: refuse at once, before reading the environment, so a flood
        costs an accept and a close; the dialplan then apologises and queues the caller.
        Logged once when a burst starts and once when it ends, not per call."""
        if len(self.sessions) >= self.max_sessions:
            self.refused += 1
            if self.refused == 1:
                log.warning(
                    "FastAGI: %d sessions open (agi.max_sessions); refusing new calls until one ends "
                    "(the dialplan apologises and queues them)",
                    len(self.sessions),
                )
            return True
        if self.refused:
            log.warning("FastAGI: accepting calls again; %d refused over agi.max_sessions", self.refused)
            self.refused = 0
        return False

    def allowed_peer(self, host: str) -> bool:
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self.allowed)

    async def _read_environment(self, reader: asyncio.StreamReader) -> AgiEnvironment:
        try:
            block = await asyncio.wait_for(reader.readuntil(b"\n\n"), self.header_timeout)
        except TimeoutError:
            raise MalformedEnvironment(f"no complete environment within {self.header_timeout:.0f} s") from None
        except asyncio.IncompleteReadError as exc:
            raise MalformedEnvironment(f"connection closed after {len(exc.partial)} bytes of environment") from None
        except asyncio.LimitOverrunError:
            raise MalformedEnvironment(f"environment larger than {MAX_ENV_BYTES} bytes") from None
        return parse_environment(block)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        task = asyncio.current_task()
        try:
            if not self.allowed_peer(peer[0]):
                log.warning("FastAGI: refused connection from %s (not in agi.allowed_peers)", peer[0])
                return
            if self._over_cap():
                return
            if task is not None:
                self.sessions.add(task)  # a session: counted, and awaited at shutdown
            try:
                env = await self._read_environment(reader)
            except MalformedEnvironment as exc:
                log.warning("FastAGI: bad request from %s: %s", peer[0], exc)
                return
            route = self._route.get(env.network_script)
            if route is None:
                log.error("FastAGI: no script %r (from %s, channel %s)", env.network_script, peer[0], env.channel)
                return
            channel = AgiChannel(self, env, reader, writer, self.command_timeout)
            try:
                await route(channel)
            except CallerHungUp:
                log.info("FastAGI: %s hung up", env.channel)
            except AgiError as exc:
                log.warning("FastAGI: %s: %s", env.channel, exc)
        finally:
            if task is not None:
                self.sessions.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def serve(self, host: str, port: int, *, reuse_port: bool = False) -> asyncio.Server:
        """Listen; with `reuse_port` several processes share the port and the kernel
        spreads connections among them."""
        return await asyncio.start_server(self.handler, host, port, limit=MAX_ENV_BYTES, reuse_port=reuse_port or None)
