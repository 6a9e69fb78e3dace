"""The web-authorisation code exchange (sms/wechat_oauth.py) against the local WeChat
stand-in and against servers that do not answer as WeChat does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from core.settings import WeChatSettings
from sms.errors import WeChatOAuthRefused, WeChatUnreachable
from sms.wechat_oauth import openid_for
from tests.wechat_fake import FakeWeChat

OPENID = "oLk3s5y0uOAuthResident0001"


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    f = FakeWeChat()
    await f.start()
    yield f
    await f.stop()


def settings_for(base: str, fake: FakeWeChat, **overrides: str) -> WeChatSettings:
    values = {"app_id": fake.app_id, "app_secret": fake.app_secret, "api_base": base, "timeout_s": 2.0, **overrides}
    return WeChatSettings.model_validate(values)


async def test_a_code_is_exchanged_once_for_the_openid(fake: FakeWeChat) -> None:
    code = fake.issue_code(OPENID)
    async with aiohttp.ClientSession() as http:
        assert await openid_for(http, settings_for(fake.base_url, fake), code) == OPENID
        with pytest.raises(WeChatOAuthRefused) as used:
            await openid_for(http, settings_for(fake.base_url, fake), code)
        assert used.value.errcode == 40163


@pytest.mark.parametrize(("overrides", "errcode"), [({"app_secret": "wrong-secret"}, 40125), ({}, 40029)])
async def test_what_wechat_refuses_is_named_with_its_errcode(
    fake: FakeWeChat, overrides: dict[str, str], errcode: int
) -> None:
    code = fake.issue_code(OPENID) if overrides else "never-issued"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(WeChatOAuthRefused) as refused:
            await openid_for(http, settings_for(fake.base_url, fake, **overrides), code)
    assert refused.value.errcode == errcode
    assert "wrong-secret" not in str(refused.value)


async def test_an_expired_code_is_refused(fake: FakeWeChat) -> None:
    code = fake.issue_code(OPENID)
    fake.expire_codes()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(WeChatOAuthRefused, match="40029"):
            await openid_for(http, settings_for(fake.base_url, fake), code)


async def test_no_answer_or_a_stranger_s_answer_is_unreachable(fake: FakeWeChat) -> None:
    async def bad_gateway(_request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>")

    app = web.Application()
    app.router.add_get("/sns/oauth2/access_token", bad_gateway)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(WeChatUnreachable, match="HTTP 502"):
                await openid_for(http, settings_for(f"http://127.0.0.1:{port}", fake), "c")
    finally:
        await runner.cleanup()
    await fake.stop()  # nothing listens there any more
    async with aiohttp.ClientSession() as http:
        with pytest.raises(WeChatUnreachable):
            await openid_for(http, settings_for(fake.base_url, fake), "c")
