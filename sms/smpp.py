"""The SMPP transport: aiosmpplib's ESME behind one narrow call, `submit()`.

aiosmpplib keeps the bind (enquire_link, reconnect with exponential backoff) and encodes
PDUs; the seams it offers carry our rules:

- a window: at most `smpp.window` submit_sm unanswered at any moment (a semaphore taken
  before a segment is queued and given back when its submit_sm_resp, or the loss of the
  connection, settles it); batch segments fill at most `smpp.batch_share` of it, so an
  instant reminder always finds room in it;
- a TPS limit: submits are spaced at least 1/`smpp.tps` s apart (the rate limiter), so no
  one-second window ever holds more than `tps`;
- throttling: ESME_RTHROTTLED / ESME_RMSGQFUL pause all sending for `smpp.throttle_pause_s`
  (the throttle handler); the caller resubmits that segment;
- segments are ours (`sms.encoding`): each goes out as its own submit_sm with its UDH, the
  text passed through byte for byte by pass-through codecs for data_coding 0 and 8 (aiosmpplib's
  own splitting is not used; tests/unit/test_aiosmpplib_splitting.py says why);
- delivery receipts and MO texts are handed to `on_deliver` as raw bytes.

A submit whose connection drops before its response resolves as `lost`: the SMSC may or
may not have taken it, which the caller records. So does one left unanswered past
`smpp.response_timeout_s` (SMPP 3.4 §7.2's response_timer, `sms.smpp_link`): the bind is
then dead, or as good as dead (a hung SMSC, or a firewall that forgot the connection, keeps
the TCP connection open and answers nothing), and it is dropped and bound again after a
backoff; so is a bind whose enquire_link goes unanswered past `smpp.enquire_link_timeout_s`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiosmpplib import (
    ESME,
    AbstractHook,
    AbstractRateLimiter,
    AbstractThrottleHandler,
    PhoneNumber,
)
from aiosmpplib.protocol import (
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    GenericNack,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
)
from aiosmpplib.state import SmppCommand

from core.masking import mask_numbers
from core.settings import SmppSettings
from sms.encoding import DATA_CODING_UCS2, Segment
from sms.pdu import BadPdu, Inbound, parse_deliver_sm
from sms.smpp_link import Backoff, LinkWatch, Unanswered
from sms.smpp_wire import Broker, Correlator

log = logging.getLogger(__name__)
library_log = logging.getLogger("sms.aiosmpplib")


class LibraryLog(logging.Handler):
    """aiosmpplib's own error lines (its StructuredLogger writes bare `message >>> {json}`
    lines to stderr by default) into the platform's log, under `sms.aiosmpplib`, with any
    phone number in them masked."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            library_log.log(record.levelno, "%s", mask_numbers(self.format(record)))
        except Exception:  # logging must not raise (logging.Handler.handleError)
            self.handleError(record)


# On stop: how long a peer has to answer our unbind, and what is being stored to be stored
# (a deliver_sm left unanswered is delivered again); `stop()` returns within about both.
UNBIND_WAIT_S = 1.0
HANDLING_WAIT_S = 1.0
ENCODING_NAMES = {0x00: "gsm0338", DATA_CODING_UCS2: "ucs2"}
BOUND = (0x00, 0x05)  # bind_transceiver_resp: ESME_ROK, or ESME_RALYBND (aiosmpplib takes both)


def _passthrough(name: str) -> codecs.CodecInfo:
    """A codec that maps bytes 1:1 to code points 0-255 and back: our bytes, untouched."""

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return text.encode("latin-1", errors), len(text)

    def decode(data: Any, errors: str = "strict") -> tuple[str, int]:
        return bytes(data).decode("latin-1", errors), len(data)

    return codecs.CodecInfo(encode, decode, name=name)


CODECS = {name: _passthrough(name) for name in ENCODING_NAMES.values()}


@dataclass(frozen=True)
class SubmitResult:
    status: int | None  # command_status; None when the connection was lost first
    smsc_id: str | None = None
    detail: str | None = None  # the peer's own words, when it gave any (Twilio does)
    sent: bool = True  # False (with status None): it never left, so it is no possible duplicate

    @property
    def lost(self) -> bool:
        return self.status is None


UNSENT = SubmitResult(None, detail="not sent: the SMPP transport stopped", sent=False)


