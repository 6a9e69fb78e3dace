"""The supervisor wallboard: callers waiting, agents by state, today's KPIs, live."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from console import live
from console.app import deps, render, require_role, sse

ROLES = ("supervisor", "admin")


async def board(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    return render(request, "wallboard.html", states=live.AGENT_STATES)


async def board_stream(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    d = deps(request)

    async def snapshot() -> dict[str, Any]:
        return await asyncio.to_thread(live.wallboard, d.store, d.settings.queue, d.callers)

    return await sse(request, snapshot)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/wallboard", board)
    app.router.add_get("/wallboard/stream", board_stream)
