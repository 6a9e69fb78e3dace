"""What the SMS store tests share: events to send, and the messages until all are final."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from core.db import Store
from core.models import SmsMessage
from core.sample_port import SampleBusinessPort
from sms.intake import emit
from tests.conftest import PEPPER

FINAL = {"delivered", "undelivered", "expired", "rejected", "deleted", "unknown", "failed"}


def emit_pensions(store: Store, people: list[Any], long: bool = False) -> None:
    for p in people:
        payload = {"name": p.name, "period": "2026-11", "amount": p.pension_balance_fen}
        if long:
            payload = {"title": "医保缴费提醒", "body": "城乡居民医保集中缴费期为9月1日至12月31日，请及时缴纳。" * 4}
            emit(store, "policy_news", "person", p.id_number, payload, f"news:{p.id_number}")
        else:
            emit(store, "pension_credited", "person", p.id_number, payload, f"pension:{p.id_number}")


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
