"""WeChat's pushes to our server (接收事件推送), as pure functions: the signature and the XML.

From WeChat's documentation for official accounts (基本配置, 接入指南; 接收事件推送):

- WeChat calls the server URL with `signature`, `timestamp` and `nonce` in the query;
  `signature` is the hex SHA-1 of the token, timestamp and nonce sorted as strings and
  joined. The first call (the server check) is a GET with `echostr` too, to be echoed back
  as it came; pushes are POSTs of XML in plaintext mode (明文模式).
- A push is `<xml><ToUserName>` (the account) `<FromUserName>` (the resident's openid)
  `<CreateTime>` (seconds) `<MsgType>event` `<Event>subscribe|unsubscribe|...` `</xml>`,
  values mostly in CDATA. WeChat waits 5 seconds and retries 3 times; an answer of
  `success` (or an empty body) ends it and sends the resident nothing.

In plaintext mode the signature covers the token, timestamp and nonce, not the body: one
signed query seen (a proxy's log, a browser's history) would let anyone post any push
with it. So a push is taken only while its timestamp is fresh (FRESH_S either side of our
clock, beyond WeChat's three retries 5 s apart) and only once per timestamp and nonce
(`Replays`); WeChat's own retries of one push come with a new nonce each.

>>> signature("token", "1714112445", "415670741")
'0c48e8def4a21319f45c1175aef96e9ee9bf0ba3'
"""

from __future__ import annotations

import hashlib
import hmac
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final

from sms.errors import BadPush

MAX_PUSH_BYTES: Final = 16 * 1024  # a push is well under 1 KiB; anything far larger is not WeChat's
ACK: Final = "success"
FRESH_S: Final = 300
# Signed requests remembered at most (a flood of fresh ones cannot grow memory past it).
MAX_REMEMBERED: Final = 50_000


class Replays:
    """The signed (timestamp, nonce) pairs taken within the window: each is taken once."""

    def __init__(self, fresh_s: float = FRESH_S, limit: int = MAX_REMEMBERED) -> None:
        self.fresh_s = fresh_s
        self.limit = limit
        self.seen: dict[tuple[str, str], float] = {}

    def refuse(self, timestamp: str, nonce: str, now: float | None = None) -> str:
        """Why this signed request is not taken ("" if it is; then it is remembered).

        >>> r = Replays()
        >>> r.refuse("1000", "7", now=1100.0), r.refuse("1000", "7", now=1101.0)
        ('', 'its timestamp and nonce were used before')
        >>> r.refuse("1000", "8", now=2000.0)
        'its timestamp is 1000 s from our clock (at most 300)'
        """
        now = time.time() if now is None else now
        if not timestamp.isdigit() or len(timestamp) > 12:
            return "its timestamp is not a number of seconds"
        off = abs(now - int(timestamp))
        if off > self.fresh_s:
            return f"its timestamp is {off:.0f} s from our clock (at most {self.fresh_s:g})"
        key = (timestamp, nonce[:64])
        if key in self.seen:
            return "its timestamp and nonce were used before"
        if len(self.seen) >= self.limit:
            self.seen = {k: at for k, at in self.seen.items() if now - at <= 2 * self.fresh_s}
            if len(self.seen) >= self.limit:
                return "too many signed requests within the window"
        self.seen[key] = now
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


def parse_push(body: bytes) -> Push:
    """The fields of a push, or BadPush saying what is wrong (no DTD, no entities).

    >>> parse_push(b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oAb1]]>"
    ...            b"</FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    ...            b"<Event><![CDATA[unsubscribe]]></Event></xml>").event
    'unsubscribe'
    """
    if len(body) > MAX_PUSH_BYTES:
        raise BadPush(f"a push of {len(body)} bytes (at most {MAX_PUSH_BYTES})")
    if b"<!" in body.replace(b"<![CDATA[", b""):
        raise BadPush("a push with a DTD or an entity declaration")  # WeChat's never have one
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise BadPush(f"not XML: {exc}") from None
    if root.tag != "xml":
        raise BadPush(f"the root element is <{root.tag[:20]}>, not <xml>")

    def text(name: str, required: bool = True) -> str:
        value = (root.findtext(name) or "").strip()
        if required and not value:
            raise BadPush(f"<{name}> is missing")
        return value[:64]

    created = text("CreateTime")
    if not created.isdigit():
        raise BadPush("<CreateTime> is not a number of seconds")
    return Push(text("ToUserName"), text("FromUserName"), int(created), text("MsgType"), text("Event", False))
