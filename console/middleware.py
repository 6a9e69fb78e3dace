"""The console's middlewares: security headers, our errors as HTTP statuses (here and
nowhere else), the session, the CSRF check on every POST, and the supervisors' nav badge."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping

from aiohttp import web

from cases.errors import (
    BadOrder12345,
    BodyTooLarge,
    Hotline12345Off,
    NotSigned,
    OrderNoConflict,
    ReplayedNonce,
    StaleRequest,
)
from cases.orders import overdue_count
from console import accounts
from console.agent_views import wss_url
from console.errors import BadRequest, NotAllowed, NotFound, TooBusy
from console.request import CSRF, OVERDUE, SESSION_COOKIE, USER, deps, render, secure_cookies
from core.errors import StoreUnavailable
from ivr.errors import AgentError, AmiError, CallbackCallError

log = logging.getLogger(__name__)
# Without a session: sign-in, assets, health, Twilio's callbacks, WeChat's pushes and 12345's
# work orders (signed instead), and the residents' WeChat binding page (its own session:
# console/wechat_session.py).
PUBLIC = ("/login", "/lang", "/static/", "/healthz", "/metrics", "/favicon.ico", "/twilio/", "/wechat/", "/api/12345/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Strict-Transport-Security (RFC 6797) once the console is reached over HTTPS: 180 days, this
# host only (a county's other hosts may still be plain HTTP).
HSTS = "max-age=15552000"


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect raised (sign-in, the language switch) gets them too
        _add_security_headers(request, exc.headers)
        raise
    _add_security_headers(request, response.headers)
    return response


def _add_security_headers(request: web.Request, headers: MutableMapping[str, str]) -> None:
    # connect-src: the console itself and the softphone's WebSocket to Asterisk, no more.
    connect = " ".join(filter(None, ["'self'", wss_url(request)]))
    headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self'; style-src 'self'; connect-src {connect}; "
        "frame-ancestors 'none'; form-action 'self'"
    )
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cache-Control"] = "no-store"
    if secure_cookies(request):  # browsers ignore the header over plain HTTP (RFC 6797 §8.1)
        headers["Strict-Transport-Security"] = HSTS


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path.endswith("/stream")


STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (NotAllowed, 403),
    (NotFound, 404),
    (BadRequest, 400),
    (AgentError, 409),  # not logged in, or Asterisk refused the change
    (CallbackCallError, 409),  # a callback's call out already under way
    (AmiError, 502),
    (StoreUnavailable, 503),
    (TooBusy, 429),
    # 12345's work orders (console/hotline12345_views.py; documented by hotline12345_openapi.py).
    (BadOrder12345, 400),
    (NotSigned, 401),  # unknown counterpart, bad or missing signature
    (StaleRequest, 403),  # signed, but too old or too far ahead
    (ReplayedNonce, 403),  # signed and fresh, but its nonce was taken before
    (Hotline12345Off, 404),
    (OrderNoConflict, 409),
    (BodyTooLarge, 413),
)


@web.middleware
async def errors_as_statuses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our named errors become HTTP statuses here, and only here."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except tuple(kind for kind, _ in STATUSES) as exc:
        status = next(code for kind, code in STATUSES if isinstance(exc, kind))
        log.warning("console %s %s by %s: %s", request.method, request.path, who(request), exc)
        if wants_json(request):
            field = {"field": exc.field} if isinstance(exc, BadOrder12345) else {}
            return web.json_response({"error": str(exc)} | field, status=status)
        heading = {403: "forbidden", 404: "not_found"}.get(status, "cannot_do")
        return render(request, "error.html", status=status, message=str(exc), heading=heading)


def who(request: web.Request) -> str:
    u = request.get(USER)
    return u.username if u is not None else "anonymous"


@web.middleware
async def authenticated(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE)
    found = (
        await asyncio.to_thread(accounts.session_user, deps(request).store, token, deps(request).idle)
        if token
        else None
    )
    if found is not None:
        request[USER], request[CSRF] = found
    if request.path.startswith(PUBLIC) or request.path == "/login":
        return await handler(request)
    if found is None:
        if wants_json(request):
            return web.json_response({"error": "not signed in"}, status=401)
        raise web.HTTPSeeOther("/login" + ("?expired=1" if token else ""))
    if request.method == "POST":
        await _check_csrf(request)
    return await handler(request)


async def _check_csrf(request: web.Request) -> None:
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type == "application/x-www-form-urlencoded":
        sent = str((await request.post()).get("csrf", ""))
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        raise web.HTTPForbidden(text="cross-site request refused")
    if not sent or not secrets.compare_digest(sent, request[CSRF]):
        log.warning("console: CSRF token missing or wrong on %s %s by %s", request.method, request.path, who(request))
        raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")


# Who sees the overdue orders' badge in the nav (console.order_views.SUPERVISORS).
BADGE_ROLES = ("supervisor", "admin")


@web.middleware
async def nav_badges(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A supervisor's pages show how many orders are overdue (one COUNT per page, not for
    the audio, the live streams or the JSON API)."""
    u = request.get(USER)
    page = request.method == "GET" and not wants_json(request) and not request.path.endswith("/audio")
    if u is not None and u.role in BADGE_ROLES and page and not request.path.startswith(PUBLIC):
        request[OVERDUE] = await asyncio.to_thread(overdue_count, deps(request).store)
    return await handler(request)
