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
may not have taken it, which the caller records.
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
    AbstractBroker,
    AbstractCorrelator,
    AbstractHook,
    AbstractRateLimiter,
    AbstractThrottleHandler,
    PhoneNumber,
)
from aiosmpplib.protocol import (
    BindTransceiverResp,
    DeliverSm,
    DeliverSmResp,
    GenericNack,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
)
from aiosmpplib.state import SmppCommand

from core.settings import SmppSettings
from sms.encoding import DATA_CODING_UCS2, Segment
from sms.pdu import BadPdu, Inbound, parse_deliver_sm

log = logging.getLogger(__name__)
RESPONSE_TTL_S = 15.0  # a submit_sm unanswered this long is given up as lost (aiosmpplib's default)
ENCODING_NAMES = {0x00: "gsm0338", DATA_CODING_UCS2: "ucs2"}


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

    @property
    def lost(self) -> bool:
        return self.status is None


class _Broker(AbstractBroker):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """What waits for the wire: urgent submits (instant reminders) before the others, each
    kind first in, first out."""

    def __init__(self) -> None:
        self.queue: asyncio.PriorityQueue[tuple[int, int, SubmitSm]] = asyncio.PriorityQueue()
        self._order = itertools.count()

    async def enqueue(self, message: SmppMessage) -> None:
        assert isinstance(message, SubmitSm)
        self.put(message, urgent=False)

    def put(self, message: SubmitSm, *, urgent: bool) -> None:
        self.queue.put_nowait((0 if urgent else 1, next(self._order), message))

    async def dequeue(self) -> SmppMessage:
        return (await self.queue.get())[2]  # cancellation-safe: nothing is lost if cancelled


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


class _Correlator(AbstractCorrelator):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """Requests waiting for their response, by sequence number, and nothing else.

    aiosmpplib's SimpleCorrelator also keeps every accepted submit for three days to match
    its receipt, and walks all it keeps on every operation: sending slows down as the
    square of what has been sent (70 messages/s after 5,000 here). Receipts are ours to
    match (`sms.receipts`, in the store), and so are long messages (each segment is a
    submit_sm of its own; inbound parts are reassembled by `sms.mo`), so this one keeps
    only the requests in flight, in the order sent, and expires them oldest first.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._waiting: dict[int, tuple[float, SmppMessage]] = {}

    def get_cumulated_status(self, ref_num: int) -> int:
        return 0

    async def expired(self, smpp_message: SmppMessage) -> None:
        await self.hook.send_error(smpp_message, TimeoutError("no response within the timeout"), self.client_id)

    async def put(self, smpp_message: SmppMessage) -> None:
        await self._expire()
        self._waiting[smpp_message.sequence_num] = (time.monotonic(), smpp_message)

    async def get(self, response: SmppMessage) -> SmppMessage | None:
        item = self._waiting.pop(response.sequence_num, None)
        await self._expire()
        return item[1] if item else None

    async def _expire(self) -> None:
        limit = time.monotonic() - self.ttl_s
        while self._waiting:
            seq = next(iter(self._waiting))
            stored_at, message = self._waiting[seq]
            if stored_at > limit:
                return
            del self._waiting[seq]
            await self.expired(message)

    async def put_delivery(self, smsc_message_id: str, submit_sm: SubmitSm) -> None:
        pass

    async def put_delivery_segmented(self, deliver_sm: DeliverSm) -> DeliverSm:
        return deliver_sm  # every part goes to the hook as it is

    async def get_segmented(self, smpp_seq_num: int, remove: bool = False) -> tuple[None, int]:
        return None, 0

    async def get_delivery(self, receipt: DeliverSm) -> None:
        return None


class _Esme(ESME):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """aiosmpplib answers a deliver_sm as soon as its hook returns, before a receipt or a
    resident's text is in the store: a crash then would lose what the SMSC believes
    delivered. Here deliver_sm is left unanswered by aiosmpplib (its request handler
    returns None, which it treats as "answered already") and the transport answers it
    once what it carries is stored; what is never answered, the SMSC delivers again."""

    async def _handle_request(self, pdu: bytes, header: Any) -> SmppMessage | None:
        if header.smpp_command == SmppCommand.DELIVER_SM:
            return None
        result: SmppMessage | None = await super()._handle_request(pdu, header)
        return result


class _Hook(AbstractHook):  # type: ignore[misc]  # aiosmpplib ships no type hints
    def __init__(self, transport: SmppTransport) -> None:
        self.t = transport

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSm) and smpp_message.log_id in self.t.waiting:
            self.t.sent.add(smpp_message.log_id)

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, BindTransceiverResp):
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
        self._broker = _Broker()
        self.throttle = Throttle(settings.throttle_pause_s)
        self.esme = _Esme(
            settings.host,
            settings.port,
            settings.system_id,
            settings.password,
            broker=self._broker,
            hook=_Hook(self),
            rate_limiter=Pacer(settings.tps),
            throttle_handler=self.throttle,
            enquire_link_interval=float(settings.enquire_link_s),
            socket_timeout=float(settings.socket_timeout_s),
            custom_codecs=CODECS,
            correlator=_Correlator(RESPONSE_TTL_S),
            log_level=logging.ERROR,
        )
        self._task: asyncio.Task[None] | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handling: set[asyncio.Task[None]] = set()  # deliver_sm being stored, then answered

    async def start(self) -> None:
        self._task = asyncio.create_task(self.esme.start(), name="smpp-esme")

    async def stop(self) -> None:
        if self._handling:  # what is being stored now, stored and answered before the unbind
            await asyncio.wait(self._handling, timeout=5.0)
        # aiosmpplib 0.7.4 unbinds and sends EOF but never closes its StreamWriter (it just
        # drops it, which warns at garbage collection): close it ourselves.
        current = getattr(self.esme, "_writer", None)
        await self.esme.stop()
        for writer in {*self._writers, *([current] if current is not None else [])}:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        self._writers = []
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._settle_sent()  # nothing more will answer what is still waiting

    def _settle_sent(self) -> None:
        """Submits sent on a connection that is gone will never be answered: lost."""
        for tag in list(self.sent):
            self.settle(tag, SubmitResult(None))

    def on_bound(self) -> None:
        """A (new) bind: what was sent on an earlier connection is lost."""
        self.binds += 1
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
        the others use no more than `batch_share` of the window."""
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
            self._broker.put(
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
            log.error("unreadable deliver_sm (%s), acknowledged and dropped: %s", exc, pdu[:64].hex())
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
