"""`hotline ismg-sim`: a CMPP 2.0 or 3.0 gateway (ISMG) for tests and `make run`.

Written apart from the client codec (`sms/cmpp_pdu.py` and its siblings are not imported
here): it reads and writes the PDUs with `struct` from the spec's field tables itself, so
a misreading in the codec shows up as a disagreement instead of being mirrored.

It authenticates CMPP_CONNECT (Status 3 for a wrong AuthenticatorSource or an unknown
Source_Addr, 4 for a Version other than the one it speaks), answers CMPP_SUBMIT with a
Msg_Id, sends a status report per destination as CMPP_DELIVER when asked for one
(DELIVRD, or drawn from `outcomes`), a resident's text on `inject_mo()`, answers
ACTIVE_TEST and sends its own (`active_test()`, or every `active_test_s`), answers
TERMINATE. Faults are set explicitly (STYLE 9), never by message text:

- `flow_every=N`: every Nth SUBMIT is answered Result 8 (flow control);
- `flow_window=W`: SUBMITs beyond W in any one-second window are answered Result 8;
- `refuse_every={R: N}`: every Nth SUBMIT is answered Result R (3 a temporary one, 7 a
  permanent one: what `sms/cmpp_results.py` makes of each is the client's business);
- `terminate()`: a TERMINATE on every link, each closed once it is answered;
- `early_reports`: a report goes out before its SUBMIT_RESP;
- `stall_after=N`: a link, once N PDUs have come in on it, stays open and reads nothing
  more (what a gateway that died behind a firewall looks like);
- `drop()`: every link closed at once (no TERMINATE), CONNECT answered Status 5 for
  `down_s` seconds;
- `always_status3`: every CONNECT answered Status 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger(__name__)

# Command_Id (CMPP 2.0/3.0 §6.2).
CONNECT, TERMINATE, SUBMIT, DELIVER, ACTIVE_TEST = 0x1, 0x2, 0x4, 0x5, 0x8
RESP = 0x80000000
HEADER = struct.Struct("!III")
V20, V30 = 0x20, 0x30
STATUS_AUTH, STATUS_VERSION, STATUS_OTHER = 3, 4, 5
RESULT_FLOW_CONTROL, RESULT_STRUCTURE, RESULT_TOO_LONG = 8, 1, 6


@dataclass
class IsmgConfig:
    host: str = "127.0.0.1"
    port: int = 7890
    version: int = V30  # 0x20 or 0x30: the one version this gateway speaks
    accounts: dict[str, str] = field(default_factory=lambda: {"901234": "secret"})  # Source_Addr -> secret
    gateway_code: int = 12333  # Msg_Id bits 38-17
    report_delay_s: float = 0.05
    outcomes: dict[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    active_test_s: float | None = None
    flow_every: int | None = None
    flow_window: int | None = None
    refuse_every: dict[int, int] = field(default_factory=dict)
    early_reports: bool = False
    stall_after: int | None = None
    down_s: float = 1.0
    always_status3: bool = False
    seed: int = 12333


@dataclass(frozen=True)
class SimSubmit:
    """A SUBMIT as the gateway read it, for tests."""

    source_addr: str
    destinations: tuple[str, ...]
    msg_fmt: int
    tp_udhi: int
    pk_total: int
    pk_number: int
    registered_delivery: int
    content: bytes
    result: int
    msg_id: bytes


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def _pad(text: str, width: int) -> bytes:
    return text.encode("ascii")[:width].ljust(width, b"\0")


class _Link:
    """One SP connection: its reader, writer, account once connected, PDUs seen."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.account: str | None = None
        self.pdus = 0
        self.seq = 0
        self.stalled = False

    def send(self, command: int, sequence: int, body: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(HEADER.pack(HEADER.size + len(body), command, sequence) + body)

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        return self.seq


class IsmgSimulator:
    def __init__(self, config: IsmgConfig) -> None:
        if config.version not in (V20, V30):
            raise ValueError("version is 0x20 (2.0) or 0x30 (3.0)")
        self.config = config
        self.random = random.Random(config.seed)
        self.counts: Counter[str] = Counter()
        self.submitted: list[SimSubmit] = []
        self.deliver_results: list[int] = []  # DELIVER_RESP Results received
        self.links: list[_Link] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._msg_seq = 0
        self._mo_ref = 0
        self._submits = 0
        self._window: list[float] = []
        self._down_until = 0.0
        self._held: dict[str, list[tuple[str, bytes]]] = {}  # account -> reports no link could take

    @property
    def wide(self) -> bool:
        return self.config.version == V30

    # --- running -------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port)
        self.config.port = self._server.sockets[0].getsockname()[1]
        if self.config.active_test_s:
            self._spawn(self._active_tests(self.config.active_test_s))
        log.info(
            "ISMG simulator (CMPP %x.%x) on %s:%d", *divmod(self.config.version, 16), self.config.host, self.config.port
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def drop(self) -> int:
        """Close every link now; CONNECT is refused (Status 5) for `down_s`. Returns how many."""
        dropped = len(self.links)
        self._cut()
        self._down_until = time.monotonic() + self.config.down_s
        self.counts["drops"] += 1
        return dropped

    def _cut(self) -> None:
        for link in self.links:
            link.writer.transport.abort()
        self.links.clear()

    def _spawn(self, work: object) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = _Link(reader, writer)
        self.links.append(link)
        try:
            while not link.stalled:
                head = await reader.readexactly(HEADER.size)
                length, command, sequence = HEADER.unpack(head)
                if not HEADER.size <= length <= 4096:
                    self.counts["bad_length"] += 1
                    break
                body = await reader.readexactly(length - HEADER.size)
                link.pdus += 1
                if not self._handle(link, command, sequence, body):
                    break
                await writer.drain()
                if self.config.stall_after is not None and link.pdus >= self.config.stall_after:
                    link.stalled = True
                    self.counts["stalled"] += 1
            if link.stalled:
                await asyncio.Event().wait()  # open, unread, until stop() or drop() cuts it
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if link in self.links:
                self.links.remove(link)
            writer.close()

    def _handle(self, link: _Link, command: int, sequence: int, body: bytes) -> bool:
        """Answer one PDU; False when the link is to be closed."""
        if command == CONNECT:
            return self._connect(link, sequence, body)
        if link.account is None:
            self.counts["before_connect"] += 1
            return False
        if command == SUBMIT:
            self._submit(link, sequence, body)
        elif command == ACTIVE_TEST:
            link.send(ACTIVE_TEST | RESP, sequence, b"\0")
            self.counts["active_test"] += 1
        elif command == ACTIVE_TEST | RESP:
            self.counts["active_test_resp"] += 1
        elif command == DELIVER | RESP:
            if len(body) == (12 if self.wide else 9):  # Msg_Id, Result (4 octets in 3.0, 1 in 2.0)
                self.deliver_results.append(int.from_bytes(body[8:], "big"))
        elif command == TERMINATE | RESP:
            self.counts["terminate_resp"] += 1
            return False
        elif command == TERMINATE:
            link.send(TERMINATE | RESP, sequence, b"")
            self.counts["terminate"] += 1
            return False
        else:
            self.counts[f"unknown_0x{command:08X}"] += 1
        return True

    # --- CONNECT (§6.3.1, §6.3.2) ---------------------------------------------------------

    def _connect(self, link: _Link, sequence: int, body: bytes) -> bool:
        if len(body) != 27:
            status, auth_source, source = 1, bytes(16), ""
        else:
            raw_source, auth_source, version, stamp = struct.unpack("!6s16sBI", body)
            source = _text(raw_source)
            secret = self.config.accounts.get(source)
            expected = b"" if secret is None else self._md5(raw_source + bytes(9) + secret.encode() + b"%010d" % stamp)
            if time.monotonic() < self._down_until:
                status = STATUS_OTHER
            elif self.config.always_status3 or auth_source != expected:
                status = STATUS_AUTH
            elif version != self.config.version:
                status = STATUS_VERSION
            else:
                status = 0
        secret = self.config.accounts.get(source, "")
        status_field = struct.pack("!I" if self.wide else "!B", status)
        auth_ismg = self._md5(status_field + auth_source + secret.encode()) if status == 0 else bytes(16)
        link.send(CONNECT | RESP, sequence, status_field + auth_ismg + bytes((self.config.version,)))
        self.counts[f"connect_status_{status}"] += 1
        if status != 0:
            return False
        link.account = source
        for dest, report in self._held.pop(source, []):
            self._send_deliver(link, dest, report, registered=1)
        return True

    @staticmethod
    def _md5(data: bytes) -> bytes:
        return hashlib.md5(data, usedforsecurity=False).digest()

    # --- SUBMIT (§6.3.3, §6.3.4) ------------------------------------------------------------

    def _submit(self, link: _Link, sequence: int, body: bytes) -> None:
        parsed = self._read_submit(body)
        msg_id = self._msg_id()
        result = RESULT_STRUCTURE if parsed is None else self._verdict(parsed)
        resp = msg_id + struct.pack("!I" if self.wide else "!B", result)
        if parsed is None:
            link.send(SUBMIT | RESP, sequence, resp)
            self.counts["result_1"] += 1
            return
        dests, registered, msg_fmt, tp_udhi, pk_total, pk_number, content, src_id = parsed
        self.submitted.append(
            SimSubmit(
                link.account or "", dests, msg_fmt, tp_udhi, pk_total, pk_number, registered, content, result, msg_id
            )
        )
        self.counts[f"result_{result}"] += 1
        wants_reports = result == 0 and registered == 1
        if wants_reports and self.config.early_reports:
            for dest in dests:
                self._report(link, msg_id, dest, src_id, delay=0.0)
        link.send(SUBMIT | RESP, sequence, resp)
        if wants_reports and not self.config.early_reports:
            for dest in dests:
                self._spawn(self._report_later(link, msg_id, dest, src_id))

    def _read_submit(self, body: bytes) -> tuple[tuple[str, ...], int, int, int, int, int, bytes, str] | None:
        """The fields the gateway acts on, read by the spec's table (§6.3.3)."""
        term = 32 if self.wide else 21
        head = struct.Struct(f"!8sBBBB10sB{term}s" + ("B" if self.wide else "") + "BBB6s2s6s17s17s21sB")
        if len(body) < head.size:
            return None
        f = head.unpack_from(body)
        pk_total, pk_number, registered = f[1], f[2], f[3]
        f = f[9:] if self.wide else f[8:]  # from TP_pId on (3.0 has Fee_terminal_type before it)
        tp_udhi, msg_fmt, src_id, count = f[1], f[2], _text(f[8]), f[9]
        i = head.size
        dests = tuple(_text(body[i + n * term : i + (n + 1) * term]) for n in range(count))
        i += count * term + (1 if self.wide else 0)  # 3.0: Dest_terminal_type
        if not 1 <= count <= 100 or i >= len(body):
            return None
        length = body[i]
        if len(body) != i + 1 + length + (20 if self.wide else 8):
            return None
        return dests, registered, msg_fmt, tp_udhi, pk_total, pk_number, body[i + 1 : i + 1 + length], src_id

    def _verdict(self, parsed: tuple[tuple[str, ...], int, int, int, int, int, bytes, str]) -> int:
        if len(parsed[6]) > 140:
            return RESULT_TOO_LONG
        self._submits += 1
        if self.config.flow_every and self._submits % self.config.flow_every == 0:
            return RESULT_FLOW_CONTROL
        for result, every in self.config.refuse_every.items():
            if self._submits % every == 0:
                return result
        if self.config.flow_window is not None:
            now = time.monotonic()
            self._window = [t for t in self._window if now - t < 1.0]
            if len(self._window) >= self.config.flow_window:
                return RESULT_FLOW_CONTROL
            self._window.append(now)
        return 0

    def _msg_id(self) -> bytes:
        """Bits 64-39 the time (month 4, day 5, hour 5, minute 6, second 6), 38-17 the
        gateway code, 16-1 a sequence (§6.3.3)."""
        self._msg_seq = (self._msg_seq + 1) & 0xFFFF
        t = datetime.now()
        value = t.month
        for part, bits in ((t.day, 5), (t.hour, 5), (t.minute, 6), (t.second, 6), (self.config.gateway_code, 22)):
            value = (value << bits) | part
        return struct.pack("!Q", (value << 16) | self._msg_seq)

    # --- DELIVER (§6.3.7) ----------------------------------------------------------------------

    async def _report_later(self, link: _Link, msg_id: bytes, dest: str, src_id: str) -> None:
        await asyncio.sleep(self.config.report_delay_s)
        self._report(link, msg_id, dest, src_id, delay=self.config.report_delay_s)

    def _report(self, link: _Link, msg_id: bytes, dest: str, src_id: str, delay: float) -> None:
        states, weights = zip(*self.config.outcomes.items(), strict=True)
        stat: str = self.random.choices(states, weights)[0]
        now = datetime.now().strftime("%y%m%d%H%M")
        term = 32 if self.wide else 21
        report = msg_id + _pad(stat, 7) + now.encode() + now.encode() + _pad(dest, term) + struct.pack("!I", 1)
        self.counts[f"report_{stat}"] += 1
        target = link if link in self.links else next((k for k in self.links if k.account == link.account), None)
        if target is None:
            self._held.setdefault(link.account or "", []).append((dest, report))
            self.counts["reports_held"] += 1
            return
        # A report's Dest_Id is our SP's number and Src_terminal_Id the handset's (§6.3.7).
        self._send_deliver(target, src_id, report, registered=1, handset=dest)

    def _send_deliver(
        self,
        link: _Link,
        dest_id: str,
        content: bytes,
        registered: int,
        handset: str = "",
        msg_fmt: int = 0,
        tp_udhi: int = 0,
    ) -> None:
        term = 32 if self.wide else 21
        head = _pad(dest_id, 21) + _pad("", 10) + bytes((0, tp_udhi, msg_fmt)) + _pad(handset, term)
        if self.wide:
            head += b"\0"  # Src_terminal_type: a real number
        body = self._msg_id() + head + bytes((registered, len(content))) + content + bytes(20 if self.wide else 8)
        link.send(DELIVER, link.next_seq(), body)

    async def inject_mo(self, handset: str, dest_id: str, text: str) -> int:
        """A resident texts `dest_id`: DELIVERs (in parts, UCS2 or ASCII) to every link
        connected. Returns how many were sent."""
        self._mo_ref = (self._mo_ref + 1) & 0xFF
        ascii_only = text.isascii()
        units = [ch.encode("ascii" if ascii_only else "utf-16-be") for ch in text]
        parts, whole = [b""], b"".join(units)
        if len(whole) > 140:
            for unit in units:
                if len(parts[-1]) + len(unit) > 134:
                    parts.append(b"")
                parts[-1] += unit
        else:
            parts = [whole]
        sent = 0
        for link in [k for k in self.links if k.account is not None and not k.stalled]:
            for n, part in enumerate(parts, 1):
                udh = bytes((5, 0, 3, self._mo_ref, len(parts), n)) if len(parts) > 1 else b""
                fmt = 0 if ascii_only else 8
                self._send_deliver(link, dest_id, udh + part, 0, handset, fmt, int(bool(udh)))
                sent += 1
            await link.writer.drain()
        if sent:
            self.counts["mo"] += 1
        return sent

    # --- TERMINATE (§6.3.5) and ACTIVE_TEST (§6.3.9) -------------------------------------------

    def terminate(self) -> int:
        """A TERMINATE to every connected link (closed when the SP answers); returns how many."""
        links = [k for k in self.links if k.account is not None and not k.stalled]
        for link in links:
            link.send(TERMINATE, link.next_seq(), b"")
        self.counts["terminate_sent"] += len(links)
        return len(links)

    def active_test(self) -> int:
        """An ACTIVE_TEST to every connected link; returns how many."""
        links = [k for k in self.links if k.account is not None and not k.stalled]
        for link in links:
            link.send(ACTIVE_TEST, link.next_seq(), b"")
        self.counts["active_test_sent"] += len(links)
        return len(links)

    async def _active_tests(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.active_test()


async def run(config: IsmgConfig, control_port: int | None) -> None:
    """Until SIGINT/SIGTERM; the control port takes `stats`, `drop`, `active`,
    `mo HANDSET DEST_ID TEXT...`, one per line, and answers one JSON line each."""
    import json
    import signal

    sim = IsmgSimulator(config)
    await sim.start()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := (await reader.readline()).decode("utf-8", errors="replace").strip():
                verb, _, rest = line.partition(" ")
                answer: dict[str, object]
                if verb == "stats":
                    answer = {"counts": dict(sim.counts), "links": len(sim.links)}
                elif verb == "drop":
                    answer = {"dropped": sim.drop(), "refusing_for_s": config.down_s}
                elif verb == "active":
                    answer = {"active_test": sim.active_test()}
                elif verb == "mo" and len(rest.split(" ", 2)) == 3:
                    handset, dest_id, text = rest.split(" ", 2)
                    answer = {"deliver": await sim.inject_mo(handset, dest_id, text)}
                else:
                    answer = {"error": "commands: stats | drop | active | mo HANDSET DEST_ID TEXT"}
                writer.write((json.dumps(answer, ensure_ascii=False) + "\n").encode())
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(control, "127.0.0.1", control_port) if control_port else None
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(
        f"ismg-sim: CMPP {config.version >> 4}.{config.version & 15} ready on {config.host}:{config.port}", flush=True
    )
    try:
        await stop.wait()
    finally:
        if server is not None:
            server.close()
        await sim.stop()
        log.info("ISMG simulator stopped: %s", dict(sim.counts))
