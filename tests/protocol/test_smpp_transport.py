"""aiosmpplib behind our transport, against the SMSC simulator over TCP: the window and
the TPS limit honoured exactly, throttling, a dropped connection, receipts and MO."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from bench.procs import free_port
from core.settings import SmppSettings
from sms.encoding import decode, encode, split_udh
from sms.pdu import Inbound
from sms.receipts import canonical, parse_receipt
from sms.simulator import SimConfig, Simulator
from sms.smpp import SmppTransport, SubmitResult
from tests.waiting import until

ONE = encode("您好，这是一条测试短信。", 0)


@dataclass
class Inbox:
    messages: list[Inbound] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int) -> None:
        while len(self.messages) < count:
            self.arrived.clear()
            await self.arrived.wait()


@asynccontextmanager
async def linked(
    sim_config: dict[str, object], **smpp: object
) -> AsyncIterator[tuple[Simulator, SmppTransport, Inbox]]:
    sim = Simulator(SimConfig(port=free_port(), **sim_config))  # type: ignore[arg-type]
    await sim.start()
    inbound = Inbox()

    async def on_deliver(message: Inbound) -> None:
        inbound.messages.append(message)
        inbound.arrived.set()

    settings = SmppSettings(port=sim.config.port, password="secret", enquire_link_s=5, **smpp)  # type: ignore[arg-type]
    transport = SmppTransport(settings, on_deliver)
    await transport.start()
    try:
        async with asyncio.timeout(5):
            await transport.bound.wait()
        yield sim, transport, inbound
    finally:
        await transport.stop()
        await sim.stop()


async def _send(transport: SmppTransport, n: int, *, urgent: bool = False) -> list[SubmitResult]:
    seg = ONE.segments[0]
    sends = (transport.submit_segment(f"1380000{i:04d}", seg, ONE.data_coding, 0, urgent) for i in range(n))
    return list(await asyncio.gather(*sends))


async def test_the_window_is_never_exceeded_and_is_used_in_full() -> None:
    async with linked({"resp_delay_s": 0.1}, window=5, tps=1000) as (sim, transport, _):
        results = await _send(transport, 30)
        # A batch alone fills its share of the window (0.8 by default), keeping one free.
        assert sim.max_outstanding == 4
        batch, instant = await asyncio.gather(_send(transport, 30), _send(transport, 10, urgent=True))
        results += batch + instant
    assert len(results) == 70 and all(r.status == 0 and r.smsc_id for r in results)
    assert sim.max_outstanding == 5  # instant reminders take the rest, and never more


async def test_no_second_holds_more_submits_than_the_tps_limit() -> None:
    # The simulator counts arrivals in fixed one-second windows, so a submit written a few ms
    # late by a busy loop can land as a 21st in one window: its cap is one above our pace, and
    # the pace itself is checked below on the arrival times.
    async with linked({"tps": 21}, window=50, tps=20) as (sim, transport, _):
        results = await _send(transport, 50)
    assert [r.status for r in results] == [0] * 50  # the SMSC's own cap never bit
    times = sorted(s.at for s in sim.submitted)
    assert all(times[i + 20] - times[i] >= 0.95 for i in range(len(times) - 20))
    assert times[-1] - times[0] >= 2.3  # 50 at 20/s: about 2.45 s


async def test_a_throttled_answer_pauses_sending_for_the_pause() -> None:
    # One at a time (window 1), so each answer is known before the next submit.
    async with linked({"tps": 5}, window=1, tps=1000, throttle_pause_s=1.1) as (sim, transport, _):
        results = [(await _send(transport, 1))[0] for _ in range(12)]
    assert [r.status for r in results] == [0] * 5 + [0x58] + [0] * 5 + [0x58]
    times = [s.at for s in sim.submitted]
    assert times[6] - times[5] >= 1.05  # nothing was sent during the pause
    assert transport.throttle.count == 2


async def test_a_dropped_connection_loses_the_unanswered_and_the_link_comes_back() -> None:
    async with linked({"resp_delay_s": 1.0, "down_s": 0.2}, window=10, tps=1000) as (sim, transport, _):
        pending = asyncio.gather(*(transport.submit_segment("13800000000", ONE.segments[0], 8, 0) for _ in range(3)))
        await until(lambda: sim.outstanding == 3, "the three submits at the SMSC, unanswered")
        transport.bound.clear()
        await sim.drop()
        lost = await asyncio.wait_for(pending, 10)
        assert all(r.lost for r in lost)
        await asyncio.wait_for(transport.bound.wait(), 15)  # aiosmpplib reconnected and bound
        assert transport.binds == 2
        sim.config.resp_delay_s = 0
        (after,) = await _send(transport, 1)
    assert after.status == 0


async def test_receipts_and_a_long_mo_text_arrive_with_their_bytes_intact() -> None:
    text = "YE " + "请问我的养老金什么时候到账" * 8
    async with linked({"receipt_delay_s": 0.05}, window=5, tps=1000) as (sim, transport, inbound):
        (result,) = await _send(transport, 1)
        await sim.inject_mo("13912345678", "12333", text)
        await asyncio.wait_for(inbound.wait_for(3), 5)
    receipts = [m for m in inbound.messages if m.is_receipt]
    texts = [m for m in inbound.messages if not m.is_receipt]
    assert len(receipts) == 1 and len(texts) == 2
    receipt = parse_receipt(receipts[0].short_message.decode())
    assert canonical(receipt.message_id, 10) == canonical(result.smsc_id or "", 16)
    parts = sorted((split_udh(m.short_message) for m in texts), key=lambda p: p[0].seq if p[0] else 0)
    assert [p[0].total for p in parts if p[0]] == [2, 2]
    assert decode(8, b"".join(body for _, body in parts)) == text


async def test_an_smsc_that_is_down_is_said_in_our_log_not_in_bare_library_lines(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = SmppSettings(port=free_port(), password="secret", rebind_first_s=0.2, rebind_most_s=0.2)
    transport = SmppTransport(settings, lambda message: asyncio.sleep(0))
    await transport.start()
    try:
        await until(lambda: [r for r in caplog.records if r.name == "sms.aiosmpplib"], "aiosmpplib's first line", 10)
    finally:
        await transport.stop()
    assert ">>>" not in capfd.readouterr().err  # aiosmpplib's own handler wrote nothing
    said = [r for r in caplog.records if r.name == "sms.aiosmpplib"]
    assert said[0].levelno == logging.ERROR and "Connection lost while connecting to SMSC" in said[0].getMessage()
    assert [r for r in caplog.records if r.name == "sms.smpp" and "not bound" in r.getMessage()]
