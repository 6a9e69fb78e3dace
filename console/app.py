"""The web console on aiohttp: sign-in, the agent desk, the supervisor wallboard.

Pages are rendered by Jinja2 with autoescaping; live figures arrive over server-sent
events. Every state-changing request is a POST carrying the session's CSRF token (form
field or `X-CSRF-Token` header); cookies are HttpOnly and SameSite=Strict; the Content
Security Policy allows only our own scripts and styles. HTTP statuses are chosen here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from console import accounts
from console.accounts import User
from console.errors import AddressBlocked, BadCredentials, BadRequest, ConsoleError, NotAllowed, TooBusy
from console.i18n import DEFAULT_LANG, LANGS, local_time, t, table
from console.limits import Limits
from console.live import WaitingCallers
from core.business import BusinessPort
from core.db import Store
from core.errors import StoreUnavailable
from core.health import Health
from core.settings import Settings
from ivr.agents import AgentControl
from ivr.errors import AgentError, AmiError

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "hotline_session"
LOGIN_CSRF_COOKIE = "hotline_login_csrf"
LANG_COOKIE = "hotline_lang"
# Without a session: sign-in, assets, health, and Twilio's callbacks (signed instead).
PUBLIC = ("/login", "/lang", "/static/", "/healthz", "/favicon.ico", "/twilio/")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ConsoleDeps:
    settings: Settings
    store: Store
    port: BusinessPort
    agents: AgentControl
    callers: WaitingCallers | None  # the AMI monitor, when this process runs one
    health: Health | None = None  # what `hotline serve` runs and whether it is up

    @property
    def idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.web.session_idle_minutes)


DEPS = web.AppKey("deps", ConsoleDeps)
LIMITS = web.AppKey("limits", Limits)
JINJA = web.AppKey("jinja", jinja2.Environment)
USER = web.RequestKey("user", User)
CSRF = web.RequestKey("csrf", str)


def deps(request: web.Request) -> ConsoleDeps:
    return request.app[DEPS]


def user(request: web.Request) -> User:
    return request[USER]


def lang(request: web.Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, DEFAULT_LANG)
    return chosen if chosen in LANGS else DEFAULT_LANG


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    page = request.app[JINJA].get_template(template)
    language = lang(request)
    body = page.render(
        lang=language,
        t=lambda key: t(key, language),
        strings=table(language),
        user=request.get(USER),
        csrf=request.get(CSRF, ""),
        path=request.path,
        **context,
    )
    return web.Response(text=body, status=status, content_type="text/html")


def client_address(request: web.Request) -> str:
    """Who is asking, for the per-address limits: the peer, or behind a trusted proxy the
    address it forwarded for (the rightmost X-Forwarded-For entry no proxy of ours added)."""
    peer = request.remote or "unknown"
    proxies = deps(request).settings.web.trusted_proxies
    if peer not in proxies:
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    outside = [h for h in hops if h not in proxies]
    return outside[-1][:64] if outside else peer


def require_role(request: web.Request, *roles: str) -> User:
    u = user(request)
    if u.role not in roles:
        raise NotAllowed(f"{u.username} ({u.role}) may not open {request.path}")
    return u


def _cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, **extra: Any) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Strict",
        secure=deps(request).settings.web.secure_cookies,
        path="/",
        **extra,
    )


# --- middlewares ---------------------------------------------------------------------------


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/") or request.path.endswith("/stream")


STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (NotAllowed, 403),
    (BadRequest, 400),
    (AgentError, 409),  # not logged in, or Asterisk refused the change
    (AmiError, 502),
    (StoreUnavailable, 503),
    (TooBusy, 429),
)


@web.middleware
async def errors_as_statuses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our named errors become HTTP statuses here, and only here."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (NotAllowed, BadRequest, AgentError, AmiError, StoreUnavailable, TooBusy) as exc:
        status = next(code for kind, code in STATUSES if isinstance(exc, kind))
        log.warning("console %s %s by %s: %s", request.method, request.path, _who(request), exc)
        if _wants_json(request):
            return web.json_response({"error": str(exc)}, status=status)
        return render(request, "error.html", status=status, message=str(exc))


def _who(request: web.Request) -> str:
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
        if _wants_json(request):
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
        log.warning("console: CSRF token missing or wrong on %s %s by %s", request.method, request.path, _who(request))
        raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")


# --- sign-in ------------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    # Keep the token the browser already holds: two sign-in tabs must not undo each other.
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    message = t("expired", lang(request)) if request.query.get("expired") else ""
    response = render(request, "login.html", login_csrf=token, message=message)
    _cookie(response, request, LOGIN_CSRF_COOKIE, token)
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
        raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the sign-in page")
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    d, language = deps(request), lang(request)
    address = client_address(request)
    try:
        signed = await _sign_in(request, address, username, password)
    except BadCredentials:
        log.warning("console: failed sign-in for %r from %s", username[:32], address)
        return render(request, "login.html", status=401, login_csrf=expected, message=t("bad_login", language))
    except AddressBlocked as exc:
        log.warning("console: sign-in for %r from %s refused: %s", username[:32], address, exc)
        until = local_time(exc.until, d.settings.queue.timezone)
        message = t("address_blocked", language).format(until=until)
        return render(request, "login.html", status=429, login_csrf=expected, message=message)
    except TooBusy as exc:
        log.warning("console: sign-in for %r from %s refused: %s", username[:32], address, exc)
        return render(request, "login.html", status=429, login_csrf=expected, message=t("busy_login", language))
    log.info("console: %s (%s) signed in", signed.user.username, signed.user.role)
    response = web.HTTPSeeOther("/")
    _cookie(response, request, SESSION_COOKIE, signed.token, max_age=int(d.idle.total_seconds()))
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise response


async def _sign_in(request: web.Request, address: str, username: str, password: str) -> accounts.SignedIn:
    """The address's attempt is counted in the store before the password is checked (a
    blocked address moves no account's lock), the check waits for a sign-in thread."""
    d, limits = deps(request), request.app[LIMITS]
    rules = accounts.AddressRules.of(d.settings.web)
    with limits.sign_in(address, username):
        await asyncio.to_thread(accounts.take_attempt, d.store, address, rules)
        try:
            signed = await limits.check_password(accounts.sign_in, d.store, username, password, d.idle)
        except BadCredentials:
            await asyncio.to_thread(accounts.attempt_failed, d.store, address, rules)
            raise
        await asyncio.to_thread(accounts.attempt_succeeded, d.store, address, rules)
    return signed


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    await asyncio.to_thread(accounts.sign_out, deps(request).store, token)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


