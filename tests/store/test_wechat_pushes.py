"""WeChat's event pushes over real HTTP, on SQLite and PostgreSQL, from a pusher written from
WeChat's documentation (tests/wechat_fake.WeChatPusher): security mode (the body signed and
encrypted, our reply encrypted), compatible mode, a replay refused by another console on
the same store, and bodies that are not UTF-8 or carry a DTD refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core import sample
from core.db import Store
from core.models import WeChatBinding
from tests.conftest import SAMPLE_RESIDENTS
from tests.store.test_wechat_bind import ALICE, bind
from tests.wechat_bind_support import PUSH_TOKEN, Site, browser, wechat_console
from tests.wechat_fake import WeChatPusher, new_encoding_aes_key

RESIDENTS = sample.generate(residents=SAMPLE_RESIDENTS)[1]
AES_KEY = new_encoding_aes_key()


def _bound(store: Store) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(WeChatBinding.openid)))


@pytest.fixture
async def secure(store: Store, tmp_path: Path) -> AsyncIterator[tuple[Site, WeChatPusher]]:
    env = {"HOTLINE_WECHAT_ENCODING_AES_KEY": AES_KEY, "HOTLINE_WECHAT_SECURITY_MODE": "true"}
    async with wechat_console(store, tmp_path, second=True, **env) as site:
        yield site, WeChatPusher(PUSH_TOKEN, site.fake.app_id, AES_KEY)


async def test_an_encrypted_unsubscribe_is_taken_and_answered_encrypted(secure: tuple[Site, WeChatPusher]) -> None:
    site, wechat = secure
    url = f"{site.base}/wechat/events"
    async with browser() as http:
        await bind(http, site, ALICE, RESIDENTS[6].id_number)
        pushed = await wechat.post(http, url, *wechat.sealed(wechat.event_xml(ALICE, "subscribe")))
        assert (pushed.status, pushed.reply_refused, pushed.reply) == (200, "", "success")
        assert "success" not in pushed.text  # the reply itself travels encrypted
        assert _bound(site.store) == [ALICE]
        pushed = await wechat.post(http, url, *wechat.sealed(wechat.event_xml(ALICE, "unsubscribe"), compat=True))
        assert (pushed.status, pushed.reply) == (200, "success")
    assert _bound(site.store) == []


async def test_security_mode_refuses_what_is_not_signed_and_sealed_for_us(secure: tuple[Site, WeChatPusher]) -> None:
    site, wechat = secure
    url = f"{site.base}/wechat/events"
    unsubscribe = wechat.event_xml(ALICE, "unsubscribe")
    async with browser() as http:
        await bind(http, site, ALICE, RESIDENTS[7].id_number)
        # Plaintext with a good signature: security mode takes none.
        assert (await wechat.post(http, url, wechat.query(), unsubscribe)).status == 403
        # The body changed after WeChat signed it.
        query, body = wechat.sealed(unsubscribe)
        other = wechat.sealed(wechat.event_xml(ALICE, "subscribe"))[1]
        assert (await wechat.post(http, url, query, other)).status == 403
        # Signed, but sealed for another account, or with another key.
        assert (await wechat.post(http, url, *wechat.sealed(unsubscribe, app_id="wxAnotherAccount00"))).status == 400
        wrong_key = new_encoding_aes_key()
        assert (await wechat.post(http, url, *wechat.sealed(unsubscribe, aes_key=wrong_key))).status == 400
        # No msg_signature at all.
        bare = {k: v for k, v in query.items() if k != "msg_signature"}
        assert (await wechat.post(http, url, bare, body)).status == 403
    assert _bound(site.store) == [ALICE]


async def test_a_push_taken_by_one_console_is_refused_by_the_other(secure: tuple[Site, WeChatPusher]) -> None:
    site, wechat = secure
    async with browser() as http:
        await bind(http, site, ALICE, RESIDENTS[8].id_number)
        query, body = wechat.sealed(wechat.event_xml(ALICE, "subscribe"))
        assert (await wechat.post(http, f"{site.base}/wechat/events", query, body)).status == 200
        again = await wechat.post(http, f"{site.other}/wechat/events", query, body)
        assert again.status == 403 and "used before" in again.text
        # The server check (GET) takes its pair once too.
        check = {**wechat.query(), "echostr": "8849"}
        assert (await http.get(f"{site.other}/wechat/events", params=check)).status == 200
        assert (await http.get(f"{site.base}/wechat/events", params=check)).status == 403


async def test_an_encrypted_push_without_a_key_configured_is_refused(store: Store, tmp_path: Path) -> None:
    async with wechat_console(store, tmp_path) as site, browser() as http:
        wechat = WeChatPusher(PUSH_TOKEN, site.fake.app_id, AES_KEY)
        pushed = await wechat.post(http, f"{site.base}/wechat/events", *wechat.sealed(wechat.event_xml(ALICE, "x")))
        assert pushed.status == 403 and "no EncodingAESKey" in pushed.text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('<?xml version="1.0" encoding="GBK"?><xml><ToUserName>gh</ToUserName></xml>'.encode("gbk"), "text/xml"),
        ("<xml><ToUserName>公众号</ToUserName></xml>".encode("gb18030"), "text/xml"),
        (b"<xml><ToUserName>gh</ToUserName></xml>", "text/xml; charset=GBK"),
        ("<xml><ToUserName>gh</ToUserName></xml>".encode("utf-16"), "text/xml"),
        (
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<xml><ToUserName>&b;</ToUserName></xml>",
            "text/xml",
        ),
        (b'<!DOCTYPE xml SYSTEM "file:///etc/passwd"><xml/>', "text/xml"),
    ],
    ids=["declared-gbk", "gb18030-bytes", "charset-gbk", "utf-16", "entities", "external-dtd"],
)
async def test_bodies_not_in_utf8_or_with_a_dtd_are_refused(
    store: Store, tmp_path: Path, body: bytes, content_type: str
) -> None:
    async with wechat_console(store, tmp_path) as site, browser() as http:
        wechat = WeChatPusher(PUSH_TOKEN, site.fake.app_id)
        async with http.post(
            f"{site.base}/wechat/events", params=wechat.query(), data=body, headers={"Content-Type": content_type}
        ) as r:
            assert r.status == 400, await r.text()
            assert "Traceback" not in await r.text()
