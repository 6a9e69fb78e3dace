"""Sign-in, sign-out, the language switch, the home redirect and the health page."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from aiohttp import web

from console import accounts
from console.errors import AddressBlocked, BadCredentials, TooBusy
from console.i18n import DEFAULT_LANG, LANGS, local_time, t
from console.request import (
    LANG_COOKIE,
    LIMITS,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    client_address,
    deps,
    lang,
    render,
    set_cookie,
    user,
)
from core.calls_out import dial_summary
from core.errors import StoreUnavailable

log = logging.getLogger(__name__)


async def login_page(request: web.Request) -> web.StreamResponse:
    # Keep the token the browser already holds: two sign-in tabs must not undo each other.
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    message = t("expired", lang(request)) if request.query.get("expired") else ""
    response = render(request, "login.html", login_csrf=token, message=message)
    set_cookie(response, request, LOGIN_CSRF_COOKIE, token)
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
    set_cookie(response, request, SESSION_COOKIE, signed.token, max_age=int(d.idle.total_seconds()))
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
    set_cookie(response, request, LANG_COOKIE, chosen, max_age=365 * 86400)
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    role = user(request).role
    raise web.HTTPSeeOther({"agent": "/agent", "auditor": "/audit", "department": "/orders"}.get(role, "/wallboard"))


async def healthz(request: web.Request) -> web.StreamResponse:
    """Without sign-in, for a load balancer and `hotline status`: component names, states,
    restart counts and error texts (digits masked), nothing about callers or accounts."""
    health = deps(request).health
    body = health.as_json() if health is not None else {"ok": True, "components": {}}
    body |= await _calls_out(request)
    return web.json_response(body, status=200 if body["ok"] else 503)


async def _calls_out(request: web.Request) -> dict[str, Any]:
    """Calls out in the last hour, and a warning when a cap kept one from being placed
    (core.calls_out): not a component down, but what an operator must hear of."""
    d = deps(request)
    try:
        summary = await asyncio.to_thread(dial_summary, d.store, d.settings.destinations)
    except StoreUnavailable:
        return {}
    body: dict[str, Any] = {"calls_out": summary.as_json()}
    if summary.capped:
        refused = ", ".join(f"{n} by {cap}" for cap, n in summary.refused_last_hour.items() if n)
        body["warnings"] = [f"calls out refused by a cap in the last hour: {refused} (destinations.calls_per_*)"]
    return body


async def favicon(_request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/lang", switch_lang)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/", home)
