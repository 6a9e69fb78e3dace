"""The hotline's moves toward 12345 (退单, 延期, 转办, a dead letter sent again) and the whole
exchange against the fake 12345 (tests/fake12345.py, written from the OpenAPI document the
console serves), on SQLite and PostgreSQL: orders in over real HTTP, signed; our messages
out through the outbox, checked by the fake against the document's Message schema; 12345
down for a while; replays and bad signatures both ways. The sender's clock is passed in."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cases import exchange12345, orders
from cases.errors import BadOrderInput, Not12345Order, NotResendable, OrderStateError
from cases.outbox12345 import OUTBOX
from cases.sender12345 import Sender12345
from console.hotline12345_openapi import document
from core.db import Store
from core.settings import Settings
from hotline.cli import main
from hotline.fake12345 import Fake12345, free_port
from hotline.orders import detail_text
from tests.conftest import make_settings
from tests.protocol.test_console import AGENT_PW, SUP_PW, _client, _console, _sign_in

KEY = "city-12345-shared-key-0123456789abcdef"
NAME, US = "city", "hz12333"
T0 = dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.UTC)
ORDER: dict[str, Any] = {
    "order_no": "HZ20261208-0007",
    "title": "失业保险金申领",
    "content": "市民询问失业保险金如何申领，身份证330106********1234。",
    "category": "求助",
    "caller_number": "13812345678",
    "deadline": "2026-12-11T17:30:00+08:00",
}


def _env(port: int) -> dict[str, str]:
    return {
        "HOTLINE_HOTLINE12345_ENABLED": "true",
        "HOTLINE_HOTLINE12345_COUNTERPARTS": json.dumps({NAME: KEY}),
        "HOTLINE_HOTLINE12345_ENDPOINTS": json.dumps({NAME: f"http://127.0.0.1:{port}/notify"}),
        "HOTLINE_HOTLINE12345_OUR_NAME": US,
        "HOTLINE_HOTLINE12345_RETRY_BASE_S": "60",
        "HOTLINE_HOTLINE12345_RETRY_MAX_S": "600",
        "HOTLINE_HOTLINE12345_SEND_TIMEOUT_S": "2",
    }


@pytest.fixture
async def fake(tmp_path: Path, store: Store) -> AsyncIterator[Fake12345]:
    port = free_port()
    settings = make_settings(tmp_path, store.url, **_env(port))
    server = Fake12345(document(settings.hotline12345), NAME, US, KEY, port=port, clock=T0.timestamp)
    yield server
    await server.stop()


def _settings(tmp_path: Path, store: Store, fake: Fake12345) -> Settings:
    return make_settings(tmp_path, store.url, **_env(fake.port))


def _from_12345(store: Store, settings: Settings, order_no: str = ORDER["order_no"]) -> int:
    from cases.contract12345 import Signed
    from cases.intake12345 import receive

    body = json.dumps(ORDER | {"order_no": order_no}, ensure_ascii=False).encode()
    return receive(store, settings, Signed(NAME, 0, f"nonce-{order_no}-0000000"), body, now=T0).order_id


def _rows(store: Store) -> list[Any]:
    with store.transaction() as c:
        return list(c.execute(select(OUTBOX).order_by(OUTBOX.c.id)))


def _after_the_real_clock() -> dt.datetime:
    """A moment after both T0 and now: what the CLI or the console wrote on the real clock
    is due then, as what the tests wrote at T0 is."""
    return max(T0, dt.datetime.now(dt.UTC)) + dt.timedelta(minutes=5)


async def _send_all(settings: Settings, store: Store, now: dt.datetime) -> int:
    async with Sender12345(settings.hotline12345, store, "w1") as sender:
        return await sender.step(now)


async def test_the_exchange_both_ways_with_replays_and_bad_signatures(store: Store, tmp_path: Path) -> None:
    """12345 sends an order over HTTP (once, a replay refused, a wrong key refused); the
    hotline takes it and gives it back (退单); 12345 hears both, each once, signed."""
    port = free_port()
    async with _console(store, tmp_path, **_env(port)) as (base, store, _), _client() as http:
        doc = await (await http.get(f"{base}/api/12345/openapi.json")).json()
        fake = Fake12345(doc, NAME, US, KEY, port=port)  # the real clock: the console checks it
        try:
            status, answer = await fake.send_order(http, base, ORDER, nonce="replayed-nonce-0001")
            assert (status, answer["status"]) == (200, "accepted")
            assert (await fake.send_order(http, base, ORDER, nonce="replayed-nonce-0001"))[0] == 403
            assert (await fake.send_order(http, base, ORDER | {"order_no": "X"}, key="k" * 40))[0] == 401
            settings = make_settings(tmp_path, store.url, **_env(port))
            order_id = answer["order_id"]
            exchange12345.return_to_12345(store, order_id, actor="sup", reason="不属于人社业务，请改派")
            await fake.start()
            assert await _send_all(settings, store, dt.datetime.now(dt.UTC)) == 2
        finally:
            await fake.stop()
    assert fake.kinds() == [("accepted", ORDER["order_no"]), ("returned", ORDER["order_no"])]
    assert fake.got[1]["reason"] == "不属于人社业务，请改派" and fake.refused == []
    detail = orders.get_order(store, order_id, actor="cli:test")
    assert detail.order.status == "closed" and detail.events[-1].action == "returned_to_12345"


async def test_our_bad_signature_is_refused_and_kept_as_a_dead_letter(
    store: Store, tmp_path: Path, fake: Fake12345
) -> None:
    settings = _settings(tmp_path, store, fake)
    _from_12345(store, settings)
    fake.key = "another-key-0123456789abcdef-0123456789"  # the two sides' keys differ
    await fake.start()
    assert await _send_all(settings, store, T0) == 1
    assert fake.got == [] and fake.refused == [(401, "bad signature")]
    assert [(r.status, r.last_error[:8]) for r in _rows(store)] == [("failed", "HTTP 401")]


async def test_12345_down_for_a_while_loses_nothing(store: Store, tmp_path: Path, fake: Fake12345) -> None:
    """延期 asked while 12345 refuses connections, then answers 503, then is back: the
    messages wait with their tries and are each taken once."""
    settings = _settings(tmp_path, store, fake)
    order_id = _from_12345(store, settings)
    until = dt.datetime(2026, 12, 18, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    before = orders.get_order(store, order_id, actor="t").order.due_at
    exchange12345.ask_extension(store, order_id, actor="sup", until=until, reason="需调取历年缴费记录", now=T0)
    assert orders.get_order(store, order_id, actor="t").order.due_at == before  # 12345's, until it agrees
    assert await _send_all(settings, store, T0) == 2  # connection refused
    assert {(r.status, r.attempts) for r in _rows(store)} == {("pending", 1)}
    await fake.start()
    fake.status = 503
    t1 = T0 + dt.timedelta(seconds=60)
    fake.clock = t1.timestamp
    assert await _send_all(settings, store, t1) == 2
    assert fake.got == [] and all("HTTP 503" in r.last_error for r in _rows(store))
    fake.status = 200
    t2 = t1 + dt.timedelta(hours=3)
    fake.clock = t2.timestamp
    assert await _send_all(settings, store, t2) == 2 and await _send_all(settings, store, t2) == 0
    assert [k for k, _ in fake.kinds()] == ["accepted", "extension"]
    assert fake.got[1]["until"] == until.astimezone(dt.UTC).isoformat() and fake.got[1]["reason"]
    assert {(r.status, r.attempts) for r in _rows(store)} == {("sent", 3)}
    # 12345 agreed (its own channel): recorded here, and only now is the order due later.
    order = exchange12345.grant_extension(store, order_id, actor="sup", until=until, note="12345 同意", now=t2)
    assert order.due_at == until.astimezone(dt.UTC)
    shown = detail_text(settings, orders.get_order(store, order_id, actor="t"))
    assert "extension" in shown and "extension_granted" in shown


async def test_forwarded_orders_carry_their_text_number_and_deadline(
    store: Store, tmp_path: Path, fake: Fake12345
) -> None:
    settings = _settings(tmp_path, store, fake)
    ours = orders.create_order(
        store, settings, kind="call", category="complaint", summary="小区噪音扰民\n\n夜间施工噪音，居民要求处理。",
        created_by="agent1", caller_number="13900001111", now=T0,
    )  # fmt: skip
    exchange12345.forward_to_12345(store, settings, ours.id, actor="sup", counterpart=NAME, reason="非人社业务", now=T0)
    await fake.start()
    assert await _send_all(settings, store, T0) == 1
    (m,) = fake.got
    assert (m["kind"], m["order_no"], m["order_id"]) == ("forwarded", f"{US}-{ours.id}", ours.id)
    assert (m["title"], m["caller_number"], m["reason"]) == ("小区噪音扰民", "13900001111", "非人社业务")
    assert "夜间施工噪音" in m["content"] and m["deadline"] == ours.due_at.isoformat()
    detail = orders.get_order(store, ours.id, actor="t")
    assert detail.order.status == "closed" and detail.events[-1].detail["counterpart"] == NAME
    assert "to 12345:" in detail_text(settings, detail) and "forwarded" in detail_text(settings, detail)


def test_each_move_only_where_it_applies(store: Store, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store.url, **_env(9))
    from_12345 = _from_12345(store, settings)
    ours = orders.create_order(store, settings, kind="call", category="how_to", summary="问题", created_by="a", now=T0)
    with pytest.raises(Not12345Order, match="did not come from 12345"):
        exchange12345.return_to_12345(store, ours.id, actor="sup", reason="x", now=T0)
    with pytest.raises(Not12345Order, match="return-to-12345"):
        exchange12345.forward_to_12345(store, settings, from_12345, actor="s", counterpart=NAME, reason="x", now=T0)
    with pytest.raises(BadOrderInput, match="unknown 12345 counterpart 'town'"):
        exchange12345.forward_to_12345(store, settings, ours.id, actor="s", counterpart="town", reason="x", now=T0)
    with pytest.raises(BadOrderInput, match="not after"):
        exchange12345.ask_extension(store, from_12345, actor="s", until=T0, reason="x", now=T0)
    with pytest.raises(BadOrderInput, match="no extension was asked"):
        exchange12345.grant_extension(store, from_12345, actor="s", until=T0 + dt.timedelta(days=30), now=T0)
    with pytest.raises(BadOrderInput, match="full ID number"):
        exchange12345.return_to_12345(store, from_12345, actor="s", reason="身份证330106199001011234", now=T0)
    exchange12345.return_to_12345(store, from_12345, actor="sup", reason="非本中心业务", now=T0)
    with pytest.raises(OrderStateError):  # closed: once is all
        exchange12345.return_to_12345(store, from_12345, actor="sup", reason="again", now=T0)
    assert [r.kind for r in _rows(store)] == ["accepted", "returned"]  # the refusals wrote nothing


async def test_resend_of_a_dead_letter_from_the_command_line(
    store: Store, tmp_path: Path, fake: Fake12345, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, store, fake)
    order_id = _from_12345(store, settings)
    await fake.start()
    fake.status = 400
    fake_status_refuses = await _send_all(settings, store, T0)
    assert fake_status_refuses == 1 and [r.status for r in _rows(store)] == ["failed"]
    monkeypatch.chdir(tmp_path)
    for name, value in _env(fake.port).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)
    (dead,) = _rows(store)
    shown = capsys.readouterr() and main(["orders", "show", str(order_id)])
    assert shown == 0 and f"message {dead.id}" in capsys.readouterr().out
    assert main(["orders", "resend-12345", str(dead.id)]) == 0
    assert "pending again" in capsys.readouterr().out
    assert main(["orders", "resend-12345", str(dead.id)]) != 0  # pending now: not twice
    assert "it is pending, not failed" in capsys.readouterr().err
    with pytest.raises(NotResendable, match="no such message"):
        exchange12345.resend(store, 9999, actor="t")
    fake.status = 200
    # The command ran on the real clock (a CLI takes none): the sender and 12345 go on from there.
    later = _after_the_real_clock()
    fake.clock = later.timestamp
    assert await _send_all(settings, store, later) == 1
    assert [k for k, _ in fake.kinds()] == ["accepted"] and [r.status for r in _rows(store)] == ["sent"]
    events = orders.get_order(store, order_id, actor="t").events
    (resent,) = [e for e in events if e.action == "resent_to_12345"]  # at the real clock, not T0
    assert resent.actor.startswith("cli") and resent.detail["message"] == dead.id


def test_the_openapi_document_describes_what_we_send(tmp_path: Path, store: Store) -> None:
    from openapi_spec_validator import validate

    from cases.outbox12345 import FORWARDED, KINDS

    doc = document(make_settings(tmp_path, store.url, **_env(9)).hotline12345)
    validate(doc)  # a valid OpenAPI 3.0 document, x-webhooks and all
    message = doc["components"]["schemas"]["Message"]
    assert set(message["properties"]["kind"]["enum"]) == {*KINDS.values(), FORWARDED}
    post = doc["x-webhooks"]["orderMessage"]["post"]
    assert {p["name"] for p in post["parameters"]} >= {"X-12345-Signature", "X-12345-Nonce"}


async def test_the_order_page_shows_the_messages_and_a_supervisor_returns_the_order(
    store: Store, tmp_path: Path
) -> None:
    port = free_port()
    async with _console(store, tmp_path, **_env(port)) as (base, store, _), _client() as sup:
        settings = make_settings(tmp_path, store.url, **_env(port))
        order_id = _from_12345(store, settings)
        async with _client() as agent:  # an agent has no say in it
            token = await _sign_in(agent, base, "a1001", AGENT_PW)
            r = await agent.post(f"{base}/orders/{order_id}/return-to-12345", data={"csrf": token, "reason": "x"})
            assert r.status == 403
        token = await _sign_in(sup, base, "sup", SUP_PW)
        page = await (await sup.get(f"{base}/orders/{order_id}")).text()
        assert 'id="to-12345"' in page and "签收" in page and "待发送" in page and 'id="return-12345-form"' in page
        form = {"csrf": token, "reason": "非人社业务，请改派住建部门"}
        r = await sup.post(f"{base}/orders/{order_id}/return-to-12345", data=form, allow_redirects=False)
        assert r.status == 303
        # The 退单 was made by the console, on the real clock: the sender and 12345 go on from there.
        later = _after_the_real_clock()
        fake = Fake12345(document(settings.hotline12345), NAME, US, KEY, port=port, clock=later.timestamp)
        await fake.start()
        try:
            fake.status = 400  # 12345 refuses the 退单 for good: a dead letter, shown with its reason
            assert await _send_all(settings, store, later) == 2
        finally:
            await fake.stop()
        page = await (await sup.get(f"{base}/orders/{order_id}")).text()
        assert page.count('class="to-12345-failed"') == 2 and "HTTP 400" in page and "退单" in page
        assert "已办结" in page and 'id="return-12345-form"' not in page  # closed here


def test_the_report_counts_the_exchange_and_the_on_time_rate_for_12345(store: Store, tmp_path: Path) -> None:
    import csv
    import io

    from reports import render
    from reports.period import parse_period
    from reports.report import build

    settings = make_settings(tmp_path, store.url, **_env(9))
    on_time, late, given_back = (_from_12345(store, settings, f"HZ-R{n}") for n in range(3))
    due = orders.get_order(store, late, actor="t").order.due_at  # 12345's: 2026-12-11 17:30 +08:00
    until = due + dt.timedelta(days=7)
    exchange12345.ask_extension(store, late, actor="s", until=until, reason="材料未齐", now=T0)
    orders.answer_order(store, settings, on_time, actor="c", answer="已办理", reply_via="none", now=T0)
    orders.answer_order(
        store, settings, late, actor="c", answer="已办理", reply_via="none", now=due + dt.timedelta(hours=1)
    )
    exchange12345.return_to_12345(store, given_back, actor="s", reason="非本中心业务", now=T0)
    ours = orders.create_order(
        store, settings, kind="call", category="complaint", summary="噪音", created_by="a", now=T0
    )
    exchange12345.forward_to_12345(store, settings, ours.id, actor="s", counterpart=NAME, reason="非人社业务", now=T0)
    report = build(store, parse_period("2026-12-01", "2026-12-31", "Asia/Shanghai"), settings.queue, now=T0)
    cases = report.as_dict()["casework"]
    got = {k: v for k, v in cases.items() if "12345" in k}
    assert got == {
        "from_12345_received": 3,
        "from_12345_answered": 2,
        "from_12345_on_time": 1,
        "from_12345_on_time_rate": 0.5,
        "to_12345_returned": 1,
        "to_12345_extensions": 1,
        "to_12345_forwarded": 1,
    }
    text = render.text(report)
    assert any(line.startswith("12345派单按时办结率") and line.endswith("50.0%") for line in text.splitlines())
    figures = {r["key"]: r["value"] for r in csv.DictReader(io.StringIO(render.csv_tables(report)["casework.csv"]))}
    assert (figures["to_12345_forwarded"], figures["from_12345_on_time_rate"]) == ("1", "0.5")
    assert "转办至12345" in render.as_html(report)


async def test_the_desk_pops_the_12345_number_of_a_transferred_call_in_chromium(store: Store, tmp_path: Path) -> None:
    from core.models import CallStep, utcnow
    from tests.browser import chromium, sign_in
    from tests.protocol.test_console import _call_on

    async with _console(store, tmp_path, **_env(9)) as (base, store, _):
        ours = _from_12345(store, make_settings(tmp_path, store.url, **_env(9)), "HZ-0042")
        _call_on(store, "call-t1", "1001", None, current=True)
        with store.session() as s:  # as the IVR records a transferred call (tests/real: the real path)
            s.add(
                CallStep(call_id="call-t1", seq=0, at=utcnow(), kind="12345", node=None, detail={"order_no": "HZ-0042"})
            )
        async with chromium() as browser:
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            await sign_in(page, base, "a1001", AGENT_PW, lands_on="agent")
            shown = page.locator("#pop-12345")
            await shown.wait_for(state="visible")
            assert await shown.inner_text() == f"HZ-0042 · 工单 #{ours}"
            assert "12345工单号" in await page.locator("#screen-pop").inner_text()


async def test_hotline_fake_12345_for_the_demo_sends_an_order_and_takes_our_messages(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command a demo runs: `--send` signs an order into the console; without it, the
    fake takes what the sender writes it (read from its stdout, a JSON line a message)."""
    import asyncio
    import os
    import sys

    port = free_port()
    env = _env(port) | {"HOTLINE_HOTLINE12345_COUNTERPARTS": json.dumps({NAME: KEY, "demo-12345": KEY})}
    async with _console(store, tmp_path, **env) as (base, store, _):
        monkeypatch.chdir(tmp_path)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        order_file = tmp_path / "order.json"
        order_file.write_text(json.dumps(ORDER, ensure_ascii=False), encoding="utf-8")
        argv = ["fake-12345", "--name", NAME, "--console", base, "--send", str(order_file)]
        assert await asyncio.to_thread(main, argv) == 0
        answer = json.loads(capsys.readouterr().out)
        assert (answer["http_status"], answer["status"], answer["order_no"]) == (200, "accepted", ORDER["order_no"])
        assert await asyncio.to_thread(main, [*argv[:3], "--console", base, "--send", "/nonexistent.json"]) == 1
        assert "not an order to send" in capsys.readouterr().err
        assert await asyncio.to_thread(main, ["fake-12345", "--name", "nobody", "--console", base]) == 1
        assert "'nobody' is not in hotline12345.counterparts" in capsys.readouterr().err

        command = [str(Path(sys.executable).parent / "hotline"), "fake-12345", "--name", NAME, "--port", str(port)]
        proc = await asyncio.create_subprocess_exec(
            *command, "--console", base, cwd=tmp_path, env=os.environ | env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stderr is not None and proc.stdout is not None
            said = await asyncio.wait_for(proc.stderr.readline(), 30)
            assert b"taking messages at http://127.0.0.1:" in said, said
            settings = make_settings(tmp_path, store.url, **env)
            assert await _send_all(settings, store, dt.datetime.now(dt.UTC)) == 1
            taken = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
            assert (taken["kind"], taken["order_no"]) == ("accepted", ORDER["order_no"])
        finally:
            proc.terminate()
            await proc.wait()
