"""A local stand-in for WeChat's official-account API, written from WeChat's documentation
(api.weixin.qq.com cannot be reached from here), independently of sms/wechat.py.

- POST /cgi-bin/stable_token (getStableAccessToken), JSON `{"grant_type": "client_credential",
  "appid", "secret", "force_refresh"?}` -> `{"access_token", "expires_in"}`. Normal mode
  returns the current token while more than 5 minutes of it are left, then issues the next
  one (the old one stays valid to its end); force_refresh issues a new one at once and ends
  the old. Errors: 40002 invalid grant_type, 40013 invalid appid, 40125 invalid appsecret.
- POST /cgi-bin/message/template/send?access_token=TOKEN, JSON `{"touser", "template_id",
  "url"?, "data": {"key": {"value": "...", "color"?}}, "client_msg_id"?}` ->
  `{"errcode": 0, "errmsg": "ok", "msgid": N}`. Errors: 41001 access_token missing, 40001
  a token it never issued or revoked ("invalid credential, access_token is invalid or not
  latest"), 42001 an expired token, 44002 an empty body, 40033 a body with \\uXXXX escapes,
  47001 a body that is not the documented JSON, 41009 no touser, 40036 no template_id,
  40037 a template id the account does not have, 43004 an openid of this account that does
  not follow it (any more), 40003 an openid it never issued, 45009 past the daily limit,
  -1 "system error" when asked. One message per openid and client_msg_id (10 minutes in
  WeChat; for the whole life of the fake here): a repeat is answered ok with the first msgid.
- Every request above is a POST: anything else gets 43002 (require POST method).
- Web authorisation (网页授权), snsapi_base: GET /connect/oauth2/authorize?appid&redirect_uri
  &response_type=code&scope&state (open.weixin.qq.com: here the same server) stands for the
  resident's WeChat client, signed in as `browser_openid`: it redirects (302) at once to
  `redirect_uri?code=CODE&state=STATE`. GET /sns/oauth2/access_token?appid&secret&code
  &grant_type=authorization_code -> `{"access_token", "expires_in": 7200, "refresh_token",
  "openid", "scope": "snsapi_base"}`. A code is good once, for 5 minutes: 40029 invalid code
  (never issued or past its 5 minutes), 40163 code been used; 40013 invalid appid, 40125
  invalid appsecret, 40002 invalid grant_type. `issue_code(openid)` hands out a code as the
  authorise step would (for tests that play the browser themselves).

Faults are set on the object, never read from message text: `busy_next` sends answered -1,
`drop_next` connections closed without an answer, `delay_s` before every send's answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from yarl import URL

NORMAL_MODE_RENEWAL_S = 300  # the docs: the next token comes in the last 5 minutes
OAUTH_CODE_S = 300  # the docs: a web-authorisation code is good once, for 5 minutes


@dataclass
class _Token:
    expires_at: float  # loop time
    revoked: bool = False


@dataclass
class FakeWeChat:
    app_id: str = "wx0123456789abcdef"
    app_secret: str = "fake-wechat-app-secret-00112233"
    expires_in: int = 7200
    followers: set[str] = field(default_factory=set)  # openids that follow the account
    unfollowed: set[str] = field(default_factory=set)  # openids of the account that no longer follow
    templates: set[str] = field(default_factory=set)  # the account's template ids
    daily_limit: int | None = None  # accepted sends per day, then 45009
    busy_next: int = 0  # answer this many next sends with -1 (system busy)
    drop_next: int = 0  # close this many next send connections without answering
    delay_s: float = 0.0  # wait before answering each send
    token_requests: int = 0
    send_requests: int = 0
    send_errcodes: list[int] = field(default_factory=list)  # every answered send's errcode, in order
    messages: list[dict[str, Any]] = field(default_factory=list)  # accepted sends' JSON, with "msgid"
    port: int = 0
    host: str = "127.0.0.1"  # another loopback address makes it another site, as WeChat is
    _tokens: dict[str, _Token] = field(default_factory=dict)
    _current: str | None = None
    _sent_today: int = 0
    _next_msgid: int = 2_000_000_000
    _dedup: dict[tuple[str, str], int] = field(default_factory=dict)
    browser_openid: str = ""  # who the WeChat client opening an authorise link is
    oauth_requests: int = 0
    _codes: dict[str, tuple[str, float, bool]] = field(default_factory=dict)  # code: openid, issued, used
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/cgi-bin/stable_token", self._stable_token)
        app.router.add_route("*", "/cgi-bin/message/template/send", self._send)
        app.router.add_get("/connect/oauth2/authorize", self._authorize)
        app.router.add_get("/sns/oauth2/access_token", self._oauth_token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # Faults and the day, as a test drives them ------------------------------------------

    def expire_tokens(self) -> None:
        """Every token issued so far is past its expires_in (42001 on use)."""
        now = self._now()
        for token in self._tokens.values():
            token.expires_at = min(token.expires_at, now)

    def revoke_tokens(self) -> None:
        """Every token issued so far is no longer the latest (40001 on use)."""
        for token in self._tokens.values():
            token.revoked = True

    def issue_code(self, openid: str) -> str:
        """A web-authorisation code for `openid`, as the authorise step hands it to the page."""
        code = secrets.token_hex(16)
        self._codes[code] = (openid, self._now(), False)
        return code

    def expire_codes(self) -> None:
        """Every code issued so far is past its 5 minutes."""
        for code, (openid, _, used) in self._codes.items():
            self._codes[code] = (openid, self._now() - OAUTH_CODE_S - 1, used)

    def new_day(self) -> None:
        """Beijing midnight: the daily quota starts again."""
        self._sent_today = 0

    # Handlers ---------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    @staticmethod
    def _error(errcode: int, errmsg: str) -> web.Response:
        rid = f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}"
        return web.json_response({"errcode": errcode, "errmsg": f"{errmsg} rid: {rid}"})

    async def _json_body(self, request: web.Request) -> dict[str, Any] | web.Response:
        raw = await request.read()
        if not raw.strip():
            return self._error(44002, "empty post data")
        if b"\\u" in raw:
            return self._error(
                40033, "invalid charset. please check your request, if include \\uxxxx will create fail!"
            )
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._error(47001, "data format error")
        if not isinstance(body, dict):
            return self._error(47001, "data format error")
        return body

    async def _stable_token(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return self._error(43002, "require POST method")
        self.token_requests += 1
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        if body.get("grant_type") != "client_credential":
            return self._error(40002, "invalid grant_type")
        if body.get("appid") != self.app_id:
            return self._error(40013, "invalid appid")
        if body.get("secret") != self.app_secret:
            return self._error(40125, "invalid appsecret")
        now = self._now()
        current = self._tokens.get(self._current or "")
        if body.get("force_refresh") is True and current is not None:
            current.revoked = True
            current = None
        if current is None or current.revoked or current.expires_at - now <= NORMAL_MODE_RENEWAL_S:
            self._current = secrets.token_urlsafe(96)
            current = _Token(now + self.expires_in)
            self._tokens[self._current] = current
        return web.json_response({"access_token": self._current, "expires_in": round(current.expires_at - now)})

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("appid") != self.app_id or q.get("response_type") != "code" or q.get("scope") != "snsapi_base":
            return web.Response(status=400, text="invalid appid, response_type or scope")
        redirect_uri, state = q.get("redirect_uri", ""), q.get("state", "")
        if not redirect_uri.startswith(("http://", "https://")) or len(state) > 128 or not self.browser_openid:
            return web.Response(status=400, text="redirect_uri or state refused, or nobody signed in to WeChat")
        target = URL(redirect_uri).update_query(code=self.issue_code(self.browser_openid), state=state)
        raise web.HTTPFound(str(target))

    async def _oauth_token(self, request: web.Request) -> web.Response:
        self.oauth_requests += 1
        q = request.query
        if q.get("grant_type") != "authorization_code":
            return self._error(40002, "invalid grant_type")
        if q.get("appid") != self.app_id:
            return self._error(40013, "invalid appid")
        if q.get("secret") != self.app_secret:
            return self._error(40125, "invalid appsecret")
        issued = self._codes.get(q.get("code", ""))
        if issued is None or self._now() - issued[1] > OAUTH_CODE_S:
            return self._error(40029, "invalid code")
        openid, at, used = issued
        if used:
            return self._error(40163, "code been used")
        self._codes[q["code"]] = (openid, at, True)
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(64),
                "expires_in": 7200,
                "refresh_token": secrets.token_urlsafe(64),
                "openid": openid,
                "scope": "snsapi_base",
            }
        )

    def _token_error(self, request: web.Request) -> web.Response | None:
        value = request.query.get("access_token", "")
        if not value:
            return self._error(41001, "access_token missing")
        token = self._tokens.get(value)
        if token is None or token.revoked:
            return self._error(40001, "invalid credential, access_token is invalid or not latest")
        if token.expires_at <= self._now():
            return self._error(42001, "access_token expired")
        return None

    async def _send(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return self._error(43002, "require POST method")
        self.send_requests += 1
        if self.drop_next > 0:
            self.drop_next -= 1
            await request.read()
            assert request.transport is not None
            request.transport.abort()  # the connection ends with no answer at all
            return web.Response()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        answer = await self._answer_send(request)
        self.send_errcodes.append(json.loads(answer.text or "{}").get("errcode", 0))
        return answer

    async def _answer_send(self, request: web.Request) -> web.Response:
        refused = self._token_error(request)
        if refused is not None:
            return refused
        body = await self._json_body(request)
        if isinstance(body, web.Response):
            return body
        if self.busy_next > 0:
            self.busy_next -= 1
            return self._error(-1, "system error")
        shape = self._shape_error(body)
        if shape is not None:
            return shape
        touser, client_msg_id = body["touser"], body.get("client_msg_id")
        if touser not in self.followers:
            if touser in self.unfollowed:
                return self._error(43004, "require subscribe")
            return self._error(40003, "invalid openid")
        if isinstance(client_msg_id, str) and (touser, client_msg_id) in self._dedup:
            return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": self._dedup[(touser, client_msg_id)]})
        if self.daily_limit is not None and self._sent_today >= self.daily_limit:
            return self._error(45009, "reach max api daily quota limit")
        self._sent_today += 1
        self._next_msgid += 1
        if isinstance(client_msg_id, str):
            self._dedup[(touser, client_msg_id)] = self._next_msgid
        self.messages.append({**body, "msgid": self._next_msgid})
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": self._next_msgid})

    def _shape_error(self, body: dict[str, Any]) -> web.Response | None:
        """The request body as the docs describe it: touser, template_id and data required."""
        if not isinstance(body.get("touser"), str) or not body["touser"]:
            return self._error(41009, "missing openid")
        if not isinstance(body.get("template_id"), str) or not body["template_id"]:
            return self._error(40036, "invalid template_id size")
        data = body.get("data")
        if not isinstance(data, dict) or not all(
            isinstance(item, dict) and isinstance(item.get("value"), str) for item in data.values()
        ):
            return self._error(47001, "data format error")
        for optional in ("url", "client_msg_id"):
            if optional in body and not isinstance(body[optional], str):
                return self._error(47001, "data format error")
        if body["template_id"] not in self.templates:
            return self._error(40037, "invalid template_id")
        return None


# WeChat's side of the event pushes ---------------------------------------------------------
#
# Written from WeChat's documentation (接收事件推送; 消息加解密说明 and its 技术方案), not from
# console/wechat_events.py or sms/wechat_crypt.py:
# - every push's query has signature = sha1 of token, timestamp, nonce sorted and joined;
# - plaintext mode (明文模式): the body is the event's XML;
# - security mode (安全模式): the query adds encrypt_type=aes and msg_signature = sha1 of token,
#   timestamp, nonce and the ciphertext sorted and joined; the body is
#   <xml><ToUserName/><Encrypt>ciphertext</Encrypt></xml>. Compatible mode (兼容模式) sends the
#   event's plain fields and <Encrypt> together;
# - ciphertext = base64(AES-256-CBC(key, iv=key[:16], pad(random 16 bytes + len(xml) as 4
#   bytes big-endian + xml + appid))), key = base64decode(EncodingAESKey + "="), padded
#   PKCS#7-style to a multiple of 32 bytes;
# - the account's reply to an encrypted push must be encrypted the same way:
#   <xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>.


def new_encoding_aes_key() -> str:
    """An EncodingAESKey as the account's 基本配置 makes one: 43 characters of base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()[:43]


