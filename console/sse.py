"""Server-sent events for the live pages (agent desk, wallboard)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from console import accounts
from console.request import LIMITS, SESSION_COOKIE, client_address, deps, user

SSE_POLL_S = 1.0
SSE_KEEPALIVE_S = 15.0
SSE_SESSION_CHECK_S = 30.0


async def sse(request: web.Request, snapshot: Callable[[], Awaitable[dict[str, Any]]]) -> web.StreamResponse:
    """Send the snapshot whenever it changes (checked every second), a comment line as a
    keep-alive otherwise; ends when the browser goes away, the server stops, or the session
    ends (signed out elsewhere, or idle: an open page alone does not keep a session alive).
    At most `web.streams_per_user` and `web.streams_per_address` at once (429 beyond)."""
    with request.app[LIMITS].stream(client_address(request), user(request).username):
        return await _sse(request, snapshot)


async def _sse(request: web.Request, snapshot: Callable[[], Awaitable[dict[str, Any]]]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    last, quiet, since_check = "", 0.0, 0.0
    token, d = request.cookies.get(SESSION_COOKIE, ""), deps(request)
    try:
        while True:
            if since_check >= SSE_SESSION_CHECK_S:
                since_check = 0.0
                if await asyncio.to_thread(accounts.session_user, d.store, token, d.idle, extend=False) is None:
                    await response.write(b"event: signed-out\ndata: {}\n\n")
                    break
            data = web.json_response(await snapshot()).text or ""
            if data != last:
                await response.write(f"data: {data}\n\n".encode())
                last, quiet = data, 0.0
            elif quiet >= SSE_KEEPALIVE_S:
                await response.write(b": keep-alive\n\n")
                quiet = 0.0
            await asyncio.sleep(SSE_POLL_S)
            quiet += SSE_POLL_S
            since_check += SSE_POLL_S
    except (ConnectionResetError, ConnectionError):
        pass  # the browser closed the page
    return response
