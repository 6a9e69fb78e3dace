"""The simulator's half-dead bind, and `SmppTransport.stop()` returning promptly whatever
the SMSC does: unreachable, silent after a bind, or between binds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import smpp34

from bench.procs import free_port
from core.settings import SmppSettings
from sms.encoding import encode
from sms.pdu import Inbound
from sms.sim_cli import _control
from sms.simulator import SimConfig, Simulator
from sms.smpp import SmppTransport

pytestmark = pytest.mark.timeout(60)
ONE = encode("您好，这是一条测试短信。", 0)
STOP_BOUND_S = 5.0  # generous: stop() takes about 1.5 s at worst


async def _nothing(_message: Inbound) -> None:
    pass


async def test_a_hung_bind_keeps_its_connection_and_answers_nothing_while_a_new_one_is_served() -> None:
    sim = Simulator(SimConfig(port=free_port()))
    await sim.start()
    old = smpp34.Client("127.0.0.1", sim.config.port, "hotline", "secret")
    new = smpp34.Client("127.0.0.1", sim.config.port, "hotline", "secret")
    try:
        smsc = await old.connect()
        await sim.bound()
        assert sim.hang() == 1
        with pytest.raises(TimeoutError):  # not answered, and not refused either
            await asyncio.wait_for(smsc.submit_sm("13800000000", b"x", source_addr="12333"), 1.0)
        again = await new.connect()
        assert (await again.submit_sm("13800000000", b"y", source_addr="12333")).is_success
        assert sim.unhang() == 1  # and now the old connection is reset
        assert isinstance(await asyncio.wait_for(smsc.next(), 5), smpp34.Disconnected)
        await again.unbind()
    finally:
        await new.stop()
        await old.stop()
        await sim.stop()
    assert sim.counts["accepted"] == 1 and sim.counts["hangs"] == 1


async def test_the_control_port_hangs_the_binds_and_resets_them() -> None:
    sim = Simulator(SimConfig(port=free_port()))
    await sim.start()
    control = await asyncio.start_server(lambda r, w: _control(sim, r, w), "127.0.0.1", 0)
    client = smpp34.Client("127.0.0.1", sim.config.port, "hotline", "secret")
    try:
        smsc = await client.connect()
        await sim.bound()
        reader, writer = await asyncio.open_connection("127.0.0.1", control.sockets[0].getsockname()[1])
        answers = []
        for command in (b"hang\n", b"unhang\n"):
            writer.write(command)
            answers.append(json.loads(await asyncio.wait_for(reader.readline(), 5)))
        writer.close()
        assert answers == [{"hung": 1}, {"reset": 1}]
        assert isinstance(await asyncio.wait_for(smsc.next(), 5), smpp34.Disconnected)
    finally:
        control.close()
        await client.stop()
        await sim.stop()


@asynccontextmanager
async def transport_to(port: int, **smpp: object) -> AsyncIterator[SmppTransport]:
    settings = SmppSettings(port=port, password="secret", **smpp)  # type: ignore[arg-type]
    transport = SmppTransport(settings, _nothing)
    await transport.start()
    try:
        yield transport
    finally:
        async with asyncio.timeout(STOP_BOUND_S):
            await transport.stop()


async def test_stop_returns_while_the_bind_goes_unanswered() -> None:
    """The SMSC takes the TCP connection and never answers the bind (30 s allowed for it)."""
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        accepted.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with transport_to(port, socket_timeout_s=30) as transport:
            await asyncio.wait_for(accepted.wait(), 10)
        assert transport.binds == 0
    finally:
        for writer in held:
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_stop_returns_while_waiting_to_bind_again() -> None:
    """Nobody listens: the bind is refused and the next attempt is a minute away. stop()
    cuts that wait short (it does not wait out the minute) and ends the link's task."""
    waiting = asyncio.Event()
    ended: list[str] = []
    settings = SmppSettings(port=free_port(), password="secret", rebind_first_s=60, rebind_most_s=60)
    transport = SmppTransport(settings, _nothing)
    backoff = transport.esme.retry_timer
    sleep = backoff.wait

    async def spied() -> None:
        waiting.set()
        try:
            await sleep()
        except asyncio.CancelledError:
            ended.append("cut short")
            raise
        ended.append("waited out")

    backoff.wait = spied
    await transport.start()
    try:
        await asyncio.wait_for(waiting.wait(), 10)
    finally:
        await asyncio.wait_for(transport.stop(), STOP_BOUND_S)
    assert ended == ["cut short"]
    assert transport.binds == 0 and not transport.bound.is_set()


async def test_stop_returns_while_submits_wait_on_a_half_dead_bind() -> None:
    sim = Simulator(SimConfig(port=free_port(), hang_after=1))
    await sim.start()
    try:
        async with transport_to(sim.config.port, response_timeout_s=120, enquire_link_s=120) as transport:
            await asyncio.wait_for(transport.bound.wait(), 10)
            seg = ONE.segments[0]
            first = await transport.submit_segment("13800000000", seg, ONE.data_coding, 0)
            assert first.status == 0
            pending = asyncio.gather(
                *(transport.submit_segment("13800000001", seg, ONE.data_coding, 0) for _ in range(3))
            )
            await asyncio.wait_for(sim.hung.wait(), 10)
        # stop() returned, and what the hung bind held is settled: lost, for the caller to requeue.
        results = await asyncio.wait_for(pending, 5)
        assert all(r.lost for r in results)
    finally:
        await sim.stop()
