"""The desk's softphone account over real HTTP: only the signed-in agent gets its own
(WSS URL, SIP URI, derived password, departments), and the page may connect to that WSS
and nowhere else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from console.app import ConsoleDeps, make_app
from core import sip_phones
from core.db import Store
from core.sample_port import SampleBusinessPort
from core.sip_phones import softphone_password
from ivr.agents import AgentControl
from tests.conftest import PEPPER, load_sample, make_settings
from tests.protocol.test_console import AGENT_PW, SUP_PW, Waiting, _client, _sign_in, _users

SECRET = "softphone-api-secret"


async def _serve(store: Store, tmp_path: Path, secret: str) -> AsyncIterator[str]:
    settings = make_settings(tmp_path, store.url, HOTLINE_SIP_SOFTPHONE_SECRET=secret, HOTLINE_SIP_HTTPS_PORT="8443")
    sip = settings.sip.model_copy(update={"departments": {"hotline-labour": "8002"}})
    settings = settings.model_copy(update={"sip": sip})
    load_sample(store)
    _users(store)
    if secret:
        sip_phones.add_softphone(store, settings, "1001")
        for _ in range(2):  # added again: generation 1, the first password revoked
            sip_phones.add_softphone(store, settings, "1002")
    deps = ConsoleDeps(settings, store, SampleBusinessPort(store, PEPPER), AgentControl(settings, store), Waiting())
    server = TestServer(make_app(deps), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def base(store: Store, tmp_path: Path) -> AsyncIterator[str]:
    async for url in _serve(store, tmp_path, SECRET):
        yield url


@pytest.fixture
async def base_without_softphones(store: Store, tmp_path: Path) -> AsyncIterator[str]:
    async for url in _serve(store, tmp_path, ""):
        yield url


async def test_the_agent_gets_their_own_softphone_and_nobody_else_does(base: str) -> None:
    async with _client() as http:
        assert (await http.get(f"{base}/api/softphone")).status == 401
        await _sign_in(http, base, "a1001", AGENT_PW)
        r = await http.get(f"{base}/api/softphone")
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        assert await r.json() == {
            "ws_url": "wss://127.0.0.1:8443/ws",
            "uri": "sip:1001-web@127.0.0.1",
            "password": softphone_password(SECRET, "1001-web"),
            "display_name": "坐席1001",
            "departments": [{"queue": "hotline-labour", "number": "8002"}],
        }
        csp = (await http.get(f"{base}/agent")).headers["Content-Security-Policy"]
        assert "connect-src 'self' wss://127.0.0.1:8443/ws;" in csp
    async with _client() as http:
        await _sign_in(http, base, "a1002", AGENT_PW)
        phone = await (await http.get(f"{base}/api/softphone")).json()
        assert phone["uri"] == "sip:1002-web@127.0.0.1"
        assert phone["password"] == softphone_password(SECRET, "1002-web", 1)
    async with _client() as http:
        await _sign_in(http, base, "sup", SUP_PW)
        assert (await http.get(f"{base}/api/softphone")).status == 403


async def test_without_a_softphone_secret_there_is_no_softphone(base_without_softphones: str) -> None:
    base = base_without_softphones
    async with _client() as http:
        await _sign_in(http, base, "a1001", AGENT_PW)
        assert (await http.get(f"{base}/api/softphone")).status == 404
        csp = (await http.get(f"{base}/agent")).headers["Content-Security-Policy"]
        assert "connect-src 'self';" in csp and "wss:" not in csp


async def test_an_agent_without_a_stored_softphone_gets_none(base: str, store: Store) -> None:
    sip_phones.remove_phone(store, "1001", softphone=True)
    async with _client() as http:
        await _sign_in(http, base, "a1001", AGENT_PW)
        r = await http.get(f"{base}/api/softphone")
        assert r.status == 404 and "no softphone" in (await r.json())["error"]
