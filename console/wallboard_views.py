"""The supervisor wallboard: callers waiting, agents by state, today's KPIs, live."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from console import live
from console.errors import BadRequest
from console.request import DEPS, deps, render, require_role
from console.sse import SSE_POLL_S, sse
from ivr.errors import AgentError, MonitorRefused
from ivr.monitor import MODES, Monitoring

log = logging.getLogger(__name__)
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


async def monitor(request: web.Request) -> web.StreamResponse:
    """监听 / 耳语 / 强插 from the wallboard: ring the supervisor's own phone (the account's
    interface) into the agent's call in that mode. 409 with the rule when it may not."""
    user = require_role(request, "supervisor", "admin")
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("the request body is not JSON") from exc
    agent, mode = (body.get("agent"), body.get("mode")) if isinstance(body, dict) else (None, None)
    if not isinstance(agent, str) or mode not in MODES:
        raise BadRequest(f"agent and mode ({', '.join(MODES)}) are required")
    if not user.interface:
        return web.json_response(
            {"error": f"account {user.username} has no phone to ring (hotline users add --interface PJSIP/…)"},
            status=409,
        )
    d = deps(request)
    try:
        view = await Monitoring(d.settings, d.store).start(
            username=user.username, agent_id=agent, mode=mode, phone=user.interface
        )
    except MonitorRefused as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"session": view.id, "state": view.state, "phone": view.phone})


async def skills(request: web.Request) -> web.StreamResponse:
    """A supervisor sets an agent's skills: at once if the agent is logged in."""
    user = require_role(request, "supervisor", "admin")
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("the request body is not JSON") from exc
    agent, wanted = (body.get("agent"), body.get("skills")) if isinstance(body, dict) else (None, None)
    if not isinstance(agent, str) or not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
        raise BadRequest("agent and skills (a list of skill names) are required")
    d = deps(request)
    try:
        saved = await d.agents.set_skills(agent, wanted)
    except AgentError as exc:
        return web.json_response({"error": str(exc)}, status=409)
    log.info("console: %s set agent %s's skills to %s", user.username, agent, ",".join(saved) or "none")
    return web.json_response({"agent": agent, "skills": saved})


def add_routes(app: web.Application) -> None:
    d = app[DEPS]
    # A little under the poll interval: each stream's next poll finds a fresh board.
    app[BOARD] = SharedBoard(
        lambda: live.wallboard(d.store, d.settings.queue, d.callers, d.phones, d.settings.skills.names),
        SSE_POLL_S * 0.9,
    )
    app.router.add_get("/wallboard", board)
    app.router.add_get("/wallboard/stream", board_stream)
    app.router.add_post("/wallboard/monitor", monitor)
    app.router.add_post("/wallboard/skills", skills)
