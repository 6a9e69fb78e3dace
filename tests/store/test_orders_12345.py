"""Work orders sent by 12345 (派单) over real HTTP, on SQLite and PostgreSQL: the console on a
local port and a client that signs as docs/casework.md ("12345") tells 12345 to, written
here from that contract (not by calling the server's signing function).

An order becomes a work order once, with its deadline and number; sent again it is the same
order, changed it is refused; every refusal has its status and stores nothing; the caller's
number is masked in the log; and the OpenAPI document the console serves says what the
endpoint does."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from sqlalchemy import func, select

from cases import orders as cases_orders
from cases.contract12345 import Signed
from cases.errors import ReplayedNonce
from cases.intake12345 import receive
from core.db import Store
from core.models import Hotline12345Nonce, Hotline12345Order, WorkOrder, WorkOrderEvent
from hotline.orders import detail_text
from tests.conftest import make_settings
from tests.protocol.test_console import SUP_PW, _client, _console, _sign_in

KEY = "city-12345-shared-key-0123456789abcdef"
NAME = "city"
ORDER: dict[str, Any] = {
    "order_no": "HZ20261207-0001",
    "title": "养老保险补缴咨询",
    "content": "市民来电询问中断两年的职工养老保险能否补缴，需要哪些材料。",
    "category": "咨询",
    "caller_number": "+86 138-1234-5678",
    "deadline": "2026-12-11T17:30:00+08:00",
    "department": "养老保险",
}
ENV = {
    "HOTLINE_HOTLINE12345_ENABLED": "true",
    "HOTLINE_HOTLINE12345_COUNTERPARTS": json.dumps({NAME: KEY}),
}


class Sender:
    """12345's side: signs the raw body as the contract says and posts it."""

    def __init__(self, http: ClientSession, base: str) -> None:
        self.http, self.url = http, f"{base}/api/12345/orders"

    async def send(
        self,
        order: dict[str, Any] | bytes,
        *,
        name: str = NAME,
        key: str = KEY,
        at: float | None = None,
        nonce: str | None = None,
        drop: str = "",
    ) -> tuple[int, dict[str, Any]]:
        body = order if isinstance(order, bytes) else json.dumps(order, ensure_ascii=False).encode()
        timestamp = str(int(time.time() if at is None else at))
        nonce = nonce or secrets.token_urlsafe(24)
        signature = hmac.new(key.encode(), f"{timestamp}\n{nonce}\n".encode() + body, hashlib.sha256).hexdigest()
        headers = {
            "X-12345-Counterpart": name,
            "X-12345-Timestamp": timestamp,
            "X-12345-Nonce": nonce,
            "X-12345-Signature": signature,
            "Content-Type": "application/json",
        }
        headers.pop(drop, None)
        r = await self.http.post(self.url, data=body, headers=headers)
        return r.status, await r.json()


