"""WeChat's push signature and XML (sms/wechat_push.py), the authorise link (sms/wechat_oauth.py)."""

from __future__ import annotations

import doctest
import hashlib

import pytest

from core.settings import WeChatSettings
from sms import wechat_oauth, wechat_push
from sms.errors import BadPush
from sms.wechat_oauth import authorize_url
from sms.wechat_push import parse_push, signed


def test_the_modules_examples_hold() -> None:
    assert doctest.testmod(wechat_push).failed == 0
    assert doctest.testmod(wechat_oauth).failed == 0


def test_the_signature_is_the_sha1_of_the_sorted_token_timestamp_and_nonce() -> None:
    expected = hashlib.sha1(b"1409304348" + b"372381329" + b"mytoken").hexdigest()
    assert signed("mytoken", "1409304348", "372381329", expected)
    assert signed("mytoken", "1409304348", "372381329", expected.upper())
    assert not signed("mytoken", "1409304349", "372381329", expected)
    assert not signed("", "1409304348", "372381329", hashlib.sha1(b"1409304348372381329").hexdigest())


def test_a_push_is_read_as_the_docs_show_it() -> None:
    body = (
        b"<xml>\n<ToUserName><![CDATA[gh_b629c48b653e]]></ToUserName>\n"
        b"<FromUserName><![CDATA[ollB4jqgdO_cRnVXk_wRnSywgtQ8]]></FromUserName>\n"
        b"<CreateTime>1372309890</CreateTime>\n<MsgType><![CDATA[event]]></MsgType>\n"
        b"<Event><![CDATA[unsubscribe]]></Event>\n<EventKey><![CDATA[]]></EventKey>\n</xml>"
    )
    push = parse_push(body)
    assert (push.account, push.openid, push.created) == ("gh_b629c48b653e", "ollB4jqgdO_cRnVXk_wRnSywgtQ8", 1372309890)
    assert (push.msg_type, push.event) == ("event", "unsubscribe")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<xml><FromUserName>", "not XML"),
        (b"<root/>", "root element"),
        (b"<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime><MsgType>event</MsgType></xml>", "FromUserName"),
        (b"<xml><ToUserName>a</ToUserName><FromUserName>o</FromUserName><CreateTime>x</CreateTime></xml>", "seconds"),
        (b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e "x">]><xml>&e;</xml>', "DTD"),
        (b"<xml>" + b" " * 20_000 + b"</xml>", "at most"),
        ('<?xml version="1.0" encoding="gbk"?><xml/>'.encode("gbk"), "only UTF-8"),
        ("<xml><ToUserName>公众号</ToUserName></xml>".encode("gbk"), "not UTF-8"),
        (b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml/>', "DTD"),
    ],
)
def test_what_is_not_a_push_is_refused_saying_why(body: bytes, reason: str) -> None:
    with pytest.raises(BadPush, match=reason):
        parse_push(body)


def test_the_authorise_link_refuses_a_state_wechat_would_not_carry() -> None:
    settings = WeChatSettings(app_id="wx1")
    with pytest.raises(ValueError, match="state"):
        authorize_url(settings, "https://h/wechat/bind", "a&b")
    with pytest.raises(ValueError, match="state"):
        authorize_url(settings, "https://h/wechat/bind", "a" * 129)
