"""A console with WeChat on, against the local WeChat stand-in, for the binding tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientResponse, ClientSession, CookieJar
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from console.app import ConsoleDeps, make_app
from core.db import Store
from core.models import BusinessEvent
from core.sample_port import SampleBusinessPort
from ivr.agents import AgentControl
from tests.conftest import PEPPER, load_sample, make_settings
from tests.wechat_fake import FakeWeChat

PUSH_TOKEN = "push-token-for-tests"


@dataclass
class Site:
    base: str
    store: Store
    fake: FakeWeChat
    other: str = ""  # a second console process on the same store (`second=True`)


@asynccontextmanager
async def wechat_console(
    store: Store, tmp_path: Path, wechat_host: str = "127.0.0.1", second: bool = False, **env: str
) -> AsyncIterator[Site]:
    fake = FakeWeChat(host=wechat_host)
    await fake.start()
    settings = make_settings(
        tmp_path,
        store.url,
        HOTLINE_WECHAT_ENABLED="true",
        HOTLINE_WECHAT_APP_ID=fake.app_id,
        HOTLINE_WECHAT_APP_SECRET=fake.app_secret,
        HOTLINE_WECHAT_TOKEN=PUSH_TOKEN,
        HOTLINE_WECHAT_API_BASE=fake.base_url,
        HOTLINE_WECHAT_OAUTH_BASE=fake.base_url,
        **env,
    )
    load_sample(store)
    deps = ConsoleDeps(settings, store, SampleBusinessPort(store, PEPPER), AgentControl(settings, store), None)
    servers = [TestServer(make_app(deps), host="127.0.0.1") for _ in range(1 + second)]
    for server in servers:
        await server.start_server()
    try:
        bases = [str(server.make_url("")).rstrip("/") for server in servers]
        yield Site(bases[0], store, fake, bases[1] if second else "")
    finally:
        for server in servers:
            await server.close()
        await fake.stop()


def browser() -> ClientSession:
    # unsafe=True: keep cookies of an IP-address host (127.0.0.1), as a browser does.
    return ClientSession(cookie_jar=CookieJar(unsafe=True))


async def open_from_menu(http: ClientSession, site: Site, openid: str) -> ClientResponse:
    """Open the page as the menu does: through WeChat's authorisation and back."""
    site.fake.browser_openid = openid
    return await http.get(f"{site.base}/wechat/bind")


def form_token(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


def sent_codes(store: Store, id_number: str) -> list[str]:
    """The codes the page asked the gateway to text, oldest first (what the SMS carries)."""
    with store.session() as s:
        rows = s.scalars(
            select(BusinessEvent)
            .where(BusinessEvent.event_type == "wechat_bind_code", BusinessEvent.subject_id == id_number)
            .order_by(BusinessEvent.id)
        ).all()
        return [str(r.payload["code"]) for r in rows]
