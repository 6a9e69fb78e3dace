"""The binding page's own session: which WeChat account opened it, in a signed cookie.

After WeChat's web authorisation the openid is kept in `hotline_wechat` (HttpOnly,
SameSite=Lax, `wechat.bind_session_minutes`): `<openid, base64>.<expiry, epoch seconds>.<MAC>`,
the MAC an HMAC-SHA256 under a key derived from `security.pin_pepper`. Lax, not Strict:
the cookie is set on the way back from WeChat (another site), and a browser that counts
that redirect chain as cross-site would hold a Strict cookie back from the page that
follows; cross-site POSTs still go without a Lax one.
Forms carry a token derived from the cookie as well (`form_token`), checked on every POST.
The OAuth round's `state` waits in `hotline_wechat_state`, so a code fetched by someone
else (a link sent to the resident) cannot slip their account into this browser.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from typing import Final

from aiohttp import web

from console.request import deps, secure_cookies

SESSION_COOKIE: Final = "hotline_wechat"
STATE_COOKIE: Final = "hotline_wechat_state"
STATE_SECONDS: Final = 600


def _key(request: web.Request) -> bytes:
    pepper = deps(request).settings.security.pin_pepper
    return hmac.new(pepper.encode(), b"hotline wechat bind session v1", hashlib.sha256).digest()


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _set(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    secure = secure_cookies(request)
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Lax", secure=secure, path="/wechat/")


def start(response: web.StreamResponse, request: web.Request, openid: str) -> None:
    """Keep `openid` in the session cookie of `response`."""
    lifetime = deps(request).settings.wechat.bind_session_minutes * 60
    body = f"{base64.urlsafe_b64encode(openid.encode()).decode()}.{int(time.time()) + lifetime}"
    _set(response, request, SESSION_COOKIE, f"{body}.{_mac(_key(request), body)}", lifetime)


def end(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/wechat/")


def openid(request: web.Request) -> str | None:
    """The openid of a valid, unexpired session cookie, or None."""
    value = request.cookies.get(SESSION_COOKIE, "")
    body, _, mac = value.rpartition(".")
    encoded, _, expires = body.partition(".")
    if not (mac and expires.isdigit()) or not hmac.compare_digest(_mac(_key(request), body), mac):
        return None
    if int(expires) < time.time():
        return None
    try:
        return base64.urlsafe_b64decode(encoded.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def form_token(request: web.Request) -> str:
    """The token the page's forms carry: tied to this session's cookie."""
    return _mac(_key(request), "form:" + request.cookies.get(SESSION_COOKIE, ""))[:32]


def form_token_ok(request: web.Request, sent: str) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        return False
    return bool(sent) and hmac.compare_digest(sent, form_token(request))


def new_state(response: web.StreamResponse, request: web.Request) -> str:
    state = secrets.token_hex(16)
    _set(response, request, STATE_COOKIE, state, STATE_SECONDS)
    return state


def state_ok(request: web.Request, state: str) -> bool:
    expected = request.cookies.get(STATE_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected, state)


def drop_state(response: web.StreamResponse) -> None:
    response.del_cookie(STATE_COOKIE, path="/wechat/")