class Pacer(AbstractRateLimiter):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """At least 1/tps s between submits (also the Twilio transport's requests)."""

    def __init__(self, tps: float) -> None:
        self.interval = 1.0 / tps
        self.next_at = 0.0

    async def limit(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            await asyncio.sleep(self.next_at - now)
            now = time.monotonic()
        self.next_at = max(now, self.next_at) + self.interval


class Throttle(AbstractThrottleHandler):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """A throttled answer pauses all sending for a while; the next success ends nothing early."""

    def __init__(self, pause_s: float) -> None:
        self.pause_s = pause_s
        self.until = 0.0
        self.count = 0

    async def throttled(self) -> None:
        self.count += 1
        self.until = time.monotonic() + self.pause_s

    async def not_throttled(self) -> None:
        pass

    async def allow_request(self) -> bool:
        return time.monotonic() >= self.until

    async def throttle_delay(self) -> float:
        return max(0.0, self.until - time.monotonic())


class _Esme(ESME):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """aiosmpplib answers a deliver_sm as soon as its hook returns, before a receipt or a
    resident's text is in the store: a crash then would lose what the SMSC believes
    delivered. Here deliver_sm is left unanswered by aiosmpplib (its request handler
    returns None, which it treats as "answered already") and the transport answers it
    once what it carries is stored; what is never answered, the SMSC delivers again.

    aiosmpplib's connection keeper sends enquire_link only after a quiet spell and waits for
    any data in reply (so a peer that answers enquire_link and nothing else looks alive);
    here the keeper of each bind is the transport's `LinkWatch`, whose return ends the bind
    (aiosmpplib then binds again). A bind attempt that fails closes its connection (aiosmpplib
    leaves it open, one socket per attempt against a refusing SMSC). To drop a bind the
    transport reaches into `_bound`, `_writer` and `_send_data`: aiosmpplib 0.7.4's own
    (pinned), used as its connection keeper and disconnect use them."""

    transport: SmppTransport

    async def _handle_request(self, pdu: bytes, header: Any) -> SmppMessage | None:
        if header.smpp_command == SmppCommand.DELIVER_SM:
            return None
        result: SmppMessage | None = await super()._handle_request(pdu, header)
        return result

    async def _connection_keeper(self) -> None:
        await self.transport.keep_bind()

    async def connect(self) -> None:
        self.transport.connecting()
        try:
            await super().connect()
        except BaseException as exc:
            self.transport.bind_failed(exc)
            raise


class _Hook(AbstractHook):  # type: ignore[misc]  # aiosmpplib ships no type hints
    def __init__(self, transport: SmppTransport) -> None:
        self.t = transport

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSm):
            self.t.broker.written(smpp_message)
            if smpp_message.log_id in self.t.waiting:
                self.t.sent.add(smpp_message.log_id)
            self.t.watch.sent("submit_sm", smpp_message.sequence_num)
        elif isinstance(smpp_message, EnquireLink):
            self.t.watch.sent("enquire_link", smpp_message.sequence_num)

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if len(pdu) >= 16:  # every PDU, read or not: the link is alive, and a response is in
            self.t.watch.received(int.from_bytes(pdu[4:8], "big"), int.from_bytes(pdu[12:16], "big"))
        if isinstance(smpp_message, BindTransceiverResp) and smpp_message.command_status in BOUND:
            self.t.on_bound()
        elif isinstance(smpp_message, SubmitSmResp | GenericNack):
            tag: str = getattr(smpp_message, "log_id", "") or ""
            message_id: str | None = getattr(smpp_message, "message_id", None) or None
            if tag:
                self.t.settle(tag, SubmitResult(int(smpp_message.command_status), message_id))
        elif isinstance(smpp_message, DeliverSm) or (smpp_message is None and len(pdu) > 8 and pdu[7] == 0x05):
            # Our own reading of the PDU: aiosmpplib strips the UDH of inbound texts.
            await self.t.deliver(pdu)

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSm) and smpp_message.log_id:
            log.warning("submit %s not sent: %r", smpp_message.log_id, error)
            self.t.settle(smpp_message.log_id, SubmitResult(None))


