"""One CMPP link: a TCP connection to the gateway (ISMG), connected, kept and connected
again. The bytes are `sms.cmpp_pdu`'s and `sms.cmpp_deliver`'s; this module only moves them.

- CONNECT (CMPP 2.0/3.0 §6.3.1) with AuthenticatorSource, and the gateway's
  AuthenticatorISMG checked (§6.3.2): a peer that does not know our secret is no gateway
  of ours. Status 3 (authentication) stops the link for good with a clear error: the secret
  or the account is wrong, and a gateway locks accounts that keep guessing; any other
  refusal, a refused or lost connection: connected again after a backoff that doubles.
- SUBMIT matched to its SUBMIT_RESP by Sequence_Id (§6.2); at most `cmpp.window`
  unanswered on the link (the transport keeps count, `sms.cmpp`). A SUBMIT unanswered for
  T (`response_timeout_s`) means a dead link: it is closed, and what was in flight is lost
  (the dispatcher queues it again as a possible duplicate).
- ACTIVE_TEST both ways (§6.3.9, §5.3's C, T, N): ours after C (`active_test_s`) with
  nothing received, sent again each T unanswered, and the link closed after N
  (`retries`) unanswered; the gateway's answered at once.
- DELIVER (§6.3.7) handed to the transport, answered with DELIVER_RESP once it is stored,
  without holding up the reading of the next PDU.
- TERMINATE both ways (§6.3.5): the gateway's answered and the link closed; ours on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any

from core.settings import CmppSettings
from sms.bind_health import LinkState
from sms.cmpp_deliver import Deliver, DeliverResp
from sms.cmpp_msgid import MsgId
from sms.cmpp_pdu import (
    HEADER,
    MAX_LENGTH,
    ActiveTest,
    ActiveTestResp,
    Body,
    Command,
    Connect,
    ConnectResp,
    Submit,
    SubmitResp,
    Terminate,
    TerminateResp,
    check_connect_resp,
    decode,
    encode,
    timestamp,
)
from sms.cmpp_results import CONNECT_STATUS, Version
from sms.errors import BadCmppPdu, CmppConnectRefused, CmppGatewayNotAuthentic, CmppLinkGone, UnknownCmppCommand

log = logging.getLogger(__name__)
CHINA = zoneinfo.ZoneInfo("Asia/Shanghai")  # CONNECT's Timestamp is the gateway's local time
STATUS_AUTH = 3
RESULT_RESEND_LATER = 8  # DELIVER_RESP for a DELIVER not stored: "flow control", the gateway sends it again
RESULT_STRUCTURE = 1
STOP_WAIT_S = 1.0  # on stop: for answers in flight, then for TERMINATE_RESP
Handler = Callable[[Deliver], Awaitable[int]]


class CmppLink:
    def __init__(
        self, number: int, settings: CmppSettings, version: Version, on_deliver: Handler, changed: Callable[[], None]
    ) -> None:
        self.number = number
        self.s = settings
        self.version = version
        self.on_deliver = on_deliver
        self.changed = changed
        self.up = False
        self.reserved = 0  # submits that chose this link (the transport's count, at most the window)
        self.paused_until = 0.0  # after Result 8
        self.inflight: dict[int, tuple[asyncio.Future[SubmitResp | None], float]] = {}
        self.state = LinkState.CONNECTING
        self.detail: str | None = None
        self.fatal: str | None = None  # why it will not connect again (Status 3, or a fault)
        self.connects = 0
        self.drops = 0
        self.submits = 0  # SUBMITs written
        self.last_drop: str | None = None  # why the link was last closed (for `hotline sms status`)
        self.delay_s = settings.reconnect_first_s
        self._seq = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._received_at = 0.0
        self._test_sent_at: float | None = None
        self._tests_unanswered = 0
        self._terminated = asyncio.Event()
        self._handling: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"CMPP link {self.number} to {self.s.host}:{self.s.port}"

    def _enter(self, state: LinkState, detail: str | None) -> None:
        self.state, self.detail = state, detail
        self.changed()

    def next_sequence(self) -> int:
        return next(self._seq) & 0xFFFFFFFF or next(self._seq)

    # --- the life of the link -----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, connect again after the backoff, until `stop` or a Status 3."""
        while not stop.is_set():
            try:
                reader, writer = await self._connect()
            except CmppConnectRefused as exc:
                if exc.status == STATUS_AUTH:
                    self.fatal = "CONNECT refused: Status 3, authentication error (sp_id, secret)"
                    log.error(
                        "%s: CONNECT refused, Status 3 (authentication error): check cmpp.sp_id %r and "
                        "cmpp.secret; not connecting again until restarted",
                        self.name,
                        self.s.sp_id,
                    )
                    self._enter(LinkState.STOPPED, self.fatal)
                    return
                await self._later(stop, f"CONNECT refused: {exc}")
                continue
            except (OSError, TimeoutError, BadCmppPdu, CmppGatewayNotAuthentic, asyncio.IncompleteReadError) as exc:
                await self._later(stop, f"not connected ({exc!r})")
                continue
            self.connects += 1
            reason = await self._serve(reader, writer, stop)
            if reason is not None:
                self.drops += 1
                self.last_drop = reason
                log.warning(
                    "%s: %s; closed, %d SUBMIT unanswered go back to the queue as possible duplicates",
                    self.name,
                    reason,
                    len(self.inflight),
                )
            self.down(reason or "stopped")
            if reason is not None:
                await self._later(stop, reason)

    async def _later(self, stop: asyncio.Event, why: str) -> None:
        delay, self.delay_s = self.delay_s, min(self.s.reconnect_most_s, self.delay_s * 2)
        log.warning("%s: %s; connecting again in %.1f s", self.name, why, delay)
        self._enter(LinkState.REBINDING if self.connects else LinkState.CONNECTING, why)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        s = self.s
        async with asyncio.timeout(s.connect_timeout_s):
            reader, writer = await asyncio.open_connection(s.host, s.port)
        try:
            connect = Connect.signed(s.sp_id, s.secret, self.version, timestamp(dt.datetime.now(CHINA)))
            writer.write(encode(self.next_sequence(), connect, self.version))
            async with asyncio.timeout(s.response_timeout_s):
                await writer.drain()
                pdu = await _read_pdu(reader)
            resp = _connect_resp(pdu, self.version)
            check_connect_resp(resp, connect.authenticator, s.secret, self.version)
        except BaseException:
            writer.transport.abort()
            raise
        return reader, writer

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: asyncio.Event
    ) -> str | None:
        """The connected link until it ends: why (None: stopped, and terminated)."""
        loop = asyncio.get_running_loop()
        self._writer, self.up = writer, True
        self._received_at, self._test_sent_at, self._tests_unanswered = loop.time(), None, 0
        self._terminated.clear()
        self.delay_s = self.s.reconnect_first_s
        log.info("%s: connected (CMPP %s, as %s)", self.name, self.s.version, self.s.sp_id)
        self._enter(LinkState.BOUND, f"up again after: {self.last_drop}" if self.last_drop else None)
        ends = {
            asyncio.create_task(self._read(reader), name=f"cmpp-read-{self.number}"),
            asyncio.create_task(self._keep(), name=f"cmpp-keep-{self.number}"),
        }
        stopping = asyncio.create_task(stop.wait(), name=f"cmpp-stop-{self.number}")
        tasks: set[asyncio.Task[Any]] = {*ends, stopping}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for ended in ends:
                if ended.done():
                    return ended.result()
            await self._terminate()
            return None
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _terminate(self) -> None:
        """Ours (§6.3.5): what is on the wire answered and what is being stored stored (each
        for at most STOP_WAIT_S), then TERMINATE, and its answer awaited as long."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_WAIT_S
        while (self.inflight or self._handling) and loop.time() < deadline:  # noqa: ASYNC110  (a few ms)
            await asyncio.sleep(0.01)
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(STOP_WAIT_S):
                await self._send(Terminate())
                await self._terminated.wait()

    def down(self, reason: str) -> None:
        self.up = False
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.transport.abort()
        for future, _ in self.inflight.values():
            if not future.done():
                future.set_result(None)  # lost: the gateway may or may not have it
        self.inflight.clear()
        self.paused_until = 0.0
        self._enter(LinkState.STOPPED if reason == "stopped" else LinkState.REBINDING, reason)

    # --- reading ------------------------------------------------------------------------------

    async def _read(self, reader: asyncio.StreamReader) -> str:
        loop = asyncio.get_running_loop()
        while True:
            try:
                pdu = await _read_pdu(reader)
            except asyncio.IncompleteReadError:
                return "the gateway closed the connection"
            except ConnectionError as exc:
                return f"connection lost ({exc!r})"
            except BadCmppPdu as exc:
                return f"unreadable stream ({exc})"  # misframed: nothing after it can be trusted
            self._received_at = loop.time()
            try:
                header, body = decode(pdu, self.version)
            except UnknownCmppCommand as exc:
                log.warning("%s: %s, ignored", self.name, exc)
                continue
            except BadCmppPdu as exc:
                await self._unreadable(pdu, exc)
                continue
            try:
                ended = await self._dispatch(header.command, header.sequence, body)
            except (ConnectionError, OSError) as exc:  # answering an ACTIVE_TEST or a TERMINATE
                return f"connection lost ({exc!r})"
            if ended is not None:
                return ended

    async def _dispatch(self, command: Command, sequence: int, body: object) -> str | None:
        if command == Command.SUBMIT_RESP and isinstance(body, SubmitResp):
            waiting = self.inflight.pop(sequence, None)
            if waiting is not None and not waiting[0].done():
                waiting[0].set_result(body)
        elif command == Command.DELIVER and isinstance(body, Deliver):
            task = asyncio.create_task(self._deliver(sequence, body))
            self._handling.add(task)
            task.add_done_callback(self._handling.discard)
        elif command == Command.ACTIVE_TEST:
            await self._send(ActiveTestResp(), sequence)
        elif command == Command.ACTIVE_TEST_RESP:
            self._test_sent_at, self._tests_unanswered = None, 0
        elif command == Command.TERMINATE:
            await self._send(TerminateResp(), sequence)
            return "the gateway sent TERMINATE"
        elif command == Command.TERMINATE_RESP:
            self._terminated.set()
        else:
            log.warning("%s: unexpected %s (sequence %d), ignored", self.name, command.name, sequence)
        return None

    async def _unreadable(self, pdu: bytes, exc: BadCmppPdu) -> None:
        """A PDU whose body does not fit its layout: logged without its bytes (they may hold
        a number and a text); a DELIVER is answered Result 1, so it is not sent for ever."""
        command, sequence = HEADER.unpack_from(pdu)[1:]
        log.error("%s: unreadable PDU 0x%08X (%s, %d octets)", self.name, command, exc, len(pdu))
        if command == Command.DELIVER and len(pdu) >= HEADER.size + 8:
            with contextlib.suppress(ConnectionError, OSError, CmppLinkGone):
                await self._send(DeliverResp(MsgId.from_bytes(pdu[12:20]), RESULT_STRUCTURE), sequence)

    async def _deliver(self, sequence: int, deliver: Deliver) -> None:
        writer = self._writer
        result = await self.on_deliver(deliver)
        if self._writer is writer and writer is not None:  # else it is sent again on the next link
            with contextlib.suppress(ConnectionError, OSError):
                await self._send(DeliverResp(deliver.msg_id, result), sequence)

    # --- keeping it alive ---------------------------------------------------------------------

    async def _keep(self) -> str:
        """ACTIVE_TEST after C quiet, again each T unanswered, N times; a SUBMIT unanswered for T."""
        loop = asyncio.get_running_loop()
        s = self.s
        tick = min(1.0, max(0.01, min(s.active_test_s, s.response_timeout_s) / 4))
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            oldest = min((at for _, at in self.inflight.values()), default=None)
            if oldest is not None and now - oldest >= s.response_timeout_s:
                return f"a SUBMIT unanswered for {s.response_timeout_s:g} s"
            if self._test_sent_at is not None:
                if now - self._test_sent_at < s.response_timeout_s:
                    continue
                if self._tests_unanswered >= s.retries:
                    return f"ACTIVE_TEST unanswered {self._tests_unanswered} times"
            elif now - self._received_at < s.active_test_s:
                continue
            self._tests_unanswered += 1
            self._test_sent_at = now
            with contextlib.suppress(ConnectionError, OSError):
                await self._send(ActiveTest())

    # --- writing ------------------------------------------------------------------------------

    async def _send(self, message: Body, sequence: int | None = None) -> int:
        writer = self._writer
        if writer is None:
            raise CmppLinkGone(self.name)
        sequence = self.next_sequence() if sequence is None else sequence
        writer.write(encode(sequence, message, self.version))
        await writer.drain()
        return sequence

    async def submit(self, submit: Submit) -> SubmitResp | None:
        """Send one SUBMIT and wait for its SUBMIT_RESP; None when the link is lost first.
        CmppLinkGone: the link was down before it went out (nothing sent)."""
        writer = self._writer
        if writer is None or not self.up:
            raise CmppLinkGone(self.name)
        pdu_bytes = encode(0, submit, self.version)  # encoding errors before anything is in flight
        sequence = self.next_sequence()
        pdu_bytes = HEADER.pack(len(pdu_bytes), Command.SUBMIT, sequence) + pdu_bytes[HEADER.size :]
        future: asyncio.Future[SubmitResp | None] = asyncio.get_running_loop().create_future()
        self.inflight[sequence] = (future, asyncio.get_running_loop().time())
        try:
            writer.write(pdu_bytes)
            self.submits += 1
            await writer.drain()
        except (ConnectionError, OSError):
            self.inflight.pop(sequence, None)
            return None
        try:
            return await future
        finally:
            self.inflight.pop(sequence, None)


async def _read_pdu(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(HEADER.size)
    length = int.from_bytes(head[:4], "big")
    if not HEADER.size <= length <= MAX_LENGTH:
        raise BadCmppPdu(f"Total_Length {length}: not 12 to {MAX_LENGTH}")
    return head + await reader.readexactly(length - HEADER.size)


def _connect_resp(pdu: bytes, version: Version) -> ConnectResp:
    """CONNECT_RESP in our version's layout; a gateway of the other version answers in its
    own (Status one octet in 2.0, four in 3.0): read that way, its Status says why."""
    other = Version.V20 if version == Version.V30 else Version.V30
    for layout in (version, other):
        try:
            _, body = decode(pdu, layout)
        except BadCmppPdu:
            continue
        if isinstance(body, ConnectResp) and layout == version:
            return body
        if isinstance(body, ConnectResp) and body.status != 0:
            raise CmppConnectRefused(body.status, CONNECT_STATUS.get(body.status, "other error"))
    raise BadCmppPdu(f"no CMPP_CONNECT_RESP of CMPP {version >> 4}.{version & 15} ({len(pdu)} octets)")
