"""The supervisors' staffing page: agents needed per hour of the coming week by Erlang C
against the agents signed in at those hours of past weeks (reports/staffing.py), and its
CSV and JSON downloads."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo

from aiohttp import web

from console.errors import BadRequest
from console.request import deps, lang, render, require_role
from reports import staffing, staffing_render
from reports.labels import WEEKDAYS, label

ROLES = ("supervisor", "admin")
DOWNLOADS = {"csv": "text/csv", "json": "application/json"}


def _now(request: web.Request) -> dt.datetime | None:
    """?today=YYYY-MM-DD plans the week after that day (noon, local); default: today."""
    text = request.query.get("today", "").strip()
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"today {text!r}: not a date; write it as YYYY-MM-DD") from None
    return dt.datetime.combine(day, dt.time(12), zoneinfo.ZoneInfo(deps(request).settings.queue.timezone))


def _weeks(request: web.Request) -> int | None:
    text = request.query.get("weeks", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise BadRequest(f"weeks {text!r}: give a whole number of weeks, 1 to 52")
    return int(text)


async def _plan(request: web.Request) -> staffing.Staffing:
    d = deps(request)
    weeks, now = _weeks(request), _now(request)
    try:
        return await asyncio.to_thread(staffing.build, d.store, d.settings.queue, weeks, now)
    except staffing.StaffingError as exc:
        raise BadRequest(str(exc)) from exc


async def page(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    plan = await _plan(request)
    language = lang(request)
    days = sorted({h.day for h in plan.hours})
    grid = {(h.day, h.hour): h for h in plan.hours}
    today = request.query.get("today", "").strip() or (plan.history_last + dt.timedelta(days=1)).isoformat()
    return render(
        request,
        "staffing.html",
        plan=plan,
        days=days,
        grid=grid,
        weekdays=WEEKDAYS[language],
        basis=staffing_render.basis(plan, language),
        rows=staffing_render.listed(plan),
        columns=staffing_render.COLUMNS,
        cell=lambda key, value: staffing_render.plan_cell(key, value, language),
        label=lambda key: label(key, language),
        short_hours=sum(1 for h in plan.hours if h.short),
        today=today,
        formats=tuple(DOWNLOADS),
    )


async def download(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    kind = request.query.get("format", "csv")
    if kind not in DOWNLOADS:
        raise BadRequest(f"format {kind!r}: choose one of {', '.join(DOWNLOADS)}")
    plan = await _plan(request)
    body = staffing_render.as_csv(plan) if kind == "csv" else staffing_render.as_json(plan)
    first = plan.hours[0].day.isoformat()
    return web.Response(
        text=body,
        content_type=DOWNLOADS[kind],
        headers={"Content-Disposition": f'attachment; filename="hotline-staffing-{first}.{kind}"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reports/staffing", page)
    app.router.add_get("/reports/staffing/download", download)
