"""The supervisor wallboard: callers waiting, agents by state, today's KPIs, live."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from console import live
from console.request import DEPS, render, require_role
from console.sse import SSE_POLL_S, sse

ROLES = ("supervisor", "admin")


class SharedBoard:
    """The board is the same for every supervisor: one store read per poll interval
    serves all the open streams, however many there are (100 streams read it once a
    second, not 100 times)."""

    def __init__(self, read: Callable[[], dict[str, Any]], max_age_s: float) -> None:
        self.read = read
        self.max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._at = float("-inf")
        self._board: dict[str, Any] = {}

    async def get(self) -> dict[str, Any]:
        async with self._lock:  # the streams that ask meanwhile wait for this one read
            now = asyncio.get_running_loop().time()
            if now - self._at >= self.max_age_s:
                self._board = await asyncio.to_thread(self.read)
                self._at = asyncio.get_running_loop().time()
            return self._board


BOARD = web.AppKey("board", SharedBoard)


async def board(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    return render(request, "wallboard.html", states=live.AGENT_STATES, queue=request.app[DEPS].settings.queue)


async def board_stream(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    return await sse(request, request.app[BOARD].get)


def add_routes(app: web.Application) -> None:
    d = app[DEPS]
    # A little under the poll interval: each stream's next poll finds a fresh board.
    app[BOARD] = SharedBoard(lambda: live.wallboard(d.store, d.settings.queue, d.callers, d.phones), SSE_POLL_S * 0.9)
    app.router.add_get("/wallboard", board)
    app.router.add_get("/wallboard/stream", board_stream)
