"""WeChat's pushes to our server (接收事件推送), as pure functions: the signature and the XML.

From WeChat's documentation for official accounts (基本配置, 接入指南; 接收事件推送):

- WeChat calls the server URL with `signature`, `timestamp` and `nonce` in the query;
  `signature` is the hex SHA-1 of the token, timestamp and nonce sorted as strings and
  joined. The first call (the server check) is a GET with `echostr` too, to be echoed back
  as it came; pushes are POSTs of XML in plaintext mode (明文模式).
- A push is `<xml><ToUserName>` (the account) `<FromUserName>` (the resident's openid)
  `<CreateTime>` (seconds) `<MsgType>event` `<Event>subscribe|unsubscribe|...` `</xml>`,
  values mostly in CDATA, in UTF-8. WeChat waits 5 seconds and retries 3 times; an answer
  of `success` (or an empty body) ends it and sends the resident nothing.

In plaintext mode the signature covers the token, timestamp and nonce, not the body: one
signed query seen (a proxy's log, a browser's history) would let anyone post any push
with it. So a push is taken only while its timestamp is fresh (FRESH_S either side of our
clock, beyond WeChat's three retries 5 s apart) and only once per timestamp and nonce
(sms/wechat_nonces.py, in the store: every console process refuses a pair any of them
took); WeChat's own retries of one push come with a new nonce each. Security mode
(sms/wechat_crypt.py) signs the body as well.

The XML is read by defusedxml with DTDs refused (no entity of any kind: WeChat's pushes
have none), and only in UTF-8: a body that is not UTF-8, or declares another encoding, is
refused rather than guessed at.

>>> signature("token", "1714112445", "415670741")
'0c48e8def4a21319f45c1175aef96e9ee9bf0ba3'
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException

from sms.errors import BadPush

MAX_PUSH_BYTES: Final = 16 * 1024  # a push is well under 1 KiB; anything far larger is not WeChat's
ACK: Final = "success"
FRESH_S: Final = 300


def stale(timestamp: str, now: float | None = None, fresh_s: float = FRESH_S) -> str:
    """Why a signed request's timestamp is not taken ("" if it is fresh).

    >>> stale("1000", now=1100.0), stale("1000", now=2000.0), stale("x")
    ('', 'its timestamp is 1000 s from our clock (at most 300)', 'its timestamp is not a number of seconds')
    """
    now = time.time() if now is None else now
    if not timestamp.isdigit() or len(timestamp) > 12:
        return "its timestamp is not a number of seconds"
    off = abs(now - int(timestamp))
    if off > fresh_s:
        return f"its timestamp is {off:.0f} s from our clock (at most {fresh_s:g})"
    return ""


def signature(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode()).hexdigest()


def signed(token: str, timestamp: str, nonce: str, given: str) -> bool:
    """Whether `given` is WeChat's signature of this timestamp and nonce under our token."""
    if not (token and timestamp and nonce and given):
        return False
    return hmac.compare_digest(signature(token, timestamp, nonce), given.lower())


@dataclass(frozen=True)
class Push:
    account: str  # ToUserName: the official account's own id
    openid: str  # FromUserName
    created: int  # CreateTime, seconds since 1970
    msg_type: str
    event: str  # "" for a message that is not an event


def _root(body: bytes) -> ET.Element:
    """The root of a UTF-8 XML body with no DTD, read by defusedxml; BadPush if not that."""
    if len(body) > MAX_PUSH_BYTES:
        raise BadPush(f"a push of {len(body)} bytes (at most {MAX_PUSH_BYTES})")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPush("not UTF-8") from None
    declared = _DECLARED.match(text)
    if declared and declared.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise BadPush(f"declares the encoding {declared.group(1)[:20]!r}: only UTF-8 is taken")
    try:
        root = DefusedET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise BadPush("a push with a DTD or an entity declaration") from None  # WeChat's never have one
    except ET.ParseError as exc:
        raise BadPush(f"not XML: {exc}") from None
    if root.tag != "xml":
        raise BadPush(f"the root element is <{root.tag[:20]}>, not <xml>")
    return root


# An XML declaration's encoding (XML 1.0 §4.3.3).
_DECLARED = re.compile(r"""\A\ufeff?<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]*)["']""")


def parse_push(body: bytes) -> Push:
    """The fields of a push, or BadPush saying what is wrong (no DTD, no entities, UTF-8).

    >>> parse_push(b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oAb1]]>"
    ...            b"</FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    ...            b"<Event><![CDATA[unsubscribe]]></Event></xml>").event
    'unsubscribe'
    """
    root = _root(body)

    def text(name: str, required: bool = True) -> str:
        value = (root.findtext(name) or "").strip()
        if required and not value:
            raise BadPush(f"<{name}> is missing")
        return value[:64]

    created = text("CreateTime")
    if not created.isdigit():
        raise BadPush("<CreateTime> is not a number of seconds")
    return Push(text("ToUserName"), text("FromUserName"), int(created), text("MsgType"), text("Event", False))


def ciphertext(body: bytes) -> str:
    """The `<Encrypt>` of a push in security mode (sms/wechat_crypt.py); BadPush if none."""
    value = (_root(body).findtext("Encrypt") or "").strip()
    if not value:
        raise BadPush("<Encrypt> is missing (a push in security mode carries it)")
    return value
