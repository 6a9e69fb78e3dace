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

A bind that answers everything and takes nothing (only temporary refusals, `smpp.sick_after_
refusals` in a row or for `smpp.sick_after_s`: `sms.bind_health`) is sick: sending on it
stops, it is unbound and bound again after the backoff, to the next of `smpp.fallbacks` when
there are any; the refused segments wait for the new bind. The link's state (bound,
throttled, refusing, rebinding) is `report()`ed for `hotline sms status` (`sms.link_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiosmpplib import (
    PhoneNumber,
)
from aiosmpplib.protocol import (
    DeliverSmResp,
    EnquireLink,
    SubmitSm,
    Unbind,
)

from core.settings import SmppSettings
from sms.bind_health import BindHealth, LinkState, Sick
from sms.encoding import Segment, encode
from sms.link_status import LinkReport
from sms.pdu import BadPdu, Inbound, parse_deliver_sm
from sms.smpp_adapter import CODECS, ENCODING_NAMES, UNSENT, Esme, Hook, LibraryLog
from sms.smpp_link import Backoff, LinkWatch, Reason
from sms.smpp_pacing import Pacer, Throttle
from sms.smpp_wire import Broker, Correlator
from sms.status import status_name
from sms.transport import SubmitResult

log = logging.getLogger(__name__)
library_log = logging.getLogger("sms.aiosmpplib")


# On stop: how long a peer has to answer our unbind, and what is being stored to be stored
# (a deliver_sm left unanswered is delivered again); `stop()` returns within about both.
UNBIND_WAIT_S = 1.0
HANDLING_WAIT_S = 1.0
__all__ = ["Pacer", "SmppPart", "SmppTransport", "SubmitResult", "Throttle"]


@dataclass(frozen=True)
class SmppPart:
    """One submit_sm's share of a text: a segment with its UDH, and how it is coded."""

    segment: Segment
    data_coding: int
    esm_class: int


class SmppTransport:
    """The SMPP `sms.transport.Transport`; `submit_segment` sends one segment as it is."""

    def __init__(self, settings: SmppSettings, on_deliver: Callable[[Inbound], Awaitable[None]]) -> None:
        self.settings = settings
        self.capacity = settings.window
        self.id_base = settings.submit_id_base
        self.receipt_id_base = settings.receipt_id_base
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
        self.addresses = settings.addresses()
        self.at = 0  # the address in use: addresses[at]
        self.health = BindHealth(settings.sick_after_refusals, settings.sick_after_s)
        self.backoff = Backoff(settings.rebind_first_s, settings.rebind_most_s)
        self.changed = asyncio.Event()  # the link's state changed (sms.link_status publishes it)
        self._since = dt.datetime.now(dt.UTC)  # when the state last changed, on the wall clock
        self._detail: str | None = None  # why it is refusing or rebinding
        self.sick_at: float | None = None  # when the last sick bind was found
        self.unbound = asyncio.Event()  # the SMSC answered our unbind
        self.esme = Esme(
            settings.host,
            settings.port,
            settings.system_id,
            settings.password,
            broker=self.broker,
            hook=Hook(self),
            rate_limiter=Pacer(settings.tps),
            throttle_handler=self.throttle,
            enquire_link_interval=float(settings.enquire_link_s),  # unused: our keeper's
            socket_timeout=float(settings.socket_timeout_s),  # connect, bind (session_init_timer)
            custom_codecs=CODECS,
            correlator=Correlator(),
            retry_timer=self.backoff,
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
        before = self.health.state
        self.health.stopped(asyncio.get_running_loop().time())
        self._track(before)
        for tag in list(self.waiting):  # and what never went out will not go now
            self.settle(tag, UNSENT)

    def _peer(self) -> tuple[str, int]:
        return self.addresses[self.at]

    def report(self) -> LinkReport:
        """The link's state now, for `hotline sms status` and `/healthz`."""
        host, port = self._peer()
        return LinkReport(self.health.state, f"{host}:{port}", self._detail, self._since, self.health.sick_binds)

    def _track(self, before: LinkState, detail: str | None = None) -> None:
        """After any change to `health`: note when its state changed, and say so."""
        if detail is not None and detail != self._detail:
            self._detail = detail
            self.changed.set()
        if self.health.state is not before:
            self._since = dt.datetime.now(dt.UTC)
            if self.health.state in (LinkState.BOUND, LinkState.STOPPED):
                self._detail = None
            self.changed.set()

    def answered(self, status: int) -> None:
        """A submit_sm_resp: is the bind still taking anything?"""
        before = self.health.state
        sick = self.health.answered(status, asyncio.get_running_loop().time())
        if status == 0 and self.health.accepted == 1:
            self.backoff.relax()  # this bind takes segments: binds are retried quickly again
        if self.health.state in (LinkState.REFUSING, LinkState.THROTTLED):
            self._track(before, f"{self.health.refused} submit_sm refused, last {status_name(status)}")
        else:
            self._track(before)
        if sick is not None:
            self._sick(sick)

    def _sick(self, sick: Sick) -> None:
        """A bind that answers and takes nothing: no more submits on it, and its keeper
        unbinds it (`keep_bind`); what waits for the wire goes out on the next bind."""
        self.sick_at = asyncio.get_running_loop().time()
        self.throttle.hold()
        sick_peer = self._peer()
        if not self.health.accepted:  # a bind that takes nothing from the start: back off more
            self.backoff.escalate()
        self.at = (self.at + 1) % len(self.addresses)  # the next bind: to the next address, if any
        log.warning(
            "SMSC %s:%d (bind %d as %s) is sick: %s, the last answered %s; unbinding, binding again to %s:%d",
            *sick_peer,
            self.binds,
            self.settings.system_id,
            sick,
            status_name(sick.status),
            *self._peer(),
        )
        self._track(LinkState.REFUSING, f"sick bind dropped: {sick}")
        self.watch.end(sick)

    def _settle_sent(self) -> None:
        """Submits sent on a connection that is gone will never be answered: lost."""
        for tag in list(self.sent):
            self.settle(tag, SubmitResult(None))

    async def keep_bind(self) -> None:
        """For the life of each bind (aiosmpplib's connection keeper): its timers, and the
        drop of a bind that left a request unanswered or turned sick."""
        reason = await self.watch.keep(lambda: self.esme._send_data(EnquireLink()))
        if isinstance(reason, Sick):
            try:
                await self._unbind()
            finally:  # also when the SMSC closed the connection on our unbind (this is cancelled then)
                self._drop(reason)
        elif reason is not None:
            self._drop(reason)

    async def _unbind(self) -> None:
        """A sick bind still answers: let it answer what is on the wire (refusals, which
        the dispatcher puts back in line), then unbind (SMPP 3.4 §4.2), each for at most
        UNBIND_WAIT_S; `_drop` closes the connection whatever the SMSC did."""
        deadline = asyncio.get_running_loop().time() + UNBIND_WAIT_S
        while self._writing() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110  (a few ms)
            await asyncio.sleep(0.01)
        self.unbound.clear()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            async with asyncio.timeout(UNBIND_WAIT_S):
                await self.esme._send_data(Unbind())
                await self.unbound.wait()

    def _writing(self) -> bool:
        """Submits on the wire unanswered, or one the sender took before the hold and is
        about to write (pacing): a sick bind answers them, so none is lost with it."""
        return bool(self.sent) or (self.broker.in_hand is not None and not self.throttle.parked)

    def _drop(self, reason: Reason) -> None:
        """A dead or sick bind: forget it at once and let aiosmpplib bind again (after its
        backoff; to the next address after a sick one). What was sent on it and not answered
        is lost (queued again as a possible duplicate); what was waiting for the wire goes
        out on the next bind."""
        self.drops += 1
        self.dropped_at = asyncio.get_running_loop().time()
        if not isinstance(reason, Sick):  # a sick one was logged when found
            log.warning(
                "SMSC %s:%d: %s; dropping the bind, %d submit_sm unanswered go back to the queue"
                " as possible duplicates",
                *self._peer(),
                reason,
                len(self.sent),
            )
        before = self.health.state
        self.health.lost(self.dropped_at)
        self._track(before, f"dropped: {reason}")
        self.esme._bound.clear()  # aiosmpplib's sender holds what it has until the next bind
        self.bound.clear()
        writer = self.esme._writer
        self.esme._writer = None  # deliver_sm still being stored are not answered on it
        if writer is not None:
            writer.transport.abort()  # no unbind: nothing is answered on it
        self.watch.reset()
        self._settle_sent()

    def connecting(self) -> tuple[str, int]:
        """A new connection (to the address returned): nothing sent on the last one will be
        answered now (aiosmpplib found it gone, or we dropped it): lost, without waiting for
        the bind."""
        self._settle_sent()
        if self.binds:
            before = self.health.state
            self.health.lost(asyncio.get_running_loop().time())
            self._track(before, self._detail or "the connection was lost")
        return self._peer()

    def bind_failed(self, error: BaseException) -> None:
        """A connect or bind that failed (or was cancelled): close what it opened."""
        writer = self.esme._writer
        if writer is not None:
            writer.transport.abort()
            self.esme._writer = None
        if isinstance(error, Exception):
            delay = self.esme.retry_timer.next_delay()
            peer = self._peer()
            self.at = (self.at + 1) % len(self.addresses)  # the next address, if there are several
            nxt = self._peer()
            log.warning("SMSC %s:%d: not bound (%r); next attempt in %.1f s, to %s:%d", *peer, error, delay, *nxt)
            self._track(self.health.state, f"not bound ({type(error).__name__})")

    def on_bound(self) -> None:
        """A (new) bind: what was sent on an earlier connection is lost."""
        self.binds += 1
        self.watch.reset()
        self.esme.correlator.clear()
        self.broker.give_back()
        self.throttle.release()
        now = asyncio.get_running_loop().time()
        before = self.health.state
        self.health.bound(now)
        self._track(before)
        if self.sick_at is not None:
            log.warning(
                "SMSC %s:%d: bound again (bind %d), %.1f s after the sick bind was found; sending resumes",
                *self._peer(),
                self.binds,
                now - self.sick_at,
            )
            self.sick_at = self.dropped_at = None
        elif self.dropped_at is not None:
            since = now - self.dropped_at
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

    def parts(self, text: str, reference: int, category: str | None = None) -> list[SmppPart]:
        """GSM 7-bit or UCS2 segments, with the 16-bit concatenation reference (`sms.encoding`)."""
        encoded = encode(text, reference & 0xFFFF)
        return [SmppPart(segment, encoded.data_coding, encoded.esm_class) for segment in encoded.segments]

    async def submit(self, recipient: str, part: SmppPart, urgent: bool = False) -> SubmitResult:
        return await self.submit_segment(recipient, part.segment, part.data_coding, part.esm_class, urgent)

    async def submit_segment(
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
