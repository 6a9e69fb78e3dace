"""Reports for supervisors: a period picker, the report on the page, and downloads
(CSV tables in a zip, JSON, self-contained HTML, PDF)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import zipfile
import zoneinfo

from aiohttp import web

from console.errors import BadRequest
from console.request import deps, lang, render, require_role
from reports import render as report_render
from reports.period import Period, PeriodError, parse_period
from reports.report import Report, build

ROLES = ("supervisor", "admin")
DOWNLOADS = {
    "csv": "application/zip",
    "json": "application/json",
    "html": "text/html",
    "pdf": "application/pdf",
}


def _period(request: web.Request) -> Period:
    """From the query (?from=&to=), else the last 30 days up to today (local)."""
    zone = deps(request).settings.queue.timezone
    today = dt.datetime.now(zoneinfo.ZoneInfo(zone)).date()
    first = request.query.get("from") or (today - dt.timedelta(days=29)).isoformat()
    last = request.query.get("to") or today.isoformat()
    try:
        return parse_period(first, last, zone)
    except PeriodError as exc:
        raise BadRequest(str(exc)) from exc


async def _build(request: web.Request, period: Period) -> Report:
    d = deps(request)
    return await asyncio.to_thread(build, d.store, period, d.settings.queue)


async def page(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    period = _period(request)
    report = await _build(request, period)
    language = lang(request)
    return render(
        request,
        "reports.html",
        period=period,
        body=report_render.html_body(report, language),
        formats=tuple(DOWNLOADS),
    )


async def download(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    period = _period(request)
    kind = request.query.get("format", "csv")
    if kind not in DOWNLOADS:
        raise BadRequest(f"format {kind!r}: choose one of {', '.join(DOWNLOADS)}")
    report = await _build(request, period)
    language = lang(request)
    name = f"hotline-report-{period.first.isoformat()}-{period.last.isoformat()}"
    body: bytes
    if kind == "csv":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for table, content in report_render.csv_tables(report).items():
                z.writestr(f"{name}/{table}", content)
        body, filename = buffer.getvalue(), f"{name}-csv.zip"
    elif kind == "json":
        body, filename = report_render.as_json(report).encode(), f"{name}.json"
    elif kind == "html":
        body, filename = report_render.as_html(report, language).encode(), f"{name}.html"
    else:
        try:
            body = await asyncio.to_thread(report_render.as_pdf, report, language)
        except report_render.RenderError as exc:
            raise BadRequest(f"no PDF: {exc}") from exc
        filename = f"{name}.pdf"
    return web.Response(
        body=body,
        content_type=DOWNLOADS[kind],
        charset="utf-8" if kind in ("json", "html") else None,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reports", page)
    app.router.add_get("/reports/download", download)
