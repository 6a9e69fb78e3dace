"""The SMSC simulator over TCP, driven by smpp34's own client: caps, injected errors,
receipts in the id forms it is told to use, MO texts, and dropped connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import smpp34

from bench.procs import free_port
from sms.encoding import decode, split_udh
from sms.receipts import canonical, parse_receipt
from sms.simulator import SimConfig, Simulator


@asynccontextmanager
async def running(**config: object) -> AsyncIterator[tuple[Simulator, smpp34.Smsc]]:
    sim = Simulator(SimConfig(port=free_port(), **config))  # type: ignore[arg-type]
    await sim.start()
    client = smpp34.Client("127.0.0.1", sim.config.port, "hotline", "secret", window_size=50)
    try:
        smsc = await client.connect()
        await sim.bound()
        yield sim, smsc
    finally:
        await client.stop()
        await sim.stop()


async def _submit(smsc: smpp34.Smsc, n: int, receipts: bool = False) -> list[smpp34.SubmitSmResp]:
    return list(
        await asyncio.gather(
            *(
                smsc.submit_sm(f"1380000{i:04d}", b"hello", source_addr="12333", registered_delivery=int(receipts))
                for i in range(n)
            )
        )
    )


async def test_a_tps_cap_answers_throttled_above_it() -> None:
    async with running(tps=10) as (sim, smsc):
        answers = await _submit(smsc, 25)
    statuses = sorted(r.command_status for r in answers)
    assert statuses.count(0) == 10 and statuses.count(0x58) == 15
    assert sim.counts["accepted"] == 10 and sim.counts["rejected_0x58"] == 15


async def test_every_seventh_submit_gets_the_error_it_is_told_to() -> None:
    async with running(fail_every={0x14: 7}) as (_sim, smsc):
        answers = [await smsc.submit_sm("13800000000", b"x", source_addr="12333") for _ in range(21)]
    assert [i for i, r in enumerate(answers, 1) if r.command_status == 0x14] == [7, 14, 21]


async def test_receipts_quote_the_id_in_another_base_and_may_come_first() -> None:
    async with running(id_format="hex", receipt_id_format="dec", early_receipts=True) as (_sim, smsc):
        answers = await _submit(smsc, 12, receipts=True)
        receipts = [await asyncio.wait_for(smsc.next(), 5) for _ in range(12)]
    submitted = {canonical(r.message_id or "", 16) for r in answers}
    quoted = set()
    for event in receipts:
        assert isinstance(event, smpp34.DeliverSmEvent) and event.esm_class == 0x04
        receipt = parse_receipt(event.short_message.decode())
        quoted.add(canonical(receipt.message_id, 10))
        assert receipt.stat == "DELIVRD"
    assert quoted == submitted and "C" in {r.message_id for r in answers}  # 12 in hex


async def test_a_long_mo_text_arrives_in_parts_that_reassemble() -> None:
    text = "YE " + "请问我的养老金什么时候到账" * 8
    async with running() as (sim, smsc):
        sent = await sim.inject_mo("13912345678", "12333", text)
        parts = [await asyncio.wait_for(smsc.next(), 5) for _ in range(sent)]
    assert sent == 2
    payload, seen = b"", []
    for event in parts:
        assert (
            isinstance(event, smpp34.DeliverSmEvent) and event.esm_class == 0x40 and event.source_addr == "13912345678"
        )
        concat, body = split_udh(event.short_message)
        assert concat is not None
        seen.append(concat.seq)
        payload += body
    assert seen == [1, 2] and decode(8, payload) == text


async def test_a_dropped_connection_is_gone_and_the_simulator_listens_again() -> None:
    async with running(down_s=0.3) as (sim, smsc):
        await sim.drop()
        event = await asyncio.wait_for(smsc.next(), 5)
        assert isinstance(event, smpp34.Disconnected)
        again = await smpp34.Client("127.0.0.1", sim.config.port, "hotline", "secret").connect()
        assert (await again.submit_sm("13800000000", b"x", source_addr="12333")).is_success
        await again.unbind()
    assert sim.counts["drops"] == 1 and sim.counts["binds"] == 2


UDH = {
    "no UDH": b"",
    "16-bit ref": bytes((6, 0x08, 4, 0x12, 0x34, 2, 1)),  # 7 octets, 8 septets with fill
    "8-bit ref": bytes((5, 0x00, 3, 0x12, 2, 1)),  # 6 octets, 7 septets with one fill bit
}


@pytest.mark.parametrize(
    ("data_coding", "udh", "body", "fits"),
    [
        (0x08, "no UDH", 140, True),
        (0x08, "no UDH", 141, False),
        (0x08, "16-bit ref", 132, True),  # 66 UCS2 characters
        (0x08, "16-bit ref", 133, True),
        (0x08, "16-bit ref", 134, False),  # 67 characters: 141 octets
        (0x00, "no UDH", 160, True),  # septets, sent one per octet
        (0x00, "no UDH", 161, False),
        (0x00, "16-bit ref", 152, True),
        (0x00, "16-bit ref", 153, False),
        (0x00, "8-bit ref", 153, True),
        (0x00, "8-bit ref", 154, False),
    ],
)
async def test_user_data_over_140_octets_is_refused_with_esme_rinvmsglen(
    data_coding: int, udh: str, body: int, fits: bool
) -> None:
    short_message = UDH[udh] + b"\x30" * body  # octets of UCS2, or septets sent one per octet
    async with running() as (sim, smsc):
        answer = await smsc.submit_sm(
            "13800000000",
            short_message,
            source_addr="12333",
            esm_class=0x40 if UDH[udh] else 0,
            data_coding=data_coding,
        )
    assert answer.command_status == (0 if fits else 0x01)
    assert sim.counts["accepted" if fits else "rejected_0x01"] == 1
