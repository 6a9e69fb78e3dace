"""The dispatcher: business events in, SMS out, receipts back.

One loop per process: take new events (`sms.intake`), claim due messages (`sms.outbox`),
send each through the transport segment by segment, and record every answer:

- accepted: the segment's SMSC id is kept for its receipt;
- ESME_RTHROTTLED / ESME_RMSGQFUL: the transport pauses; the segment is resubmitted
  (up to `sms.max_resubmits`), without counting an attempt (on a sick bind it waits for
  the next bind: `sms.bind_health`);
- other temporary errors (ESME_RSYSERR...), and a segment still refused after every
  resubmission: the SMSC refused it for now, which is no failure of the message (it was
  never accepted): queued again after a short delay, counted as a refusal and not as an
  attempt; after `sms.max_refusals` of them it is a dead letter all the same, so nothing
  goes round for ever;
- the link lost before the answer: queued again at once and marked as a possible
  duplicate (not when the transport says the segment never left: stopped before sending
  it); after `sms.max_attempts` such attempts it is a dead letter (`failed`, with the
  reason): a message that takes the link down every time goes no further;
- permanent errors: `failed` at once, with the reason;

Messages to one recipient are sent one at a time, in order, so the 16-bit concatenation
reference (the message id modulo 65,536) cannot collide on a handset while they are in
flight. Segments the SMSC has taken are never sent again on a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

from core.business import BusinessPort
from core.calls_out import refuse
from core.db import Store
from core.destinations import DestinationPolicy, DestinationRefused
from core.errors import StoreUnavailable
from core.masking import mask_phone
from core.models import utcnow
from core.notices import voice_unavailable
from core.settings import Settings
from sms import outbox
from sms.errors import DispatcherFault
from sms.group_commit import GroupCommit
from sms.intake import intake
from sms.outbox import Due
from sms.pdu import Inbound
from sms.receipts import BadReceipt, ReceiptIds, canonical, parse_receipt
from sms.status import SLOW_DOWN, TEMPORARY
from sms.transport import SubmitResult, Transport

log = logging.getLogger(__name__)
BATCH_S = 0.02
CHORES_S = 1.0  # how often a dispatcher takes back a dead one's work and mends late receipts
INTAKE = 500  # events expanded per transaction
Answer = tuple[outbox.Submitted | None, outbox.Receipt | None]  # one or the other


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        port: BusinessPort,
        transport: Transport[Any],
        worker: str,
    ) -> None:
        """`port` says whom to text; `transport` cuts each text into its parts and sends
        them (SMPP, CMPP: segments; Twilio: the whole text, one id)."""
        self.settings = settings
        self.voice_off = voice_unavailable(settings)  # notice calls cannot be placed: why
        policy = settings.destinations
        self.intake = partial(intake, wechat=settings.wechat, voice_off=self.voice_off, destinations=policy)
        self.sms = settings.sms
        self.destinations = DestinationPolicy(settings.destinations, settings.sms.country_code)
        self.store = store
        self.port = port
        self.transport = transport
        self.window = transport.capacity
        self.id_base = transport.id_base
        # A receipt that comes before its submit_sm_resp finds it among the next few
        # submissions: no more than a window's are in flight (twice that, for the recording).
        self.receipt_ids = ReceiptIds(self.id_base, transport.receipt_id_base, 2 * self.window)
        self.worker = worker
        self.wake = asyncio.Event()
        self.sending: set[asyncio.Task[None]] = set()
        self.helpers: dict[str, asyncio.Task[None]] = {}
        self.sent_segments = 0
        # One group commit for what the SMSC answers: submissions (waited for, so a message
        # holds its window slot until recorded: a crash can leave at most a window sent
        # but unrecorded) and receipts (waited for: the deliver_sm is answered once stored).
        # Submissions are written first, so a receipt finds a segment recorded at the same
        # moment (across processes, rematch_receipts mends what two transactions miss).
        # While stopping, a store still away after 5 s is given up (within serve's 10 s).
        self.answers: GroupCommit[Answer] = GroupCommit(_record(store), BATCH_S, "answers", give_up_s=5.0)
        self.inflight = asyncio.Semaphore(self.window)
        self.claimed = 0  # messages claimed by us and not finished
        self.beat_at = utcnow()
        # A step runs on every wake-up (a send finished: room to claim more); it looks for
        # instant events when told of new events (LISTEN) or every `sms.poll_s`, and does
        # its chores every CHORES_S. Batch events are expanded beside it (`expand_batches`).
        self.events_at = 0.0
        self.new_events = False
        self.chores_at = 0.0
        self.batch_events = asyncio.Event()

    # --- the loop -------------------------------------------------------------------------

    def _start_helpers(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """The group commit of answers and batch intake, each started once: a `run` that
        crashed and is started again by the supervisor finds them running (the answers of
        sends in flight are still being written) and starts none twice."""
        wanted: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "sms-answers": lambda: self.answers.run(stop),
            "sms-batch-intake": lambda: self.expand_batches(stop),
        }
        for name, make in wanted.items():
            task = self.helpers.get(name)
            if task is None or task.done():
                if task is not None and not task.cancelled() and task.exception() is not None:
                    log.error("dispatcher %s: %s had stopped (%r); started again", self.worker, name, task.exception())
                self.helpers[name] = asyncio.create_task(make(), name=name)
        return list(self.helpers.values())

    async def run(self, stop: asyncio.Event) -> None:
        flushers = self._start_helpers(stop)
        while not stop.is_set():
            for helper in flushers:  # one that failed fails the run: the supervisor starts both again
                if helper.done() and not helper.cancelled() and helper.exception() is not None:
                    raise DispatcherFault(f"{helper.get_name()} stopped: {helper.exception()!r}")
            self.wake.clear()  # before the step: a wake-up during it means "step again"
            try:
                await self.step()
            except StoreUnavailable as exc:
                log.error("dispatcher %s: store unavailable (%s); retrying", self.worker, exc)
                await asyncio.sleep(1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.sms.poll_s)
        if self.sending:
            await asyncio.gather(*self.sending, return_exceptions=True)
        await asyncio.gather(*flushers)

    def events_committed(self) -> None:
        """The business system committed events (PostgreSQL's NOTIFY): look at once."""
        self.new_events = True
        self.wake.set()
        self.batch_events.set()

    async def step(self) -> int:
        """Instant events to messages, then due messages out (instant ones first); returns
        how many were claimed."""
        now = utcnow()
        tick = asyncio.get_running_loop().time()
        if tick >= self.chores_at:
            self.chores_at = tick + CHORES_S
            await self._chores(now)
        claimed = 0
        if self.new_events or tick >= self.events_at:
            self.new_events = False
            self.events_at = tick + self.sms.poll_s
            zone = self.settings.queue.timezone
            take = partial(self.intake, passes=(True,))
            taken = await asyncio.to_thread(take, self.store, self.port, self.sms, zone, INTAKE, now)
            if taken.messages:
                claimed += await self._claim(now, instant_only=True)  # into the room kept for them
        return claimed + await self._claim(now)

    async def expand_batches(self, stop: asyncio.Event) -> None:
        """Batch events to messages, INTAKE at a time, beside the steps: a batch's expansion
        never holds up an instant reminder's. Looks when told of new events, or every
        `sms.poll_s`, and at once again while a batch has more."""
        zone = self.settings.queue.timezone
        while not stop.is_set():
            self.batch_events.clear()
            try:
                take = partial(self.intake, passes=(False,))
                taken = await asyncio.to_thread(take, self.store, self.port, self.sms, zone, INTAKE, utcnow())
            except StoreUnavailable as exc:
                log.error("dispatcher %s: batch intake: store unavailable (%s); retrying", self.worker, exc)
                await asyncio.sleep(1.0)
                continue
            except Exception:
                # A fault of ours must not end batch intake for good while the rest runs on.
                log.exception("dispatcher %s: batch intake failed; retrying in 1 s", self.worker)
                await asyncio.sleep(1.0)
                continue
            if taken.messages:
                self.wake.set()  # claim them now, not at the next poll
            if taken.events < INTAKE:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.batch_events.wait(), self.sms.poll_s)

    async def _chores(self, now: dt.datetime) -> None:
        """Take back the messages of a dispatcher that died; the heartbeat and receipt
        timeouts (every third of `reclaim_after_s`); receipts kept for a submission recorded
        since by another transaction."""
        stale = dt.timedelta(seconds=self.sms.reclaim_after_s)
        await asyncio.to_thread(outbox.reclaim_stale, self.store, stale, now)
        if now - self.beat_at >= dt.timedelta(seconds=self.sms.reclaim_after_s / 3):
            self.beat_at = now
            await asyncio.to_thread(outbox.heartbeat, self.store, self.worker, now)
            timeout = dt.timedelta(seconds=self.sms.receipt_timeout_s)
            await asyncio.to_thread(outbox.expire_unreceipted, self.store, timeout, now)
        async with self.answers.lock:  # beside our own writer, not between its records
            await asyncio.to_thread(outbox.rematch_receipts, self.store, now)

    async def _claim(self, now: dt.datetime, *, instant_only: bool = False) -> int:
        # Claim no more than the window holds: what a dispatcher has claimed is at most what
        # it may have on the wire, so if it dies, no more than the transport's window of messages are
        # reclaimed as possible duplicates. Claims of all kinds leave a tenth of that free
        # for instant reminders, claimed on their own as soon as they are made (and on the
        # wire, batch segments keep to their `smpp.batch_share` of the window).
        # A claim reads and locks rows: when the window is nearly full, wait until a tenth
        # of it is free rather than claiming one message per finished send.
        most = min(self.sms.claim_batch, self.window)
        if instant_only:
            room = most - self.claimed
        else:
            room = most - most // 10 - self.claimed
            if self.claimed and room < most // 10:
                return 0
        if room <= 0:
            return 0
        stale = dt.timedelta(seconds=self.sms.reclaim_after_s)
        claim = partial(outbox.claim_due, reclaim=False, instant_only=instant_only)
        due = await asyncio.to_thread(claim, self.store, self.worker, room, stale, now)
        by_recipient: dict[str, list[Due]] = defaultdict(list)
        for message in due:
            by_recipient[message.recipient].append(message)
        self.claimed += len(due)
        # Instant messages first: their sends reach the transport (and its queue) first.
        for messages in sorted(by_recipient.values(), key=lambda ms: min(m.priority for m in ms)):
            task = asyncio.create_task(self._send_in_order(messages))
            self.sending.add(task)
            task.add_done_callback(self._done)
        return len(due)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.sending.discard(task)
        self.wake.set()  # room for more
        if not task.cancelled() and task.exception() is not None:
            log.error("dispatcher %s: a send failed: %r", self.worker, task.exception())

    async def _send_in_order(self, messages: list[Due]) -> None:
        done = 0
        try:
            for message in messages:
                async with self.inflight:
                    await self.send(message)
                done += 1
        except BaseException as exc:
            # Cancelled, or a fault of ours: the unfinished messages must not stay claimed
            # (our heartbeat would keep them from everyone); back to the queue, flagged, and
            # the task still fails loudly (`_done` logs it).
            unfinished = [m.id for m in messages[done:]]
            await asyncio.shield(
                asyncio.to_thread(outbox.release, self.store, unfinished, f"dispatcher fault: {exc!r}")
            )
            raise
        finally:
            self.claimed -= len(messages)

    # --- one message ----------------------------------------------------------------------

    async def send(self, message: Due) -> None:
        if (refused := self.destinations.refusal(message.recipient)) is not None:
            await self._refused(message, refused)
            return
        parts = self.transport.parts(message.text, message.id, message.category)
        accepted: list[tuple[int, str]] = []
        urgent = message.priority == 0
        for seq, part in enumerate(parts, 1):
            if seq in message.accepted:
                continue  # the SMSC has it from an earlier attempt
            attempt = partial(self.transport.submit, message.recipient, part, urgent)
            result = await self._submit_segment(message, attempt, accepted)
            if result is None:
                return  # the message went back to the queue or failed; recorded already
            accepted.append((seq, canonical(result, self.id_base)))
        await self.answers.put(((message.id, accepted, len(parts)), None), urgent=urgent)
        if again := self._learn_receipt_base(accepted):
            await asyncio.gather(*(self.answers.put((None, receipt)) for receipt in again))

    def _learn_receipt_base(self, accepted: list[tuple[int, str]]) -> list[outbox.Receipt]:
        """While the receipts' base is being learnt: the segments recorded, and once it is,
        the receipts recorded under another reading, to record again (and the log says so)."""
        ids = self.receipt_ids
        if ids.base is not None and ids.learnt is None:
            return []
        for _, smsc_id in accepted:
            ids.submitted(smsc_id)
        return self._receipt_base_learnt()

    def _receipt_base_learnt(self) -> list[outbox.Receipt]:
        ids = self.receipt_ids
        if ids.learnt is None:
            return []
        again = ids.corrections()
        log.info(
            "dispatcher %s: receipts name message ids in base %d, learnt from the first ones (votes: %s; "
            "%d recorded again under it); smpp.receipt_id_base would override it",
            self.worker,
            ids.base,
            ids.learnt,
            len(again),
        )
        ids.learnt = None
        return again

    async def _submit_segment(
        self, message: Due, attempt: Callable[[], Awaitable[SubmitResult]], accepted: list[tuple[int, str]]
    ) -> str | None:
        """The SMSC's id for the segment, or None once the message has been requeued or failed
        (recording the segments `accepted` so far, which are not sent again)."""
        for _ in range(self.sms.max_resubmits):
            result = await attempt()
            self.sent_segments += 1
            if result.lost and result.sent and message.attempts >= self.sms.max_attempts:
                reason = f"dead letter after {message.attempts} attempts: {result.detail or 'link lost'}"
                log.warning("message %d to %s: %s", message.id, mask_phone(message.recipient), reason)
                await asyncio.to_thread(outbox.fail, self.store, message.id, reason, utcnow(), accepted)
                return None
            if result.lost:
                await asyncio.to_thread(
                    partial(outbox.requeue, suspect=result.sent, accepted=accepted),
                    self.store,
                    message.id,
                    utcnow(),
                    result.detail or "link lost before the SMSC answered",
                )
                return None
            if result.status == 0 and result.smsc_id:
                return result.smsc_id
            if result.status in SLOW_DOWN:
                continue  # the transport paused; send it again
            error = result.detail or f"SMSC answered 0x{result.status:02X}"
            if result.status in TEMPORARY:
                await self._refused_for_now(message, error, accepted)
            else:
                log.warning("message %d to %s failed: %s", message.id, mask_phone(message.recipient), error)
                await asyncio.to_thread(outbox.fail, self.store, message.id, f"{error} (permanent)", utcnow(), accepted)
            return None
        await self._refused_for_now(message, "still refused after every resubmission", accepted)
        return None

    async def _refused(self, message: Due, refused: DestinationRefused) -> None:
        """The last check before the submit (intake refused it already, unless the policy
        changed or a path skipped it): failed with the rule, on record, never sent."""
        where = f"sms submit of message {message.id}"
        await asyncio.to_thread(refuse, self.store, refused, where=where, actor="sms")
        reason = f"destination refused ({refused.rule}): {refused}"
        await asyncio.to_thread(outbox.fail, self.store, message.id, reason, utcnow(), [])

    async def _refused_for_now(self, message: Due, error: str, accepted: list[tuple[int, str]]) -> None:
        """Refused for now by the SMSC (never accepted): back to the queue after a short
        delay, which doubles with each refusal up to 32 times `sms.retry_base_s`; the attempt
        is given back; after `sms.max_refusals` refusals, a dead letter."""
        refusals = message.refusals + 1
        if refusals >= self.sms.max_refusals:
            reason = f"dead letter after {refusals} temporary refusals: {error}"
            log.warning("message %d to %s: %s", message.id, mask_phone(message.recipient), reason)
            await asyncio.to_thread(outbox.fail, self.store, message.id, reason, utcnow(), accepted)
            return
        delay = self.sms.retry_base_s * 2 ** min(refusals - 1, 5)
        at = utcnow() + dt.timedelta(seconds=delay)
        requeue = partial(outbox.requeue, refund=True, accepted=accepted)
        await asyncio.to_thread(requeue, self.store, message.id, at, f"{error}; refused for now, again in {delay:g} s")

    # --- receipts -------------------------------------------------------------------------

    async def on_receipt(self, inbound: Inbound) -> None:
        try:
            receipt = parse_receipt(inbound.short_message.decode("ascii", errors="replace"), inbound.receipted_id)
            if receipt.state is None:
                return  # intermediate (ACCEPTD, ENROUTE): a final one follows
            smsc_id = self.receipt_ids.key(receipt.message_id, receipt.state.value)
        except BadReceipt as exc:
            log.error("unreadable receipt from %s: %s", mask_phone(inbound.source), exc)
            return
        # Waited for: the transport answers the deliver_sm only once the receipt is stored.
        await self.answers.put((None, (smsc_id, receipt.state.value)))
        if again := self._receipt_base_learnt():
            await asyncio.gather(*(self.answers.put((None, receipt)) for receipt in again))


def _record(store: Store) -> Callable[[list[Answer]], None]:
    def write(batch: list[Answer]) -> None:
        submitted = [s for s, _ in batch if s is not None]
        receipts = [r for _, r in batch if r is not None]
        outbox.record(store, submitted, receipts, utcnow())

    return write
