"""The web console on aiohttp: sign-in, the agent desk, the supervisor wallboard, reports,
the auditors' trail.

Pages are rendered by Jinja2 with autoescaping; live figures arrive over server-sent
events. Every state-changing request is a POST carrying the session's CSRF token (form
field or `X-CSRF-Token` header); cookies are HttpOnly and SameSite=Strict; the Content
Security Policy allows only our own scripts and styles. HTTP statuses are chosen in
`console.middleware` and nowhere else. This module only wires the parts together.
"""

from __future__ import annotations

import jinja2
from aiohttp import web

from console import (
    agent_views,
    audit_views,
    callers_views,
    hotline12345_views,
    kb_views,
    metrics_views,
    order_views,
    prefs_views,
    recording_views,
    report_views,
    sign_in_views,
    staffing_views,
    twilio_views,
    wallboard_views,
    wechat_bind,
    wechat_events,
)
from console.errors import ConsoleError
from console.limits import Limits
from console.middleware import authenticated, errors_as_statuses, nav_badges, security_headers
from console.request import DEPS, HERE, JINJA, LIMITS, ConsoleDeps


def make_app(d: ConsoleDeps) -> web.Application:
    middlewares = [security_headers, errors_as_statuses, authenticated, nav_badges]
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024)
    app[DEPS] = d
    app[LIMITS] = Limits(d.settings.web)
    app[JINJA] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    sign_in_views.add_routes(app)
    metrics_views.add_routes(app)
    app.router.add_static("/static/", HERE / "static")
    agent_views.add_routes(app)
    wallboard_views.add_routes(app)
    report_views.add_routes(app)
    staffing_views.add_routes(app)
    kb_views.add_routes(app)
    audit_views.add_routes(app)
    order_views.add_routes(app)
    prefs_views.add_routes(app)
    callers_views.add_routes(app)
    recording_views.add_routes(app)
    twilio_views.add_routes(app)
    wechat_bind.add_routes(app)
    wechat_events.add_routes(app)
    hotline12345_views.add_routes(app)

    async def close_limits(app: web.Application) -> None:
        app[LIMITS].close()

    app.on_cleanup.append(close_limits)
    return app


__all__ = ["ConsoleDeps", "ConsoleError", "make_app"]