async def _chunked(sender: Sender, size: int) -> tuple[int, dict[str, Any]]:
    """A body sent in chunks, with no Content-Length to refuse it by: read up to the limit only."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // 1024):
            yield b" " * 1024

    r = await sender.http.post(sender.url, data=body(), headers={"X-12345-Counterpart": NAME})
    return r.status, await r.json()


@pytest.fixture
async def console(store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Store]]:
    async with _console(store, tmp_path, **ENV) as (base, store, _):
        yield base, store


def _count(store: Store, model: Any) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


async def test_an_order_becomes_one_work_order_with_its_deadline_and_number(
    console: tuple[str, Store], caplog: pytest.LogCaptureFixture
) -> None:
    base, store = console
    caplog.set_level(logging.INFO)
    async with _client() as http:
        sender = Sender(http, base)
        status, answer = await sender.send(ORDER)
        assert (status, answer["status"], answer["order_no"]) == (200, "accepted", ORDER["order_no"]), answer
        order_id = answer["order_id"]
        # The same order again, its JSON written otherwise (keys reordered, the number spelt
        # nationally): the same local order, nothing new.
        again = dict(reversed(list(ORDER.items()))) | {"caller_number": "13812345678"}
        assert await sender.send(again) == (
            200,
            {"order_id": order_id, "order_no": ORDER["order_no"], "status": "duplicate"},
        )
        status, refused = await sender.send(ORDER | {"title": "养老保险补缴（改）"})
        assert status == 409 and str(order_id) in refused["error"]
        status, other = await sender.send(ORDER | {"order_no": "HZ20261207-0002"})
        assert (status, other["status"]) == (200, "accepted") and other["order_id"] != order_id
    with store.session() as s:
        made = s.get_one(WorkOrder, order_id)
        assert (made.kind, made.category, made.department, made.status) == (
            "12345",
            "policy_question",
            "养老保险",
            "open",
        )
        assert made.due_at == dt.datetime(2026, 12, 11, 9, 30, tzinfo=dt.UTC)  # as 12345 set it, not our calendar
        assert (made.caller_number, made.created_by) == ("13812345678", "12345:city")
        assert made.summary.startswith(ORDER["title"]) and ORDER["content"] in made.summary
        link = s.get_one(Hotline12345Order, (NAME, ORDER["order_no"]))
        assert link.order_id == order_id
        created = s.scalars(select(WorkOrderEvent).where(WorkOrderEvent.order_id == order_id)).one()
        assert created.action == "created" and created.actor == "12345:city"
        assert {k: created.detail[k] for k in ("from", "counterpart", "order_no")} == {
            "from": "12345", "counterpart": NAME, "order_no": ORDER["order_no"],
        }  # fmt: skip
    assert _count(store, WorkOrder) == 2  # this one and HZ20261207-0002
    # Shown where orders are shown: `hotline orders show` and the console's page.
    detail = cases_orders.get_order(store, order_id, actor="cli:test")
    assert detail.as_json()["from_12345"] == {"counterpart": NAME, "order_no": ORDER["order_no"]}
    settings = make_settings(Path("."), store.url)
    assert f"12345       {ORDER['order_no']} from {NAME}" in detail_text(settings, detail)
    async with _client() as sup:
        await _sign_in(sup, base, "sup", SUP_PW)
        page = await (await sup.get(f"{base}/orders/{order_id}")).text()
        assert f'<dd id="order-12345">{ORDER["order_no"]} · {NAME}</dd>' in page
    assert "13812345678" not in caplog.text and "138****5678" in caplog.text


async def test_every_refusal_has_its_status_and_stores_nothing(
    console: tuple[str, Store], caplog: pytest.LogCaptureFixture
) -> None:
    base, store = console
    caplog.set_level(logging.INFO)
    async with _client() as http:
        sender = Sender(http, base)
        now = time.time()
        refusals: list[tuple[str, tuple[int, dict[str, Any]], int, str]] = [
            ("bad signature", await sender.send(ORDER, key="another-key-" + KEY), 401, "Signature"),
            ("unknown counterpart", await sender.send(ORDER, name="town"), 401, "unknown counterpart"),
            ("no signature", await sender.send(ORDER, drop="X-12345-Signature"), 401, "X-12345-Signature"),
            ("short nonce", await sender.send(ORDER, nonce="short"), 401, "X-12345-Nonce"),
            ("stale", await sender.send(ORDER, at=now - 301), 403, "behind our clock"),
            ("ahead", await sender.send(ORDER, at=now + 301), 403, "ahead of our clock"),
            ("too large", await sender.send(ORDER | {"padding": "x" * 65 * 1024}), 413, "at most 65536"),
            ("not JSON", await sender.send(b'{"order_no": "A1",'), 400, "body: not JSON"),
            ("not an object", await sender.send(b"[1, 2]"), 400, "body: a JSON object"),
            ("unknown category", await sender.send(ORDER | {"category": "表扬"}), 400, "category: unknown '表扬'"),
            ("unknown department", await sender.send(ORDER | {"department": "财务"}), 400, "department"),
            ("no zone", await sender.send(ORDER | {"deadline": "2026-12-11T17:30:00"}), 400, "deadline: no zone"),
            ("bad number", await sender.send(ORDER | {"caller_number": "call me"}), 400, "caller_number"),
            ("full ID", await sender.send(ORDER | {"content": "身份证330106199001011234"}), 400, "content"),
            ("long order_no", await sender.send(ORDER | {"order_no": "N" * 41}), 400, "order_no"),
        ]
        refusals.append(("too large, chunked", await _chunked(sender, 65 * 1024), 413, "at most 65536"))
        for what, (status, answer), expected, said in refusals:
            assert status == expected and said in answer["error"], (what, status, answer)
        assert _count(store, WorkOrder) == 0 and _count(store, Hotline12345Order) == 0
        # A refusal for its body took no nonce (it may be corrected and signed again)...
        assert _count(store, Hotline12345Nonce) == 0
        # ...but a taken request's nonce is taken: the same nonce again, even on another
        # order and properly signed, is a replay.
        nonce = secrets.token_urlsafe(24)
        assert (await sender.send(ORDER, nonce=nonce))[0] == 200
        status, answer = await sender.send(ORDER | {"order_no": "HZ-other"}, nonce=nonce)
        assert status == 403 and "used before" in answer["error"]
    assert _count(store, WorkOrder) == 1 and _count(store, Hotline12345Nonce) == 1
    assert "13812345678" not in caplog.text


async def test_the_openapi_document_says_what_the_endpoint_does(console: tuple[str, Store]) -> None:
    base, store = console
    async with _client() as http:
        r = await http.get(f"{base}/api/12345/openapi.json")  # public: no sign-in
        assert r.status == 200
        doc = json.loads(await r.text())
        assert doc["openapi"].startswith("3.0")
        post = doc["paths"]["/api/12345/orders"]["post"]
        schema = doc["components"]["schemas"]["Order"]
        documented = set(post["responses"])
        assert {"200", "400", "401", "403", "409", "413"} <= documented
        headers = {p["name"] for p in post["parameters"] if p["in"] == "header" and p["required"]}
        assert headers == {"X-12345-Counterpart", "X-12345-Timestamp", "X-12345-Nonce", "X-12345-Signature"}
        sender = Sender(http, base)
        assert set(schema["required"]) == {"order_no", "title", "content", "category", "deadline"}
        for field in schema["required"]:  # each one the endpoint requires, naming it
            status, answer = await sender.send({k: v for k, v in ORDER.items() if k != field})
            assert (str(status), answer.get("field")) == ("400", field), answer
        for field in set(schema["properties"]) - set(schema["required"]):  # the others may be left out
            status, answer = await sender.send({k: v for k, v in ORDER.items() if k != field} | {"order_no": field})
            assert str(status) in documented and answer["status"] == "accepted", answer
        assert set(schema["properties"]["category"]["enum"]) >= {ORDER["category"]}
        for drop in headers:
            assert str((await sender.send(ORDER, drop=drop))[0]) in documented
    assert _count(store, WorkOrder) == len(schema["properties"]) - len(schema["required"])


def test_nonces_are_swept_after_twice_the_skew(store: Store, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store.url, **ENV)
    body = json.dumps(ORDER).encode()
    t0 = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
    first = receive(store, settings, Signed(NAME, 0, "n" * 16), body, now=t0)
    with pytest.raises(ReplayedNonce):
        receive(store, settings, Signed(NAME, 0, "n" * 16), body, now=t0 + dt.timedelta(seconds=599))
    assert _count(store, Hotline12345Nonce) == 1  # the replay took nothing
    # Another counterpart's nonce is its own.
    assert receive(store, settings, Signed("town", 0, "n" * 16), body, now=t0).status == "accepted"
    later = receive(store, settings, Signed(NAME, 0, "m" * 16), body, now=t0 + dt.timedelta(seconds=601))
    assert (later.order_id, later.status) == (first.order_id, "duplicate")
    with store.session() as s:
        kept = {tuple(r) for r in s.execute(select(Hotline12345Nonce.counterpart, Hotline12345Nonce.nonce))}
    assert kept == {(NAME, "m" * 16)}


def test_the_same_order_sent_at_once_is_one_work_order(store: Store, tmp_path: Path) -> None:
    """12345 retrying before its first try was answered: the key decides, one order wins and
    the others are read back as duplicates of it (cases.intake12345._LostRace)."""
    settings = make_settings(tmp_path, store.url, **ENV)
    body = json.dumps(ORDER).encode()
    start = threading.Barrier(6)

    def send(n: int) -> tuple[int, str]:
        start.wait()
        got = receive(store, settings, Signed(NAME, 0, f"nonce-at-once-{n:04d}"), body)
        return got.order_id, got.status

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    assert len({order_id for order_id, _ in answers}) == 1
    assert sorted(status for _, status in answers) == ["accepted"] + ["duplicate"] * 5
    assert _count(store, WorkOrder) == 1
