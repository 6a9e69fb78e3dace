"""What the SMS store tests share: events to send, and the messages until all are final."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bench.procs import free_port
from bench.sms_gateway import people
from core.business import BusinessPort
from core.db import Store
from core.models import BusinessEvent, Resident, SmsMessage
from core.preferences import parse, save
from core.sample_port import SampleBusinessPort
from core.settings import Settings, SmsSettings
from sms.dispatcher import Dispatcher
from sms.encoding import encode
from sms.intake import emit, intake
from sms.pdu import Inbound
from sms.simulator import SimConfig, Simulator
from sms.smpp import SmppPart, SmppTransport
from sms.transport import SubmitResult
from tests.conftest import PEPPER, make_settings

FINAL = {"delivered", "undelivered", "expired", "rejected", "deleted", "unknown", "failed"}


class Scripted:
    """A transport whose answers are the test's own (`submit`), cutting texts as SMPP does."""

    capacity = 10
    id_base = 16
    receipt_id_base: int | None = None

    def __init__(self, submit: Callable[..., Awaitable[SubmitResult]]) -> None:
        self._submit = submit

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def parts(self, text: str, reference: int, category: str | None = None) -> list[SmppPart]:
        encoded = encode(text, reference & 0xFFFF)
        return [SmppPart(segment, encoded.data_coding, encoded.esm_class) for segment in encoded.segments]

    async def submit(self, recipient: str, part: SmppPart, urgent: bool = False) -> SubmitResult:
        return await self._submit(recipient, part, urgent)


def emit_pensions(store: Store, people: list[Any], long: bool = False) -> None:
    for p in people:
        payload = {"name": p.name, "period": "2026-11", "amount": p.pension_balance_fen}
        if long:
            payload = {"title": "医保缴费提醒", "body": "城乡居民医保集中缴费期为9月1日至12月31日，请及时缴纳。" * 4}
            emit(store, "policy_news", "person", p.id_number, payload, f"news:{p.id_number}")
        else:
            emit(store, "pension_credited", "person", p.id_number, payload, f"pension:{p.id_number}")


def insert_reminders(store: Store, n: int) -> None:
    """n residents with their own numbers, and a pension reminder each (a message per
    recipient is in flight at a time), inserted as the business system does."""
    rows = people(n)
    events = [
        {
            "event_type": "pension_credited",
            "subject_kind": "person",
            "subject_id": r["id_number"],
            "payload": {"name": r["name"], "period": "2026-11", "amount": 100_000 + i},
            "idempotency_key": f"pension:2026-11:{r['id_number']}",
        }
        for i, r in enumerate(rows)
    ]
    with store.transaction() as c:
        c.execute(insert(Resident), rows)
        c.execute(insert(BusinessEvent), events)


def messages_of(store: Store) -> list[SmsMessage]:
    with store.session() as s:
        return list(s.scalars(select(SmsMessage).order_by(SmsMessage.id)))


async def until_final(store: Store, count: int, limit_s: float = 30) -> list[SmsMessage]:
    deadline = asyncio.get_running_loop().time() + limit_s
    while True:
        messages = await asyncio.to_thread(messages_of, store)
        if len(messages) == count and all(m.status in FINAL for m in messages):
            return messages
        if asyncio.get_running_loop().time() > deadline:
            seen = sorted((m.status, m.last_error or "") for m in messages)
            raise AssertionError(f"{len(messages)} of {count} messages, not all final: {seen}")
        await asyncio.sleep(0.1)


def sample_port(store: Store) -> SampleBusinessPort:
    """The embedded business adapter over the store's sample tables."""
    return SampleBusinessPort(store, PEPPER)


@asynccontextmanager
async def dispatching(
    store: Store, tmp_path: Path, sim: dict[str, Any], *, port: BusinessPort | None = None, **env: str
) -> AsyncIterator[tuple[Simulator, Dispatcher, SmppTransport]]:
    """The SMSC simulator (`sim`: its SimConfig fields) and one dispatcher bound to it over
    TCP, with short polls and retries and no quiet hours (they have their own tests: the
    outcome must not depend on the clock); `env` sets more HOTLINE_* values."""
    simulator = Simulator(SimConfig(port=free_port(), receipt_delay_s=0.05, **sim))
    await simulator.start()
    settings: Settings = make_settings(
        tmp_path,
        store.url,
        HOTLINE_SMPP_PORT=str(simulator.config.port),
        HOTLINE_SMPP_PASSWORD="secret",
        HOTLINE_SMS_POLL_S="0.05",
        HOTLINE_SMS_RETRY_BASE_S="0.1",
        **env,
    )
    settings = settings.model_copy(update={"sms": settings.sms.model_copy(update={"quiet_hours": {}})})
    holder: dict[str, Dispatcher] = {}

    async def on_deliver(inbound: Inbound) -> None:
        if inbound.is_receipt:
            await holder["d"].on_receipt(inbound)

    transport = SmppTransport(settings.smpp, on_deliver)
    chosen = port if port is not None else sample_port(store)
    dispatcher = holder["d"] = Dispatcher(settings, store, chosen, transport, "test-1")
    await transport.start()
    stop = asyncio.Event()
    loop = asyncio.create_task(dispatcher.run(stop))
    try:
        yield simulator, dispatcher, transport
    finally:
        stop.set()
        await asyncio.wait_for(loop, 20)
        await transport.stop()
        await simulator.stop()


def queue_voice_notices(
    store: Store, zone: str, residents: list[Any], key: str, now: dt.datetime | None = None, number: str | None = None
) -> None:
    """A pension notice by call (then SMS) for each resident, their preference set first;
    `number`: every call to that one. Idempotency keys `key`0, `key`1, ..."""
    with store.transaction() as c:
        for r in residents:
            save(c, "person", r.id_number, "*", parse("voice,sms", voice_number=number), now=now)
    for i, r in enumerate(residents):
        payload = {"name": r.name, "period": "2026-11", "amount": r.pension_balance_fen}
        assert emit(store, "pension_credited", "person", r.id_number, payload, f"{key}{i}")
    intake(store, sample_port(store), SmsSettings(), zone, now=now)
