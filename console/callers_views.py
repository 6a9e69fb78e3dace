"""骚扰号码 The nuisance list: supervisors list a calling number with a reason and an expiry,
and lift it (core/blocked_callers.py). Calls from a listed number hear the IVR's set
treatment and never reach an agent.

Supervisors and admins open it; anyone else is refused. Every change is audited as
console:<user> in the transaction that makes it; input the list cannot take (a withheld or
malformed number, no reason, an expiry not in the future) re-shows the form with the
refusal's words and the values typed, and changes nothing. Numbers proposed for the list
(many calls in 24 hours, or flagged abusive at wrap-up) are shown with a form each: only a
supervisor's click lists one.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final
from zoneinfo import ZoneInfo

from aiohttp import web

from console.request import actor, deps, render, require_role
from core import blocked_callers as bc
from core.errors import BlockRefused
from core.models import utcnow

ROLES: Final = ("supervisor", "admin")
CHANNEL: Final = "console"
DONE: Final = ("blocked", "unblocked")  # what the page says after a change (?done=)
FIELDS: Final = ("number", "reason", "until")


def _row(block: bc.Block, zone: str, now: Any) -> dict[str, Any]:
    local = ZoneInfo(zone)
    return {
        "number": block.number,
        "reason": block.reason,
        "until": f"{block.until.astimezone(local):%Y-%m-%d %H:%M}",
        "blocked_by": block.blocked_by,
        "blocked_at": f"{block.blocked_at.astimezone(local):%Y-%m-%d %H:%M}",
        "active": block.active(now),
    }


async def _page(
    request: web.Request, *, status: int = 200, message: str = "", form: dict[str, str] | None = None
) -> web.StreamResponse:
    d, now = deps(request), utcnow()
    expired = request.query.get("all") == "1"
    blocks = await asyncio.to_thread(bc.listed, d.store, now, expired=expired)
    per_day = d.settings.ivr.nuisance_calls_per_day
    proposed = await asyncio.to_thread(bc.proposals, d.store, now, calls_per_day=per_day)
    zone = d.settings.queue.timezone
    done = request.query.get("done", "")
    return render(
        request,
        "callers.html",
        status=status,
        rows=[_row(b, zone, now) for b in blocks],
        expired=expired,
        proposed=proposed,
        per_day=per_day,
        treatment=d.settings.ivr.blocked_treatment,
        message=message,
        form=form or dict.fromkeys(FIELDS, ""),
        done=done if done in DONE and not message else "",
    )


async def page(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    return await _page(request)


async def _posted(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {name: str(form.get(name, "")).strip()[:300] for name in FIELDS}


async def block(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    form, d, now = await _posted(request), deps(request), utcnow()
    try:
        until = bc.parse_until(form["until"], now, d.settings.queue.timezone)
        await asyncio.to_thread(
            bc.block,
            d.store,
            form["number"],
            reason=form["reason"],
            until=until,
            actor=actor(request),
            now=now,
            channel=CHANNEL,
        )
    except BlockRefused as exc:
        return await _page(request, status=400, message=str(exc), form=form)
    raise web.HTTPSeeOther("/callers?done=blocked")


async def unblock(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    number = (await _posted(request))["number"]
    try:
        await asyncio.to_thread(bc.unblock, deps(request).store, number, actor=actor(request), channel=CHANNEL)
    except BlockRefused as exc:
        return await _page(request, status=400, message=str(exc))
    raise web.HTTPSeeOther("/callers?done=unblocked")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/callers", page)
    app.router.add_post("/callers/block", block)
    app.router.add_post("/callers/unblock", unblock)
