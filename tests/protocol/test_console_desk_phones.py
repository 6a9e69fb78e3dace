"""The agent desk's phones (我的话机), over real HTTP and in chromium: each of the agent's
phones with its own registration, and the one the queue rings. An agent whose softphone is
registered and in the queue is never told that the queue cannot reach them because the
desk phone is not registered (issue 26, "The desk's phone status")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from console import accounts
from console.app import ConsoleDeps, make_app
from core.db import Store
from core.models import Agent, Call, utcnow
from core.sample_port import SampleBusinessPort
from ivr.agents import AgentControl
from tests.browser import chromium, sign_in
from tests.conftest import PEPPER, make_settings
from tests.protocol.test_console import AGENT_PW, Waiting, _client, _sign_in

DESK, SOFTPHONE = "PJSIP/1001", "PJSIP/1001-web"


@dataclass
class Registrations:
    """Stands in for the AMI monitor's device states (tested against Asterisk in tests/real)."""

    registered: dict[str, bool] = field(default_factory=dict)

    def phone_registered(self, interface: str) -> bool | None:
        return self.registered.get(interface)


@asynccontextmanager
async def _desk(store: Store, tmp_path: Path, phones: Registrations) -> AsyncIterator[str]:
    settings = make_settings(tmp_path, store.url, HOTLINE_SIP_SOFTPHONE_SECRET="desk-test-softphone-secret")
    accounts.add_user(store, "a1001", AGENT_PW, "agent", "坐席1001", "1001", DESK)
    deps = ConsoleDeps(
        settings,
        store,
        SampleBusinessPort(store, PEPPER),
        AgentControl(settings, store),
        Waiting(),
        phones=phones,
    )
    server = TestServer(make_app(deps), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def _in_queue(store: Store, interface: str | None) -> None:
    """The agent as the AMI monitor keeps them: in the queues as `interface` and on a call,
    or logged out (None)."""
    with store.session() as s:
        if s.get(Call, "call-desk") is None:
            s.add(Call(id="call-desk", started_at=utcnow(), caller_number="13812345678"))
        s.merge(
            Agent(
                id="1001",
                name="坐席1001",
                interface=interface or DESK,
                queues="hotline-12333",
                state="available" if interface else "logged_out",
                current_call_id="call-desk" if interface else None,
            )
        )


async def _first_snapshot(base: str) -> dict[str, Any]:
    async with _client() as http:
        await _sign_in(http, base, "a1001", AGENT_PW)
        async with http.get(f"{base}/agent/stream") as stream:
            line = await asyncio.wait_for(stream.content.readline(), timeout=10)
    assert line.startswith(b"data: "), line
    me: dict[str, Any] = json.loads(line[6:])["me"]
    return me


async def test_the_stream_names_each_phone_and_the_one_the_queue_rings(store: Store, tmp_path: Path) -> None:
    phones = Registrations({SOFTPHONE: True, DESK: False})
    async with _desk(store, tmp_path, phones) as base:
        _in_queue(store, SOFTPHONE)
        me = await _first_snapshot(base)
        assert me["state"] == "on_call" and me["phone_registered"] is True
        assert me["phones"] == [
            {"kind": "desk", "endpoint": "1001", "registered": False, "rings": False},
            {"kind": "softphone", "endpoint": "1001-web", "registered": True, "rings": True},
        ]
        _in_queue(store, DESK)
        me = await _first_snapshot(base)
        assert me["phone_registered"] is False
        assert [(p["kind"], p["rings"]) for p in me["phones"]] == [("desk", True), ("softphone", False)]
        # Logged out the queue rings nothing; a log-in would use the registered softphone.
        _in_queue(store, None)
        me = await _first_snapshot(base)
        assert me["phone_registered"] is True and not any(p["rings"] for p in me["phones"])


async def test_the_desk_in_chromium_never_says_unreachable_while_the_queue_rings_the_softphone(
    store: Store, tmp_path: Path
) -> None:
    phones = Registrations({SOFTPHONE: True, DESK: False})
    async with _desk(store, tmp_path, phones) as base, chromium() as browser:
        _in_queue(store, SOFTPHONE)
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await sign_in(page, base, "a1001", AGENT_PW, lands_on="agent")
        await page.locator('#my-state[data-state="on_call"]').wait_for()
        softphone = page.locator('#my-phone-softphone[data-rings="yes"][data-registered="registered"]')
        await softphone.wait_for()
        assert await softphone.inner_text() == "网页电话 1001-web: 已注册 · 队列呼叫此话机"
        desk = page.locator('#my-phone-desk[data-rings="no"][data-registered="unregistered"]')
        assert await desk.inner_text() == "话机 1001: 未注册"
        assert await page.locator("#my-phone").inner_text() == "已注册"
        assert "队列不会呼叫" not in await page.locator("#state-card").inner_text()
        # In the queues with the desk phone, which is not registered: now the desk says so, in red.
        _in_queue(store, DESK)
        desk = page.locator('#my-phone-desk[data-rings="yes"][data-registered="unregistered"]')
        await desk.wait_for()
        assert await desk.inner_text() == "话机 1001: 未注册：队列不会呼叫此话机"
        assert await desk.evaluate("e => getComputedStyle(e).color") == "rgb(179, 38, 30)"
        await page.locator('#my-phone[data-registered="unregistered"]').wait_for()
        # Logged out: no phone is rung, and the desk says that instead.
        _in_queue(store, None)
        await page.locator("#my-phones-none").wait_for()
        assert await page.locator('#my-phones li[data-rings="yes"]').count() == 0