async def switch_lang(request: web.Request) -> web.StreamResponse:
    chosen = request.query.get("to", DEFAULT_LANG)
    back = request.query.get("next", "/")
    if chosen not in LANGS or not back.startswith("/") or back.startswith("//"):
        raise web.HTTPBadRequest(text="unknown language or return path")
    response = web.HTTPSeeOther(back)
    _cookie(response, request, LANG_COOKIE, chosen, max_age=365 * 86400)
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/agent" if user(request).role == "agent" else "/wallboard")


async def healthz(request: web.Request) -> web.StreamResponse:
    """Without sign-in, for a load balancer and `hotline status`: component names, states,
    restart counts and error texts (digits masked), nothing about callers or accounts."""
    health = deps(request).health
    body = health.as_json() if health is not None else {"ok": True, "components": {}}
    return web.json_response(body, status=200 if body["ok"] else 503)


async def favicon(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


# --- server-sent events -------------------------------------------------------------------

SSE_POLL_S = 1.0
SSE_KEEPALIVE_S = 15.0
SSE_SESSION_CHECK_S = 30.0


async def sse(request: web.Request, snapshot: Callable[[], Awaitable[dict[str, Any]]]) -> web.StreamResponse:
    """Send the snapshot whenever it changes (checked every second), a comment line as a
    keep-alive otherwise; ends when the browser goes away, the server stops, or the session
    ends (signed out elsewhere, or idle: an open page alone does not keep a session alive).
    At most `web.streams_per_user` and `web.streams_per_address` at once (429 beyond)."""
    with request.app[LIMITS].stream(client_address(request), user(request).username):
        return await _sse(request, snapshot)


async def _sse(request: web.Request, snapshot: Callable[[], Awaitable[dict[str, Any]]]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    last, quiet, since_check = "", 0.0, 0.0
    token, d = request.cookies.get(SESSION_COOKIE, ""), deps(request)
    try:
        while True:
            if since_check >= SSE_SESSION_CHECK_S:
                since_check = 0.0
                if await asyncio.to_thread(accounts.session_user, d.store, token, d.idle, extend=False) is None:
                    await response.write(b"event: signed-out\ndata: {}\n\n")
                    break
            data = web.json_response(await snapshot()).text or ""
            if data != last:
                await response.write(f"data: {data}\n\n".encode())
                last, quiet = data, 0.0
            elif quiet >= SSE_KEEPALIVE_S:
                await response.write(b": keep-alive\n\n")
                quiet = 0.0
            await asyncio.sleep(SSE_POLL_S)
            quiet += SSE_POLL_S
            since_check += SSE_POLL_S
    except (ConnectionResetError, ConnectionError):
        pass  # the browser closed the page
    return response


def make_app(d: ConsoleDeps) -> web.Application:
    from console import agent_views, report_views, twilio_views, wallboard_views  # they import this module's helpers

    app = web.Application(middlewares=[security_headers, errors_as_statuses, authenticated], client_max_size=64 * 1024)
    app[DEPS] = d
    app[LIMITS] = Limits(d.settings.web)
    app[JINJA] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/lang", switch_lang)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/", home)
    app.router.add_static("/static/", HERE / "static")
    agent_views.add_routes(app)
    wallboard_views.add_routes(app)
    report_views.add_routes(app)
    twilio_views.add_routes(app)

    async def close_limits(app: web.Application) -> None:
        app[LIMITS].close()

    app.on_cleanup.append(close_limits)
    return app


__all__ = ["ConsoleDeps", "ConsoleError", "make_app"]
