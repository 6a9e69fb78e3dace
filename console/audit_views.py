"""The auditors' page (操作留痕): who saw or changed which resident's data, when, through
which channel; a CSV download of the same.

Only auditors, and admins, open it; supervisors do not (separation of duties: the trail
records what supervisors do too), and an auditor opens no other page (`require_role`
elsewhere names no auditor). Filters come as a POST form: an ID number in a URL would
land in access logs and browser history. The server resolves the ID number (the look-up
is audited), and every search and download is audited before its rows are sent.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from console.errors import BadRequest
from console.request import actor, deps, render, require_role
from core import audit
from core.audit_search import Ask, Found, as_csv, rows, search
from core.errors import AuditQueryRefused

ROLES = ("auditor", "admin")
FIELDS = ("id_number", "user", "from", "to", "channel")


async def _ask(request: web.Request) -> Ask:
    form = await request.post()
    values = {name: str(form.get(name, "")).strip()[:64] for name in FIELDS}
    return Ask(values["id_number"], values["user"], values["from"], values["to"], values["channel"])


async def _search(request: web.Request, ask: Ask, how: str) -> Found:
    require_role(request, *ROLES)
    d = deps(request)
    try:
        zone, viewer = d.settings.queue.timezone, actor(request)
        return await asyncio.to_thread(search, d.store, d.port, ask, viewer=viewer, channel="console", zone=zone)
    except AuditQueryRefused as exc:
        raise BadRequest(f"{how}: {exc}") from exc


async def page(request: web.Request) -> web.StreamResponse:
    """The empty form (nothing searched, nothing audited yet)."""
    require_role(request, *ROLES)
    return render(request, "audit.html", ask=Ask(), table=None, found=None, channels=audit.CHANNELS)


async def results(request: web.Request) -> web.StreamResponse:
    ask = await _ask(request)
    found = await _search(request, ask, "audit search")
    table = rows(found, deps(request).settings.queue.timezone)
    # The form comes back without the full ID number: the page shows it masked only.
    shown = Ask("", ask.user, ask.first, ask.last, ask.channel)
    return render(request, "audit.html", ask=shown, table=table, found=found, channels=audit.CHANNELS)


async def download(request: web.Request) -> web.StreamResponse:
    ask = await _ask(request)
    found = await _search(request, ask, "audit download")
    body = as_csv(rows(found, deps(request).settings.queue.timezone))
    return web.Response(
        body=body.encode("utf-8-sig"),  # with a BOM: Excel reads the Chinese then
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="hotline-audit.csv"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/audit", page)
    app.router.add_post("/audit", results)
    app.router.add_post("/audit/csv", download)