class SmppTransport:
    def __init__(self, settings: SmppSettings, on_deliver: Callable[[Inbound], Awaitable[None]]) -> None:
        self.settings = settings
        self.on_deliver = on_deliver
        self.window = asyncio.Semaphore(settings.window)
        # Batch submits also take one of these, a `batch_share` of the window.
        self.batch_window = asyncio.Semaphore(max(1, int(settings.window * settings.batch_share)))
        self._batch_tags: set[str] = set()
        self.waiting: dict[str, asyncio.Future[SubmitResult]] = {}
        self.sent: set[str] = set()
        self.bound = asyncio.Event()
        self.binds = 0
        self._tags = itertools.count(1)
        self.broker = Broker()
        self.throttle = Throttle(settings.throttle_pause_s)
        self.esme = _Esme(
            settings.host,
            settings.port,
            settings.system_id,
            settings.password,
            broker=self.broker,
            hook=_Hook(self),
            rate_limiter=Pacer(settings.tps),
            throttle_handler=self.throttle,
            enquire_link_interval=float(settings.enquire_link_s),  # unused: our keeper's
            socket_timeout=float(settings.socket_timeout_s),  # connect, bind (session_init_timer)
            custom_codecs=CODECS,
            correlator=Correlator(),
            retry_timer=Backoff(settings.rebind_first_s, settings.rebind_most_s),
            log_level=logging.ERROR,
            log_handler=LibraryLog(),
        )
        self.esme.transport = self
        self.watch = LinkWatch(settings.enquire_link_s, settings.enquire_link_timeout_s, settings.response_timeout_s)
        self.dropped_at: float | None = None  # when we last dropped a dead bind
        self.drops = 0
        self._task: asyncio.Task[None] | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handling: set[asyncio.Task[None]] = set()  # deliver_sm being stored, then answered
        self._stopped = False  # after stop(), every submit returns UNSENT

    async def start(self) -> None:
        self._task = asyncio.create_task(self.esme.start(), name="smpp-esme")

    async def stop(self) -> None:
        """Unbind and close, within about UNBIND_WAIT_S + HANDLING_WAIT_S whatever the SMSC
        does: connecting to one that is unreachable, bound to one that answers nothing, or
        waiting out the backoff between binds."""
        if self._handling:  # what is being stored now, stored and answered before the unbind
            await asyncio.wait(self._handling, timeout=HANDLING_WAIT_S)
        self.watch.stop()
        # aiosmpplib 0.7.4 unbinds and sends EOF but never closes its StreamWriter (it just
        # drops it, which warns at garbage collection): close it ourselves. It waits for the
        # unbind_resp as long as the SMSC takes (a hung one: for ever), so not longer than this.
        current = getattr(self.esme, "_writer", None)
        try:
            async with asyncio.timeout(UNBIND_WAIT_S):
                await self.esme.stop()
            unbound = True
        except TimeoutError:
            unbound = False  # closed without its unbind_resp (the peer's loss, not ours)
        for writer in {*self._writers, *([current] if current is not None else [])}:
            if not unbound:
                writer.transport.abort()  # a close would wait for a peer that reads nothing
                continue
            writer.close()
            with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), UNBIND_WAIT_S)
        self._writers = []
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.watch.reset()
        self._settle_sent()  # nothing more will answer what is still waiting
        self._stopped = True
        for tag in list(self.waiting):  # and what never went out will not go now
            self.settle(tag, UNSENT)

    def _peer(self) -> tuple[str, int]:
        return self.settings.host, self.settings.port

    def _settle_sent(self) -> None:
        """Submits sent on a connection that is gone will never be answered: lost."""
        for tag in list(self.sent):
            self.settle(tag, SubmitResult(None))

    async def keep_bind(self) -> None:
        """For the life of each bind (aiosmpplib's connection keeper): its timers, and the
        drop of a bind that left a request unanswered."""
        unanswered = await self.watch.keep(lambda: self.esme._send_data(EnquireLink()))
        if unanswered is not None:
            self._drop(unanswered)

    def _drop(self, unanswered: Unanswered) -> None:
        """A dead bind: forget it at once and let aiosmpplib bind again (after its backoff).
        What was sent on it and not answered is lost (queued again as a possible duplicate);
        what was waiting for the wire goes out on the next bind."""
        self.drops += 1
        self.dropped_at = asyncio.get_running_loop().time()
        log.warning(
            "SMSC %s:%d: %s; dropping the bind, %d submit_sm unanswered go back to the queue as possible duplicates",
            *self._peer(),
            unanswered,
            len(self.sent),
        )
        self.esme._bound.clear()  # aiosmpplib's sender holds what it has until the next bind
        self.bound.clear()
        writer = self.esme._writer
        self.esme._writer = None  # deliver_sm still being stored are not answered on it
        if writer is not None:
            writer.transport.abort()  # no unbind: nothing is answered on it
        self.watch.reset()
        self._settle_sent()

    def connecting(self) -> None:
        """A new connection: nothing sent on the last one will be answered now (aiosmpplib
        found it gone, or we dropped it): lost, without waiting for the bind."""
        self._settle_sent()

    def bind_failed(self, error: BaseException) -> None:
        """A connect or bind that failed (or was cancelled): close what it opened."""
        writer = self.esme._writer
        if writer is not None:
            writer.transport.abort()
            self.esme._writer = None
        if isinstance(error, Exception):
            delay = self.esme.retry_timer.next_delay()
            log.warning("SMSC %s:%d: not bound (%r); next attempt in %.1f s", *self._peer(), error, delay)

    def on_bound(self) -> None:
        """A (new) bind: what was sent on an earlier connection is lost."""
        self.binds += 1
        self.watch.reset()
        self.esme.correlator.clear()
        self.broker.give_back()
        if self.dropped_at is not None:
            since = asyncio.get_running_loop().time() - self.dropped_at
            log.warning("SMSC %s:%d: bound again, %.1f s after the dead bind was dropped", *self._peer(), since)
            self.dropped_at = None
        elif self.binds > 1:
            log.warning("SMSC %s:%d: bound again after the connection was lost", *self._peer())
        # aiosmpplib 0.7.4 replaces its StreamWriter on reconnect without closing the old one.
        current = getattr(self.esme, "_writer", None)
        for writer in self._writers:
            if writer is not current:
                writer.close()
        self._writers = [current] if current is not None else []
        self._settle_sent()
        self.bound.set()

    def settle(self, tag: str, result: SubmitResult) -> None:
        future = self.waiting.pop(tag, None)
        self.sent.discard(tag)
        if future is not None and not future.done():
            future.set_result(result)
            self._free(tag)

    def _free(self, tag: str) -> None:
        self.window.release()
        if tag in self._batch_tags:
            self._batch_tags.discard(tag)
            self.batch_window.release()

    async def submit(
        self, destination: str, segment: Segment, data_coding: int, esm_class: int, urgent: bool = False
    ) -> SubmitResult:
        """Send one segment (registered delivery on) and wait for its submit_sm_resp;
        `urgent` ones (instant reminders) go out before those waiting for the wire, and
        the others use no more than `batch_share` of the window. After `stop()` it
        returns (UNSENT, or lost when it had gone out) whatever the SMSC does."""
        if self._stopped:
            return UNSENT
        if not urgent:
            await self.batch_window.acquire()
        try:
            await self.window.acquire()
        except BaseException:
            if not urgent:
                self.batch_window.release()
            raise
        tag = f"s{next(self._tags)}"
        if not urgent:
            self._batch_tags.add(tag)
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        self.waiting[tag] = future
        try:
            if self._stopped:  # stopped while this waited for room in the window
                self.settle(tag, UNSENT)
                return await future
            self.broker.put(
                SubmitSm(
                    short_message=segment.short_message.decode("latin-1"),
                    source=PhoneNumber(self.settings.source_addr),
                    destination=PhoneNumber(destination),
                    esm_class=esm_class,
                    encoding=ENCODING_NAMES[data_coding],
                    registered_delivery=1,
                    log_id=tag,
                ),
                urgent=urgent,
            )
            return await future
        finally:
            if self.waiting.pop(tag, None) is not None:  # cancelled before an answer
                self.sent.discard(tag)
                self._free(tag)

    async def deliver(self, pdu: bytes) -> None:
        """Hand a deliver_sm on and answer it once handled, without holding up the reading
        of the next PDU (aiosmpplib reads one at a time)."""
        sequence = int.from_bytes(pdu[12:16], "big")
        connection = getattr(self.esme, "_writer", None)
        try:
            inbound = parse_deliver_sm(pdu)
        except BadPdu as exc:
            # Not the bytes: they hold the sender's number and the text.
            log.error("unreadable deliver_sm (%s, %d octets), acknowledged and dropped", exc, len(pdu))
            await self._answer(sequence, connection)
            return
        task = asyncio.create_task(self._handle(inbound, sequence, connection))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _handle(self, inbound: Inbound, sequence: int, connection: object) -> None:
        try:
            await self.on_deliver(inbound)
        except Exception as exc:
            # Unanswered: the SMSC delivers it again (to us or to another bind). No traceback
            # here: on_deliver counts the tries and logs one with the dead letter (sms.inbound).
            log.warning("deliver_sm %d not handled (%r); left unanswered for the SMSC to resend", sequence, exc)
            return
        await self._answer(sequence, connection)

    async def _answer(self, sequence: int, connection: object) -> None:
        if getattr(self.esme, "_writer", None) is not connection or connection is None:
            return  # that connection is gone; the SMSC resends on the new one
        with contextlib.suppress(ConnectionError, OSError):
            await self.esme._send_data(DeliverSmResp(sequence))