def _aes(encoding_aes_key: str) -> tuple[Cipher[modes.CBC], bytes]:
    key = base64.b64decode(encoding_aes_key + "=")
    return Cipher(algorithms.AES(key), modes.CBC(key[:16])), key


def wechat_encrypt(encoding_aes_key: str, xml: bytes, app_id: str) -> str:
    cipher, _ = _aes(encoding_aes_key)
    text = secrets.token_bytes(16) + len(xml).to_bytes(4, "big") + xml + app_id.encode()
    amount = 32 - len(text) % 32
    text += bytes([amount]) * amount
    enc = cipher.encryptor()
    return base64.b64encode(enc.update(text) + enc.finalize()).decode()


def wechat_decrypt(encoding_aes_key: str, encrypted: str) -> tuple[bytes, str]:
    """The XML and the appid inside a ciphertext (ValueError if the padding is not WeChat's)."""
    cipher, _ = _aes(encoding_aes_key)
    dec = cipher.decryptor()
    text = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    amount = text[-1]
    if not 1 <= amount <= 32:
        raise ValueError("bad padding")
    text = text[:-amount]
    length = int.from_bytes(text[16:20], "big")
    return text[20 : 20 + length], text[20 + length :].decode()


def _sha1_sorted(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


@dataclass(frozen=True)
class Pushed:
    status: int
    text: str
    reply: str | None  # the reply's XML decrypted, when it came encrypted and signed as WeChat checks
    reply_refused: str  # why WeChat would not take the reply to an encrypted push ("" if it would)


@dataclass
class WeChatPusher:
    """WeChat's servers pushing events to an account's server URL."""

    token: str
    app_id: str = "wx0123456789abcdef"
    encoding_aes_key: str = ""
    account: str = "gh_0123456789ab"

    def event_xml(self, openid: str, event: str) -> bytes:
        return (
            f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event></xml>"
        ).encode()

    def query(self, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        return {"signature": _sha1_sorted(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}

    def sealed(
        self, xml: bytes, *, compat: bool = False, app_id: str | None = None, aes_key: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The query and body of `xml` pushed in security mode (or compatible mode)."""
        encrypted = wechat_encrypt(aes_key or self.encoding_aes_key, xml, app_id or self.app_id)
        q = self.query()
        q.update(encrypt_type="aes", msg_signature=_sha1_sorted(self.token, q["timestamp"], q["nonce"], encrypted))
        # Compatible mode: the event's own fields and <Encrypt>; security mode: the account and <Encrypt>.
        head = xml.decode()[: -len("</xml>")] if compat else f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
        return q, f"{head}<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()

    async def post(self, http: ClientSession, url: str, query: dict[str, str], body: bytes) -> Pushed:
        async with http.post(url, params=query, data=body, headers={"Content-Type": "text/xml"}) as r:
            text = await r.text()
            status = r.status
        if query.get("encrypt_type") != "aes" or status != 200:
            return Pushed(status, text, None, "")
        reply, why = self._open_reply(text)
        return Pushed(status, text, reply, why)

    def _open_reply(self, text: str) -> tuple[str | None, str]:
        try:
            root = ET.fromstring(text)
        except ET.ParseError:
            return None, "the reply to an encrypted push is not XML"
        fields = {name: (root.findtext(name) or "") for name in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce")}
        if not all(fields.values()):
            return None, "the reply lacks one of Encrypt, MsgSignature, TimeStamp, Nonce"
        if _sha1_sorted(self.token, fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]) != fields["MsgSignature"]:
            return None, "the reply's MsgSignature does not match"
        xml, app_id = wechat_decrypt(self.encoding_aes_key, fields["Encrypt"])
        if app_id != self.app_id:
            return None, f"the reply is for another appid {app_id!r}"
        return xml.decode(), ""


async def _serve(host: str, port: int, openid: str) -> None:
    fake = FakeWeChat(host=host, browser_openid=openid, followers={openid})
    await fake.start(port)
    print(f"fake WeChat on {fake.base_url}, app_id {fake.app_id}, the browser is {openid} (Ctrl-C stops it)")
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


if __name__ == "__main__":  # a local try-out of the binding page (docs/sms-and-notices.md, "WeChat binding")
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(description="WeChat's official-account API and web authorisation, locally")
    parser.add_argument("--host", default="127.0.0.2")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--openid", default="oDemoResident0000000000001")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.openid))
