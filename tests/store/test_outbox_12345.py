"""Messages to 12345 about its orders (签收, 办结, 退单), on SQLite and PostgreSQL: written with
the change, sent by the sender's step to a fake 12345 on loopback that checks the signature
with its own HMAC, written here from docs/casework.md ("12345"), not the sender's function.
The clock is passed to the step; nothing sleeps."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import secrets
import socket
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from cases import orders, outbox12345
from cases.contract12345 import Signed
from cases.intake12345 import receive
from cases.outbox12345 import OUTBOX
from cases.sender12345 import Sender12345
from core.db import Store
from core.settings import Settings
from hotline.orders import detail_text
from tests.conftest import make_settings, postgres_only

KEY = "city-12345-shared-key-0123456789abcdef"
NAME, US = "city", "hz12333"
T0 = dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.UTC)
ORDER: dict[str, Any] = {
    "order_no": "HZ20261208-0001",
    "title": "养老保险补缴咨询",
    "content": "市民来电询问中断两年的职工养老保险能否补缴。",
    "category": "咨询",
    "deadline": "2026-12-11T17:30:00+08:00",
    "department": "养老保险",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Fake12345:
    """12345's endpoint: checks each request's signature under KEY and records the bodies."""

    def __init__(self, port: int) -> None:
        self.port, self.status, self.got = port, 200, []  # type: ignore[var-annotated]
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        h = request.headers
        message = f"{h['X-12345-Timestamp']}\n{h['X-12345-Nonce']}\n".encode() + body
        expected = hmac.new(KEY.encode(), message, hashlib.sha256).hexdigest()
        assert h["X-12345-Counterpart"] == US and hmac.compare_digest(expected, h["X-12345-Signature"])
        if self.status != 200:
            return web.json_response({"error": "kind not known here"}, status=self.status)
        self.got.append(json.loads(body))
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/notify", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def fake() -> AsyncIterator[Fake12345]:
    server = Fake12345(_free_port())
    yield server
    await server.stop()


def _settings(tmp_path: Path, store: Store, port: int) -> Settings:
    return make_settings(
        tmp_path,
        store.url,
        HOTLINE_HOTLINE12345_ENABLED="true",
        HOTLINE_HOTLINE12345_COUNTERPARTS=json.dumps({NAME: KEY}),
        HOTLINE_HOTLINE12345_ENDPOINTS=json.dumps({NAME: f"http://127.0.0.1:{port}/notify"}),
        HOTLINE_HOTLINE12345_OUR_NAME=US,
        HOTLINE_HOTLINE12345_RETRY_BASE_S="60",
        HOTLINE_HOTLINE12345_RETRY_MAX_S="600",
        HOTLINE_HOTLINE12345_SEND_TIMEOUT_S="2",
    )


def _order_from_12345(store: Store, settings: Settings, order_no: str = ORDER["order_no"]) -> int:
    body = json.dumps(ORDER | {"order_no": order_no}, ensure_ascii=False).encode()
    signed = Signed(NAME, int(T0.timestamp()), secrets.token_urlsafe(24))  # a new request each time
    return receive(store, settings, signed, body, now=T0).order_id


def _outbox(store: Store) -> list[Any]:
    with store.transaction() as c:
        return list(c.execute(select(OUTBOX).order_by(OUTBOX.c.id)))


async def test_an_answered_order_is_told_once_with_its_answer(store: Store, tmp_path: Path, fake: Fake12345) -> None:
    settings = _settings(tmp_path, store, fake.port)
    order_id = _order_from_12345(store, settings)
    _order_from_12345(store, settings)  # sent again: a duplicate, no second 签收
    answer = "可以补缴，请携带身份证到社保经办窗口办理。"
    orders.answer_order(store, settings, order_id, actor="clerk", answer=answer, reply_via="none", now=T0)
    await fake.start()
    async with Sender12345(settings.hotline12345, store, "w1") as sender:
        assert await sender.step(T0) == 2
        assert await sender.step(T0 + dt.timedelta(hours=1)) == 0  # nothing twice
    assert [(m["kind"], m["order_no"]) for m in fake.got] == [("accepted", ORDER["order_no"])] * 1 + [
        ("answered", ORDER["order_no"])
    ]
    assert fake.got[1]["answer"] == answer and fake.got[1]["order_id"] == order_id
    assert [r.status for r in _outbox(store)] == ["sent", "sent"]
    shown = detail_text(settings, orders.get_order(store, order_id, actor="cli:test"))
    assert "to 12345:" in shown and "answered" in shown and "sent" in shown


async def test_12345_down_is_tried_again_later_and_told_once_when_back(
    store: Store, tmp_path: Path, fake: Fake12345
) -> None:
    settings = _settings(tmp_path, store, fake.port)
    order_id = _order_from_12345(store, settings)
    async with Sender12345(settings.hotline12345, store, "w1") as sender:
        assert await sender.step(T0) == 1  # nothing listens: connection refused
        (first,) = _outbox(store)
        assert (first.status, first.attempts) == ("pending", 1) and "no answer" in first.last_error
        assert first.next_attempt_at == T0 + dt.timedelta(seconds=60)
        assert await sender.step(T0 + dt.timedelta(seconds=59)) == 0  # not due yet
        await fake.start()
        fake.status = 503
        t1 = T0 + dt.timedelta(seconds=60)
        assert await sender.step(t1) == 1
        (second,) = _outbox(store)
        assert (second.attempts, second.next_attempt_at) == (2, t1 + dt.timedelta(seconds=120))
        assert "HTTP 503" in second.last_error
        fake.status = 200
        t2 = t1 + dt.timedelta(hours=5)  # down for hours: still there, still sent
        assert await sender.step(t2) == 1 and await sender.step(t2 + dt.timedelta(hours=1)) == 0
    assert [(m["kind"], m["order_id"]) for m in fake.got] == [("accepted", order_id)]
    (last,) = _outbox(store)
    assert (last.status, last.attempts, last.final_at) == ("sent", 3, t2)


async def test_a_refusal_is_a_dead_letter_with_its_reason(store: Store, tmp_path: Path, fake: Fake12345) -> None:
    settings = _settings(tmp_path, store, fake.port)
    order_id = _order_from_12345(store, settings)
    # A department giving the order back to the hotline is ours alone: 12345 hears nothing
    # (退单 is the hotline giving it back to 12345: cases/exchange12345.py).
    orders.return_order(store, order_id, actor="dept", reason="不属于本部门职责", now=T0)
    await fake.start()
    fake.status = 400
    async with Sender12345(settings.hotline12345, store, "w1") as sender:
        assert await sender.step(T0) == 1
        assert await sender.step(T0 + dt.timedelta(days=1)) == 0  # never again
    rows = _outbox(store)
    assert [(r.kind, r.status, r.attempts) for r in rows] == [("accepted", "failed", 1)]
    assert all("HTTP 400" in r.last_error for r in rows)
    detail = orders.get_order(store, order_id, actor="cli:test")
    assert "failed (dead letter) after 1 tries: HTTP 400" in detail_text(settings, detail)
    assert [m["status"] for m in detail.as_json()["to_12345"]] == ["failed"]


def test_an_order_not_from_12345_tells_nobody(store: Store, tmp_path: Path) -> None:
    settings = _settings(tmp_path, store, 9)
    made = orders.create_order(
        store, settings, kind="voice_message", category="policy_question", summary="留言", created_by="ivr", now=T0
    )
    orders.return_order(store, made.id, actor="dept", reason="不清楚", now=T0)
    orders.reassign_order(store, settings, made.id, actor="sup", department="养老保险", now=T0)
    orders.answer_order(store, settings, made.id, actor="clerk", answer="已答复", reply_via="none", now=T0)
    assert _outbox(store) == []


def test_a_change_rolled_back_tells_nothing(store: Store, tmp_path: Path) -> None:
    settings = _settings(tmp_path, store, 9)
    order_id = _order_from_12345(store, settings)
    with pytest.raises(orders.NoReplyNumber):  # no caller number: the answer is rolled back
        orders.answer_order(store, settings, order_id, actor="clerk", answer="答复", reply_via="sms", now=T0)
    assert [r.kind for r in _outbox(store)] == ["accepted"]


# Concurrent claims: PostgreSQL's FOR UPDATE SKIP LOCKED (SQLite writers take turns).
@postgres_only
async def test_two_senders_at_once_send_each_message_once(store: Store, tmp_path: Path, fake: Fake12345) -> None:
    settings = _settings(tmp_path, store, fake.port)
    for n in range(30):
        _order_from_12345(store, settings, f"HZ-{n:04d}")
    await fake.start()
    async with (
        Sender12345(settings.hotline12345, store, "w1") as one,
        Sender12345(settings.hotline12345, store, "w2") as two,
    ):
        tried = await asyncio.gather(*(s.step(T0) for s in (one, two, one, two)))
    assert sum(tried) == 30
    ids = [m["message_id"] for m in fake.got]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert {r.status for r in _outbox(store)} == {"sent"}


# Concurrent claims: PostgreSQL's FOR UPDATE SKIP LOCKED (SQLite writers take turns).
@postgres_only
def test_claims_at_once_never_share_a_message(store: Store, tmp_path: Path) -> None:
    settings = _settings(tmp_path, store, 9)
    for n in range(40):
        _order_from_12345(store, settings, f"HZ-{n:04d}")
    start = threading.Barrier(8)

    def claimer(n: int) -> list[int]:
        start.wait()
        return [m.id for m in outbox12345.claim(store, NAME, f"w{n}", 5, T0)]

    with ThreadPoolExecutor(8) as pool:
        claimed = [i for ids in pool.map(claimer, range(8)) for i in ids]
    assert len(claimed) == 40 and len(set(claimed)) == 40
