"""A bind that answers everything and takes nothing, over TCP: the simulator's fault (an SMSC
restarted behind connections that outlived it), the transport giving the bind up and binding
again (to the next address when there are several), and a 900-segment batch delivered whole
through it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import smpp34
from sqlalchemy import insert

from bench.procs import free_port
from bench.sms_gateway import people, statement
from core.db import Store
from core.models import BusinessEvent, Resident
from core.settings import SmppSettings
from sms.bind_health import LinkState
from sms.encoding import encode
from sms.pdu import Inbound
from sms.sim_cli import _control
from sms.simulator import SimConfig, Simulator
from sms.smpp import SmppTransport, SubmitResult
from sms.status import ESME_RMSGQFUL, SLOW_DOWN
from tests.store.sms_support import dispatching, until_final

pytestmark = pytest.mark.timeout(180)
ONE = encode("您好，这是一条测试短信。", 0)
BATCH = 900
# Refusals in a row that make a bind sick, and the pause after each (the defaults are 50 and
# 1 s, with 30 s as the other bound): small here, so the test takes seconds.
FAST = {"sick_after_refusals": 20, "throttle_pause_s": 0.05, "rebind_first_s": 0.2}


async def _nothing(_message: Inbound) -> None:
    pass


@asynccontextmanager
async def simulator(**config: Any) -> AsyncIterator[Simulator]:
    sim = Simulator(SimConfig(port=free_port(), receipt_delay_s=0.05, **config))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_a_sick_bind_stays_open_refusing_everything_while_a_new_one_is_served() -> None:
    async with simulator(sick_after=2) as sim:
        old = smpp34.Client("127.0.0.1", sim.config.port, "hotline", "secret")
        new = smpp34.Client("127.0.0.1", sim.config.port, "hotline", "secret")
        try:
            smsc = await old.connect()
            await sim.bound()
            answers = [await smsc.submit_sm("13800000000", b"x", source_addr="12333") for _ in range(5)]
            assert [a.command_status for a in answers] == [0, 0, ESME_RMSGQFUL, ESME_RMSGQFUL, ESME_RMSGQFUL]
            again = await new.connect()
            assert (await again.submit_sm("13800000000", b"y", source_addr="12333")).is_success
            assert not (await smsc.submit_sm("13800000000", b"z", source_addr="12333")).is_success  # still sick
            await again.unbind()
        finally:
            await new.stop()
            await old.stop()
    assert sim.counts["accepted"] == 3 and sim.counts["rejected_0x14"] == 4 and sim.counts["sickened"] == 1


async def test_the_control_port_makes_the_binds_sick() -> None:
    async with simulator() as sim:
        control = await asyncio.start_server(lambda r, w: _control(sim, r, w), "127.0.0.1", 0)
        client = smpp34.Client("127.0.0.1", sim.config.port, "hotline", "secret")
        try:
            smsc = await client.connect()
            await sim.bound()
            reader, writer = await asyncio.open_connection("127.0.0.1", control.sockets[0].getsockname()[1])
            writer.write(b"sick\n")
            answer = json.loads(await asyncio.wait_for(reader.readline(), 5))
            writer.close()
            assert answer == {"sick": 1}
            refused = await smsc.submit_sm("13800000000", b"x", source_addr="12333")
            assert refused.command_status == ESME_RMSGQFUL
        finally:
            control.close()
            await client.stop()


async def _send(transport: SmppTransport, number: str) -> SubmitResult:
    """As the dispatcher does: a segment refused for now is sent again (bounded)."""
    for _ in range(100):
        result = await transport.submit_segment(number, ONE.segments[0], ONE.data_coding, ONE.esm_class)
        if result.status not in SLOW_DOWN:
            return result
    raise AssertionError(f"{number}: refused 100 times")


async def test_the_transport_gives_a_sick_bind_up_and_binds_to_the_next_address(caplog: Any) -> None:
    """Two SMSC addresses: the first turns sick after 3 accepted segments; the refused
    segments wait, the bind is unbound, and they are accepted on a bind to the second."""
    caplog.set_level(logging.INFO, logger="sms")
    async with simulator(sick_after=3) as first, simulator() as second:
        settings = SmppSettings(
            port=first.config.port, password="secret", fallbacks=(f"127.0.0.1:{second.config.port}",), **FAST
        )
        transport = SmppTransport(settings, _nothing)
        states: list[LinkState] = []

        async def watch() -> None:
            while True:
                await transport.changed.wait()
                transport.changed.clear()
                states.append(transport.report().state)

        watcher = asyncio.create_task(watch())
        await transport.start()
        try:
            results = await asyncio.gather(*(_send(transport, f"139{i:08d}") for i in range(10)))
        finally:
            watcher.cancel()
            await transport.stop()
    assert [r.status for r in results] == [0] * 10
    assert (first.counts["accepted"], second.counts["accepted"]) == (3, 7), (dict(first.counts), dict(second.counts))
    # The refusals that made it sick, and those of submits already on the wire then.
    assert settings.sick_after_refusals <= first.counts["rejected_0x14"] <= settings.sick_after_refusals + 10
    assert first.counts["unbinds"] == 1  # unbound, not just cut off
    assert LinkState.REFUSING in states and LinkState.REBINDING in states
    assert states[states.index(LinkState.REBINDING) :].count(LinkState.BOUND) >= 1
    assert transport.report().state is LinkState.STOPPED and transport.report().sick_binds == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    sick = f"SMSC 127.0.0.1:{first.config.port} (bind 1 as hotline) is sick"
    assert any(w.startswith(sick) and "0x14 ESME_RMSGQFUL" in w for w in warnings), warnings
    assert any(f"127.0.0.1:{second.config.port}: bound again" in w for w in warnings), warnings


def _statements(store: Store, n: int) -> None:
    batch = people(n)
    with store.transaction() as c:
        c.execute(insert(Resident), batch)
        c.execute(insert(BusinessEvent), [statement(p) for p in batch])


async def test_a_batch_through_an_smsc_whose_bind_turns_sick_is_delivered_whole(
    sqlite_store: Store, tmp_path: Path, caplog: Any
) -> None:
    """The SMSC restarts after 300 accepted segments and keeps the old session open,
    answering 0x14 to everything. On main the batch stalled there (600 of 900 queued for good,
    nothing in the log); here the bind is found sick, unbound and bound again, and every
    message is accepted once and delivered, with the stall and the recovery in the log."""
    caplog.set_level(logging.INFO, logger="sms")
    _statements(sqlite_store, BATCH)
    env = {f"HOTLINE_SMPP_{k.upper()}": str(v) for k, v in FAST.items()}
    async with dispatching(sqlite_store, tmp_path, {"sick_after": 300}, **env) as (sim, _d, transport):
        messages = await until_final(sqlite_store, BATCH, limit_s=150)
    assert {m.status for m in messages} == {"delivered"} and sum(m.segments for m in messages) == BATCH
    assert not any(m.duplicate_suspect for m in messages)
    assert {m.attempts for m in messages} == {1}  # refused is no attempt
    accepted = Counter(s.destination for s in sim.submitted if s.status == 0)
    assert sim.counts["accepted"] == BATCH and set(accepted.values()) == {1}
    assert set(accepted) == {m.recipient for m in messages}
    assert sim.counts["sickened"] == 1 and sim.counts["rejected_0x14"] >= 1
    assert transport.health.sick_binds == 1 and transport.binds == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "sms.smpp"]
    stall = [w for w in warnings if "is sick:" in w]
    assert len(stall) == 1 and "nothing accepted" in stall[0] and "0x14 ESME_RMSGQFUL" in stall[0], warnings
    recovered = [w for w in warnings if "after the sick bind was found; sending resumes" in w]
    assert len(recovered) == 1 and re.search(r"bound again \(bind 2\), \d+\.\d s after", recovered[0]), warnings
