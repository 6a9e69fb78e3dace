"""`hotline smsc-sim`: an SMPP 3.4 SMSC for tests, `make run` and the benchmark.

Built on `smpp34`'s Server (a Rust codec independent of the gateway's client), it accepts
binds, answers `submit_sm`, sends delivery receipts and mobile-originated messages, and
misbehaves on purpose when told to (STYLE 9: fault injection by explicit settings, never
by message text):

- a TPS cap: submits beyond `tps` in any one-second window get ESME_RTHROTTLED (0x58);
- errors: `fail_every={0x14: 7}` answers every 7th submit with ESME_RMSGQFUL,
  `error_rates={0x08: 0.01}` answers 1 % at random (seeded) with ESME_RSYSERR;
- receipts after `receipt_delay_s`, with final states drawn from `outcomes`, quoting the
  message id in `receipt_id_format` (hex, hex-lower or decimal; zero-padded to
  `receipt_id_pad` digits) while `submit_sm_resp` uses `id_format`; `early_receipts`
  sends a receipt before the `submit_sm_resp`;
- `drop()` aborts every connection at once (TCP, no unbind) and refuses new ones for
  `down_s`;
- `hang()` (or `hang_after` submits) leaves the current binds half-dead, as an SMSC that
  restarted behind a connection a firewall keeps open: their TCP connections stay open,
  nothing sent on them is read or answered, and a new bind is served normally;
  `unhang()` resets those connections at last (what a client without timers waits for);
- `sicken()` (or `sick_after` accepted segments) leaves the current binds sick, as an SMSC
  that restarted behind connections that outlived it: each stays open and answers every
  submit_sm at once with ESME_RMSGQFUL (0x14), enquire_link as ever, and gets no receipts
  or MO any more, while a new bind is served normally;
- `inject_mo(...)` sends a resident's text (split with a UDH when long).

As a real SMSC does, it refuses with ESME_RINVMSGLEN a short_message whose user data
would exceed GSM 03.40's 140 octets (counted here, not with the gateway's codec).

smpp34's Server stops listening on `stop()` but keeps its sessions, so clients connect to
a small TCP relay in front of it, which is what `drop()` cuts and `hang()` stops relaying. smpp34's Server does not
expose the bind password, so every system_id may bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

import smpp34

from sms.encoding import encode
from sms.receipts import receipt_text
from sms.status import ESME_RINVMSGLEN, ESME_RMSGQFUL, ESME_ROK, ESME_RTHROTTLED

log = logging.getLogger(__name__)
RELAY_CHUNK = 65536
ESM_RECEIPT = 0x04  # esm_class bits 2-5 = 0001: SMSC delivery receipt (SMPP 3.4 §5.2.12)
ESM_UDHI = 0x40  # esm_class bit 6: the short_message starts with a UDH (§5.2.12)
USER_DATA_OCTETS = 140  # TP-UDL's limit, UDH included (3GPP TS 23.040 §9.2.3.16)
SEPTET_CODINGS = frozenset({0x00, 0x01})  # SMSC default (GSM 03.38 here) and IA5: 7-bit on air


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = "smsc-sim"
    tps: float | None = None
    fail_every: dict[int, int] = field(default_factory=dict)
    error_rates: dict[int, float] = field(default_factory=dict)
    receipt_delay_s: float = 0.2
    outcomes: dict[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    id_format: str = "hex"  # hex | hex-lower | dec
    receipt_id_format: str = "dec"
    receipt_id_pad: int = 0  # receipts' ids zero-padded to this many digits
    early_receipts: bool = False
    resp_delay_s: float = 0.0  # answer each submit_sm this late (to see a client's window)
    down_s: float = 1.0
    hang_after: int | None = None  # hang() once this many submit_sm have been answered
    sick_after: int | None = None  # sicken() once this many segments have been accepted
    seed: int = 12333


@dataclass(frozen=True)
class Submitted:
    """What the SMSC received, for tests: one per submit_sm, accepted or not."""

    destination: str
    source: str
    data_coding: int
    esm_class: int
    short_message: bytes
    status: int
    message_id: str | None
    at: float


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.submitted: list[Submitted] = []
        self.counts: Counter[str] = Counter()
        self.esmes: dict[str, smpp34.Esme] = {}
        self._server: smpp34.Server | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._window_start = 0.0
        self._window_count = 0
        self._seq = 0
        self._mo_ref = 0
        self.held: dict[str, list[tuple[str, str, str, str]]] = {}  # receipts no bind could take
        self.outstanding = 0  # submits received and not answered yet
        self.max_outstanding = 0
        self._inner_port = 0
        self._bind_seen = asyncio.Event()
        self._relay: asyncio.Server | None = None
        self._links: list[_Link] = []
        self.hung = asyncio.Event()  # set once hang() has run
        self.sick: set[str] = set()  # sessions that answer every submit_sm with 0x14
        self._sessions: set[str] = set()  # that submitted (their bind event may not be read yet)

    # --- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._inner_port = _free_port()
        self._server = smpp34.Server("127.0.0.1", self._inner_port, system_id=self.config.system_id)
        await self._server.start()
        self._loop_task = asyncio.create_task(self._serve(self._server), name="smsc-sim")
        self._relay = await asyncio.start_server(self._connect, self.config.host, self.config.port)
        log.info("SMSC simulator listening on %s:%d", self.config.host, self.config.port)

    async def bound(self, count: int = 1, timeout_s: float = 5.0) -> None:
        """Wait until `count` ESMEs have bound (their bind reached the SMSC loop)."""
        async with asyncio.timeout(timeout_s):
            while len(self.esmes) < count:
                self._bind_seen.clear()
                await self._bind_seen.wait()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._inner_port)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.append(link)
        link.pumps = [asyncio.create_task(_pump(reader, up_writer)), asyncio.create_task(_pump(up_reader, writer))]
        await asyncio.gather(*link.pumps, return_exceptions=True)
        if link in self._links and not link.hung:
            self._links.remove(link)

    def _cut(self) -> None:
        for link in self._links:
            link.abort()
        self._links.clear()

    def hang(self) -> int:
        """The current binds go half-dead: their TCP connections stay open, and nothing sent
        on them is read or answered any more (the SMSC's side of each is gone, so it takes
        no more of their submits and holds their receipts for a new bind). Returns how many."""
        hung = 0
        for link in self._links:
            if not link.hung:
                link.hang()
                hung += 1
        self.counts["hangs"] += 1
        self.hung.set()
        log.info("SMSC simulator: %d bind(s) hung (connections kept open, nothing answered)", hung)
        return hung

    def sicken(self) -> int:
        """The current binds turn sick: open, answering every submit_sm with ESME_RMSGQFUL,
        taking nothing; a new bind is served normally. Returns how many."""
        fresh = (set(self.esmes) | self._sessions) - self.sick
        self.sick |= fresh
        self.counts["sickened"] += 1
        log.info("SMSC simulator: %d bind(s) sick (every submit_sm answered 0x14)", len(fresh))
        return len(fresh)

    def unhang(self) -> int:
        """Reset the hung connections at last; `hang_after` fires no more. Returns how many."""
        self.config.hang_after = None
        hung = [link for link in self._links if link.hung]
        for link in hung:
            link.abort()
            self._links.remove(link)
        return len(hung)

    async def stop(self) -> None:
        if self._relay is not None:
            self._relay.close()
            self._cut()
            await self._relay.wait_closed()
            self._relay = None
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.stop()
            self._server = None
        self.esmes.clear()

    async def drop(self) -> None:
        """Abort every connection at once (no unbind); accept new ones after `down_s`."""
        self.counts["drops"] += 1
        log.info("SMSC simulator: dropping all connections for %.1f s", self.config.down_s)
        assert self._relay is not None
        self._relay.close()
        self._cut()
        await self._relay.wait_closed()
        await asyncio.sleep(self.config.down_s)
        self._relay = await asyncio.start_server(self._connect, self.config.host, self.config.port)

    async def _serve(self, server: smpp34.Server) -> None:
        while True:
            event = await server.next()
            if isinstance(event, smpp34.Esme):
                self.esmes[event.session_id] = event
                self.counts["binds"] += 1
                self._bind_seen.set()
                if self.held.get(event.system_id):
                    self._spawn(self._release_held(event))
                log.info("SMSC simulator: %s bound (%s)", event.system_id, event.session_id)
            elif isinstance(event, smpp34.Unbound):
                self.esmes.pop(event.session_id, None)
                self.sick.discard(event.session_id)
                self._sessions.discard(event.session_id)
                self.counts["unbinds"] += 1
            elif isinstance(event, smpp34.SubmitSmEvent):
                self._on_submit(event)

    # --- submit_sm -------------------------------------------------------------------------

    def _verdict(self) -> int:
        self._seq += 1
        for status, every in self.config.fail_every.items():
            if every > 0 and self._seq % every == 0:
                return status
        for status, rate in self.config.error_rates.items():
            if self.random.random() < rate:
                return status
        if self.config.tps is not None:
            now = time.monotonic()
            if now - self._window_start >= 1.0:
                self._window_start, self._window_count = now, 0
            if self._window_count >= self.config.tps:
                return ESME_RTHROTTLED
            self._window_count += 1
        return ESME_ROK

    def _id(self, n: int, form: str, pad: int = 0) -> str:
        text = {"hex": f"{n:X}", "hex-lower": f"{n:x}"}.get(form, str(n))
        return text.rjust(pad, "0")

    def _on_submit(self, event: smpp34.SubmitSmEvent) -> None:
        if self.config.hang_after is not None and len(self.submitted) >= self.config.hang_after:
            self.config.hang_after = None
            self.hang()
            return  # its session is gone: never answered
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        if self.config.resp_delay_s > 0:
            self._spawn(self._answer_later(event))
        else:
            self._answer(event)

    async def _answer_later(self, event: smpp34.SubmitSmEvent) -> None:
        await asyncio.sleep(self.config.resp_delay_s)
        self._answer(event)

    def _answer(self, event: smpp34.SubmitSmEvent) -> None:
        self.outstanding -= 1
        too_long = user_data_octets(event.data_coding, event.esm_class, event.short_message) > USER_DATA_OCTETS
        self._sessions.add(event.session_id)
        sick = event.session_id in self.sick
        status = ESME_RMSGQFUL if sick else ESME_RINVMSGLEN if too_long else self._verdict()
        number = self.counts["accepted"] + 1
        message_id = self._id(number, self.config.id_format) if status == 0 else None
        self.submitted.append(
            Submitted(
                event.destination_addr,
                event.source_addr,
                event.data_coding,
                event.esm_class,
                event.short_message,
                status,
                message_id,
                time.monotonic(),
            )
        )
        if status != 0:
            self.counts[f"rejected_0x{status:02X}"] += 1
            event.reject(status)
            return
        self.counts["accepted"] += 1
        if self.config.sick_after is not None and self.counts["accepted"] >= self.config.sick_after:
            self.config.sick_after = None
            self.sicken()  # this segment is accepted all the same; the next ones are not
        wants_receipt = bool(event.registered_delivery & 0x01)
        esme = self.esmes.get(event.session_id)
        if wants_receipt and esme is not None:
            delay = 0.0 if self.config.early_receipts else self.config.receipt_delay_s
            receipt = self._spawn(self._receipt(esme, event.destination_addr, event.source_addr, number, delay))
            if self.config.early_receipts:
                # Answer only once the receipt has gone out: it arrives before its submit_sm_resp.
                receipt.add_done_callback(lambda _t: event.accept(message_id or ""))
                return
        event.accept(message_id or "")

    def _outcome(self) -> str:
        states, weights = zip(*self.config.outcomes.items(), strict=True)
        chosen: str = self.random.choices(states, weights)[0]
        return chosen

    async def _receipt(self, esme: smpp34.Esme, handset: str, short_code: str, number: int, delay: float) -> None:
        await asyncio.sleep(delay)
        stat = self._outcome()
        err = "000" if stat == "DELIVRD" else "001"
        text = receipt_text(self._id(number, self.config.receipt_id_format, self.config.receipt_id_pad), stat, err)
        await self._deliver_receipt(esme.system_id, esme.session_id, (short_code, handset, text, stat))

    async def _deliver_receipt(self, system_id: str, session_id: str, receipt: tuple[str, str, str, str]) -> None:
        """To the session that submitted, else to another bind of the same system_id; held
        for the next bind when there is none, as an SMSC stores receipts."""
        short_code, handset, text, stat = receipt
        healthy = [e for e in self.esmes.values() if e.session_id not in self.sick]
        candidates = [e for e in healthy if e.system_id == system_id and e.can_receive]
        candidates.sort(key=lambda e: e.session_id != session_id)
        for esme in candidates:
            try:
                await esme.deliver_sm(short_code, text.encode("ascii"), source_addr=handset, esm_class=ESM_RECEIPT)
            except smpp34.SmppError as exc:
                log.info("SMSC simulator: receipt not delivered to %s: %s", esme.session_id, exc)
                continue
            self.counts[f"receipts_{stat}"] += 1
            return
        self.counts["receipts_held"] += 1
        self.held.setdefault(system_id, []).append(receipt)

    async def _release_held(self, esme: smpp34.Esme) -> None:
        for receipt in self.held.pop(esme.system_id, []):
            await self._deliver_receipt(esme.system_id, esme.session_id, receipt)

    def _spawn(self, work: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- mobile originated -----------------------------------------------------------------

    async def inject_mo(self, handset: str, short_code: str, text: str) -> int:
        """A resident texts `short_code`; returns how many deliver_sm were sent (per ESME bound)."""
        self._mo_ref = (self._mo_ref + 1) & 0xFFFF
        encoded = encode(text, self._mo_ref)
        sent = 0
        for esme in list(self.esmes.values()):
            if not esme.can_receive or esme.session_id in self.sick:
                continue
            for segment in encoded.segments:
                await esme.deliver_sm(
                    short_code,
                    segment.short_message,
                    source_addr=handset,
                    esm_class=encoded.esm_class,
                    data_coding=encoded.data_coding,
                )
                sent += 1
        if sent:
            self.counts["mo"] += 1
        return sent


def user_data_octets(data_coding: int, esm_class: int, short_message: bytes) -> int:
    """The octets `short_message` takes on the air (TP-UDL, TS 23.040 §9.2.3.16): for a
    7-bit alphabet, sent one septet per octet, the UDH's octets padded with fill bits to a
    septet boundary (§9.2.3.24) and then the septets packed 8 to 7; else as sent."""
    if data_coding not in SEPTET_CODINGS:
        return len(short_message)
    header = min(short_message[0] + 1, len(short_message)) if esm_class & ESM_UDHI and short_message else 0
    septets = (header * 8 + 6) // 7 + len(short_message) - header
    return (septets * 7 + 7) // 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(eq=False)
class _Link:
    """One client connection through the relay: the client's side and the SMSC's."""

    client: asyncio.StreamWriter
    smsc: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    hung: bool = False

    def hang(self) -> None:
        # The SMSC's side goes (smpp34 ends that session); the client's stays open, unread.
        self.hung = True
        for pump in self.pumps:
            pump.cancel()
        self.smsc.transport.abort()

    def abort(self) -> None:
        self.client.transport.abort()
        self.smsc.transport.abort()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes one way until either side closes; then close the other side too (not when
    cancelled: a hung link's client side stays open)."""
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
    writer.close()
