"""The CMPP transport (`sms.transport = "cmpp"`): China Mobile's CMPP 2.0/3.0 to an SMS
gateway (ISMG), over `cmpp.links` links (`sms.cmpp_link`) with `cmpp.window` SUBMITs
unanswered on each.

What the dispatcher sees (`sms.transport.Transport`):

- parts: ASCII (Msg_Fmt 0) or UCS2 (8) with the 6-octet concatenation header, 140 octets
  at most per part (`sms.cmpp_text`), sent from `cmpp.src_id` and the category's extension;
- answers: SUBMIT_RESP's Msg_Id (its 22-digit canonical form, `sms.cmpp_msgid`) when
  Result is 0; Result 8 (flow control) pauses that link for `cmpp.flow_pause_s` and is
  ESME_RTHROTTLED to the dispatcher, which sends the part again; the other Results are
  temporary (ESME_RSYSERR: queued again later) or permanent (ESME_RSUBMITFAIL: failed), as
  `sms.cmpp_results` reads the spec, with "CMPP Result n (meaning)" as the reason kept on
  the message and shown by `hotline sms status`; a link lost before the answer: lost.
- status reports (DELIVER, Registered_Delivery 1) become receipts, and residents' texts
  (0) MO texts, in the form the SMPP path hands on (`sms.pdu.Inbound`), so they go through
  the same dead letters, receipt matching and keyword handling (`sms.service`). A report
  may come before its SUBMIT_RESP: it is kept until the part is recorded (`sms.outbox`).

Instant reminders (`urgent`) go out before batch parts, and batch parts fill at most
`cmpp.batch_share` of the windows, as over SMPP.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from core.masking import mask_phone
from core.settings import CmppSettings
from sms.bind_health import LinkState
from sms.cmpp_deliver import Deliver
from sms.cmpp_link import RESULT_RESEND_LATER, CmppLink
from sms.cmpp_pdu import MSG_FMT_ASCII, MSG_FMT_GBK, MSG_FMT_UCS2, Submit, SubmitResp
from sms.cmpp_results import FLOW_CONTROL, OK, TEMPORARY, Version, outcome
from sms.cmpp_text import Part, split_text
from sms.encoding import DATA_CODING_UCS2
from sms.errors import BadCmppPdu, CmppFieldTooLong, CmppLinkGone, CmppTextTooLong
from sms.link_status import LinkReport
from sms.pdu import Inbound
from sms.receipts import ACCEPTD, STAT_WORDS
from sms.status import ESME_RSUBMITFAIL, ESME_RSYSERR, ESME_RTHROTTLED
from sms.transport import SubmitResult

log = logging.getLogger(__name__)
UNSENT = SubmitResult(None, detail="not sent: the CMPP transport stopped", sent=False)
STOP_WAIT_S = 3.0  # for every link's TERMINATE (each waits at most 2 s: sms.cmpp_link)
# SMPP data_coding for what a resident's text's Msg_Fmt holds: 3 is Latin-1, of which
# ASCII is a part; GBK is read here and handed on as UCS2.
DATA_CODING = {MSG_FMT_ASCII: 0x03, MSG_FMT_UCS2: DATA_CODING_UCS2, MSG_FMT_GBK: DATA_CODING_UCS2}
RECEIPT_ESM_CLASS = 0x04  # SMPP 3.4 §5.2.12: a delivery receipt
UDHI_ESM_CLASS = 0x40


@dataclass(frozen=True)
class CmppPart:
    msg_fmt: int
    part: Part
    src_id: str


class CmppTransport:
    """The CMPP `sms.transport.Transport`, and the gateway's residents' texts and reports."""

    id_base = 0  # Msg_Id's canonical form is compared as text
    receipt_id_base: int | None = None

    def __init__(self, settings: CmppSettings, on_deliver: Callable[[Inbound], Awaitable[None]]) -> None:
        self.settings = settings
        self.on_deliver = on_deliver
        self.version = Version.V20 if settings.version == "2.0" else Version.V30
        self.capacity = settings.links * settings.window
        self.batch_cap = max(1, int(self.capacity * settings.batch_share))
        self.links = [
            CmppLink(n, settings, self.version, self._delivered, self._link_changed)
            for n in range(1, settings.links + 1)
        ]
        self.changed = asyncio.Event()  # a link's state changed (sms.link_status publishes it)
        self.room = asyncio.Condition()  # a link came up, or a window slot or a pause ended
        self.batch_inflight = 0
        self.urgent_waiting = 0
        self.refused = 0  # SUBMITs refused since the last accepted one
        self.last_refusal: str | None = None
        self._since = dt.datetime.now(dt.UTC)
        self._state = LinkState.CONNECTING
        self._stop = asyncio.Event()
        self._stopped = False
        self._tasks: list[asyncio.Task[None]] = []
        self._wakers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for link in self.links:
            task = asyncio.create_task(link.run(self._stop), name=f"cmpp-link-{link.number}")
            task.add_done_callback(partial(self._ended, link))
            self._tasks.append(task)

    def _ended(self, link: CmppLink, task: asyncio.Task[None]) -> None:
        """A link's task that failed (a fault of ours): loud in the log and in `hotline sms
        status`, and its submits go to the other links."""
        if task.cancelled() or (fault := task.exception()) is None:
            return
        log.error("%s stopped by a fault: %r", link.name, fault, exc_info=fault)
        link.fatal = f"stopped by a fault: {fault!r}"
        link.down(link.fatal)

    async def stop(self) -> None:
        """TERMINATE every link (after what is in flight is answered, for at most a second),
        and answer every submit still waiting: unsent, or lost when it had gone out."""
        self._stopped = True
        self._stop.set()
        await self._wake()
        if self._tasks:
            _done, late = await asyncio.wait(self._tasks, timeout=STOP_WAIT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for link in self.links:
            if link.up or link.inflight:
                link.down("stopped")
        self._link_changed()

    @property
    def failed(self) -> str | None:
        """Why no link will connect again (Status 3), when none will."""
        fatal = [link.fatal for link in self.links if link.fatal is not None]
        return fatal[0] if fatal and len(fatal) == len(self.links) else None

    # --- the link's state for `hotline sms status` ------------------------------------------

    def report(self) -> LinkReport:
        up = [link for link in self.links if link.up]
        if self._stopped or self.failed:
            state = LinkState.STOPPED
        elif up:
            now = asyncio.get_running_loop().time()
            paused = all(link.paused_until > now for link in up)
            state = LinkState.THROTTLED if paused else (LinkState.REFUSING if self.refused else LinkState.BOUND)
        else:
            state = LinkState.REBINDING if any(link.connects for link in self.links) else LinkState.CONNECTING
        if state is not self._state:
            self._state, self._since = state, dt.datetime.now(dt.UTC)
        details = [f"{len(up)} of {len(self.links)} links up"]
        details += [f"link {link.number}: {link.detail}" for link in self.links if link.detail]
        if self.refused and self.last_refusal:
            details.append(f"{self.refused} SUBMIT refused, last {self.last_refusal}")
        s = self.settings
        address = f"cmpp {s.version} {s.host}:{s.port}"
        return LinkReport(state, address, "; ".join(details), self._since, sum(link.drops for link in self.links))

    def _link_changed(self) -> None:
        self.changed.set()
        with contextlib.suppress(RuntimeError):  # no running loop: nobody waits
            task = asyncio.get_running_loop().create_task(self._wake())
            self._wakers.add(task)
            task.add_done_callback(self._wakers.discard)

    async def _wake(self) -> None:
        async with self.room:
            self.room.notify_all()

    # --- sending --------------------------------------------------------------------------------

    def parts(self, text: str, reference: int, category: str | None = None) -> list[CmppPart]:
        """ASCII or UCS2 parts of at most 140 octets, the 8-bit reference from `reference`."""
        split = split_text(text, reference & 0xFF)
        src_id = self.settings.source_for(category)
        return [CmppPart(split.msg_fmt, part, src_id) for part in split.parts]

    def _submit_of(self, recipient: str, part: CmppPart) -> Submit:
        s = self.settings
        return Submit(
            destinations=(recipient,),
            content=part.part.content,
            msg_fmt=part.msg_fmt,
            src_id=part.src_id,
            msg_src=s.msg_src or s.sp_id,
            service_id=s.service_id,
            registered_delivery=1,
            pk_total=part.part.pk_total,
            pk_number=part.part.pk_number,
            tp_udhi=part.part.tp_udhi,
            fee_user_type=s.fee_user_type,
            fee_terminal_id=s.fee_terminal_id,
            fee_type=s.fee_type,
            fee_code=s.fee_code,
        )

    async def submit(self, recipient: str, part: CmppPart, urgent: bool = False) -> SubmitResult:
        """Send one part on a link with room in its window, and wait for its SUBMIT_RESP."""
        submit = self._submit_of(recipient, part)
        while True:
            link = await self._take(urgent)
            if link is None:
                return UNSENT
            try:
                resp = await link.submit(submit)
            except CmppLinkGone:
                continue  # down between the choice and the write: nothing sent, another link
            except (CmppFieldTooLong, CmppTextTooLong) as exc:
                log.warning("part to %s not encodable: %s", mask_phone(recipient), exc)
                return SubmitResult(ESME_RSUBMITFAIL, detail=f"not sendable over CMPP: {exc}")
            finally:
                await self._give(link, urgent)
            if resp is None:
                return SubmitResult(None, detail=f"{link.name} lost before SUBMIT_RESP")
            return self._answered(link, resp)

    def _answered(self, link: CmppLink, resp: SubmitResp) -> SubmitResult:
        result = outcome(resp.result, self.version)
        if result.kind == OK:
            if self.refused:
                self.refused, self.last_refusal = 0, None
                self._link_changed()
            return SubmitResult(0, str(resp.msg_id))
        detail = f"CMPP Result {result.code} ({result.meaning})"
        self.refused += 1
        self.last_refusal = detail
        self._link_changed()
        if result.kind == FLOW_CONTROL:
            link.paused_until = asyncio.get_running_loop().time() + self.settings.flow_pause_s
            return SubmitResult(ESME_RTHROTTLED, detail=detail)
        if result.kind == TEMPORARY:
            return SubmitResult(ESME_RSYSERR, detail=detail)
        return SubmitResult(ESME_RSUBMITFAIL, detail=detail)

    async def _take(self, urgent: bool) -> CmppLink | None:
        """A link that is up, not paused, with room in its window (the emptiest); urgent
        parts first, batch parts within their share. None once stopped."""
        loop = asyncio.get_running_loop()
        async with self.room:
            self.urgent_waiting += urgent
            try:
                while not self._stopped:
                    now = loop.time()
                    ready = [link for link in self.links if link.up and link.reserved < self.settings.window]
                    free = [link for link in ready if link.paused_until <= now]
                    batch_ok = urgent or (not self.urgent_waiting and self.batch_inflight < self.batch_cap)
                    if free and batch_ok:
                        link = min(free, key=lambda k: k.reserved)
                        link.reserved += 1
                        self.batch_inflight += not urgent
                        return link
                    resume = [link.paused_until - now for link in ready if link.paused_until > now]
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.room.wait(), min(resume) if resume else None)
                return None
            finally:
                self.urgent_waiting -= urgent

    async def _give(self, link: CmppLink, urgent: bool) -> None:
        async with self.room:
            link.reserved -= 1
            self.batch_inflight -= not urgent
            self.room.notify_all()

    # --- what the gateway delivers ------------------------------------------------------------

    async def _delivered(self, deliver: Deliver) -> int:
        """DELIVER_RESP's Result: 0 once handled (stored, or kept as a dead letter)."""
        try:
            inbound = self.inbound(deliver)
        except BadCmppPdu as exc:
            log.error("unreadable CMPP status report (%s), answered Result 1 and dropped", exc)
            return 1
        try:
            await self.on_deliver(inbound)
        except Exception as exc:
            # Not stored: answered so that the gateway sends it again (no traceback here:
            # on_deliver counts the tries and logs one with the dead letter, sms.inbound).
            log.warning("CMPP DELIVER not handled (%r); answered Result 8 for the gateway to resend", exc)
            return RESULT_RESEND_LATER
        return 0

    def inbound(self, deliver: Deliver) -> Inbound:
        """A DELIVER as the SMPP path's deliver_sm: a receipt in SMPP 3.4 Appendix B's words,
        or a resident's text with its UDH (GBK turned into UCS2)."""
        if deliver.is_report:
            report = deliver.report(self.version)
            stat, err = report.stat, "000"
            if stat not in STAT_WORDS and stat not in (ACCEPTD, "ENROUTE"):
                stat, err = "UNDELIV", stat  # a gateway's own code (MK:0005...): not delivered, kept as err
            text = (
                f"id:{report.msg_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
                f"submit date:{report.submit_time} done date:{report.done_time} stat:{stat} err:{err}"
            )
            return Inbound(
                report.dest_terminal_id, deliver.dest_id, RECEIPT_ESM_CLASS, 0, text.encode("ascii", "replace"),
                str(report.msg_id),
            )  # fmt: skip
        content = deliver.content
        if deliver.msg_fmt == MSG_FMT_GBK:
            cut = content[0] + 1 if deliver.tp_udhi and content else 0
            content = content[:cut] + content[cut:].decode("gbk", errors="replace").encode("utf-16-be")
        coding = DATA_CODING.get(deliver.msg_fmt, 0x04)  # others: 8-bit binary, read as Latin-1
        esm_class = UDHI_ESM_CLASS if deliver.tp_udhi else 0
        return Inbound(deliver.src_terminal_id, deliver.dest_id, esm_class, coding, content, None)
