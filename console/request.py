"""What every console view uses: the app's parts (deps, limits, templates), the signed-in
user, the language, rendering, roles, cookies and the client's address."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from console.accounts import User
from console.errors import NotAllowed
from console.i18n import DEFAULT_LANG, LANGS, t, table
from console.limits import Limits
from console.live import PhoneStates, WaitingCallers
from core.business import BusinessPort
from core.db import Store
from core.health import Health
from core.settings import Settings
from ivr.agents import AgentControl

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "hotline_session"
LOGIN_CSRF_COOKIE = "hotline_login_csrf"
LANG_COOKIE = "hotline_lang"


@dataclass
class ConsoleDeps:
    settings: Settings
    store: Store
    port: BusinessPort
    agents: AgentControl
    callers: WaitingCallers | None  # the AMI monitor, when this process runs one
    health: Health | None = None  # what `hotline serve` runs and whether it is up
    phones: PhoneStates | None = None  # agents' phones registered or not: the AMI monitor

    @property
    def idle(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.web.session_idle_minutes)


DEPS = web.AppKey("deps", ConsoleDeps)
LIMITS = web.AppKey("limits", Limits)
JINJA = web.AppKey("jinja", jinja2.Environment)
USER = web.RequestKey("user", User)
# Orders past their deadline, for a supervisor's nav badge (console.middleware.nav_badges).
OVERDUE = web.RequestKey("overdue", int)
CSRF = web.RequestKey("csrf", str)


def deps(request: web.Request) -> ConsoleDeps:
    return request.app[DEPS]


def user(request: web.Request) -> User:
    return request[USER]


def actor(request: web.Request) -> str:
    """How the signed-in user is named in the audit log and an order's history."""
    return f"console:{user(request).username}"


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
        overdue_orders=request.get(OVERDUE, 0),
        csrf=request.get(CSRF, ""),
        path=request.path,
        **context,
    )
    return web.Response(text=body, status=status, content_type="text/html")


def client_address(request: web.Request) -> str:
    """Who is asking, for the per-address limits: the peer, or behind a trusted proxy the
    address it forwarded for (the rightmost X-Forwarded-For entry no proxy of ours added)."""
    peer = request.remote or "unknown"
    web_settings = deps(request).settings.web
    if not web_settings.is_trusted_proxy(peer):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    outside = [h for h in hops if not web_settings.is_trusted_proxy(h)]
    return outside[-1][:64] if outside else peer


def over_tls(request: web.Request) -> bool:
    """Whether the browser reached the console over HTTPS: a TLS connection of our own, or
    a trusted proxy (`web.trusted_proxies`) that says so in X-Forwarded-Proto (its last
    entry: the one our proxy added). From anyone else the header is ignored."""
    if request.secure:
        return True
    if not deps(request).settings.web.is_trusted_proxy(request.remote or ""):
        return False
    protos = [p.strip().lower() for p in ",".join(request.headers.getall("X-Forwarded-Proto", [])).split(",")]
    return bool(protos) and protos[-1] == "https"


def secure_cookies(request: web.Request) -> bool:
    """Cookies carry Secure when `web.secure_cookies` says so or the request came over HTTPS."""
    return deps(request).settings.web.secure_cookies or over_tls(request)


def require_role(request: web.Request, *roles: str) -> User:
    u = user(request)
    if u.role not in roles:
        raise NotAllowed(f"{u.username} ({u.role}) may not open {request.path}")
    return u


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, **extra: Any) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),
        path="/",
        **extra,
    )
