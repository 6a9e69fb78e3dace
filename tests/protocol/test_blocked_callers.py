"""Calls from numbers on the nuisance list over FastAGI, against the scripted AGI peer: the
IVR's treatment at the start of the call, and the refusal at queue entry, so that no path
reaches an agent; an unlisted caller and an expired block go on as before."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import select

from core import blocked_callers as bc
from core.db import Store
from core.models import BlockedCall, Call, utcnow
from hotline.serve import ivr_route
from ivr.caller_blocks import CallerBlocks
from ivr.fastagi import FastAgiServer, Route
from ivr.queue_entry import queue_entry_route
from ivr.session import IvrServices
from ivr.trail import show_call
from tests.protocol.agi_peer import Caller, environment, run_peer
from tests.protocol.test_fastagi import recorded_end
from tests.protocol.test_queue_entry import ALWAYS, _asterisk, _env

BLOCKED = "13812345678"
NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)
UNTIL = NOW + dt.timedelta(days=7)


def _block(store: Store) -> None:
    bc.block(store, "+86 138 1234 5678", reason="abuse", until=UNTIL, actor="test", now=NOW)


@asynccontextmanager
async def _serving(script: str, route: Route) -> AsyncIterator[int]:
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route(script, route)
    srv = await app.serve("127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


def _ivr(services: IvrServices, store: Store, treatment: str, clock: Callable[[], dt.datetime]) -> Route:
    return ivr_route(dataclasses.replace(services, callers=CallerBlocks(store, treatment, clock=clock)))


def _played(commands: list[str]) -> list[str]:
    return [c.split()[2].rsplit("/", 1)[1] for c in commands if c.startswith(("STREAM FILE", "GET DATA"))]


def _blocked_calls(store: Store) -> list[tuple[str, str, str]]:
    with store.session() as s:
        return [(c.number, c.stage, c.treatment) for c in s.scalars(select(BlockedCall))]


async def test_hang_up_treatment_ends_the_call_at_once(
    services: IvrServices, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    _block(store)
    caplog.set_level(logging.INFO)
    async with _serving("ivr", _ivr(services, store, "hang_up", lambda: NOW)) as port:
        commands = await run_peer(port, Caller([]), env=environment(callerid="+8613812345678"))
    assert _played(commands) == ["caller.blocked_end"]
    assert 'SET VARIABLE HOTLINE_ACTION "hangup"' in commands
    assert not any("HOTLINE_ACTION" in c and "queue" in c for c in commands)
    call = await recorded_end(store, 0)
    assert call["outcome"] == "completed" and call["queue"] is None
    assert any(s["kind"] == "blocked" and s.get("treatment") == "hang_up" for s in call["trail"])
    assert _blocked_calls(store) == [(BLOCKED, "ivr", "hang_up")]
    assert BLOCKED not in caplog.text and "138****5678 is on the nuisance list" in caplog.text


async def test_self_service_never_transfers_however_the_caller_asks(services: IvrServices, store: Store) -> None:
    _block(store)
    # Silence at the welcome, then 0 (an agent) three times from the main menu.
    caller = Caller([None, "0", None, "0", None, "0"])
    async with _serving("ivr", _ivr(services, store, "self_service", lambda: NOW)) as port:
        commands = await run_peer(port, caller, env=environment(callerid=BLOCKED))
    played = _played(commands)
    assert played[:2] == ["caller.blocked", "welcome"]
    assert played.count("caller.no_agent") == 3 and played[-1] == "goodbye"
    assert "agent.transfer" not in played
    assert not any(("HOTLINE_ACTION" in c and "queue" in c) or "HOTLINE_QUEUE" in c for c in commands)
    assert 'SET VARIABLE HOTLINE_ACTION "hangup"' in commands
    assert _blocked_calls(store) == [(BLOCKED, "ivr", "self_service")]


async def test_an_unlisted_caller_and_an_expired_block_reach_the_queue(services: IvrServices, store: Store) -> None:
    _block(store)
    for callerid, clock in (("13900001111", lambda: NOW), (BLOCKED, lambda: UNTIL)):
        async with _serving("ivr", _ivr(services, store, "hang_up", clock)) as port:
            commands = await run_peer(port, Caller([None, "0"]), env=environment(callerid=callerid))
        assert _played(commands)[-1] == "agent.transfer", callerid
        assert 'SET VARIABLE HOTLINE_ACTION "queue"' in commands
    assert _blocked_calls(store) == []


async def test_queue_entry_turns_a_listed_number_away(store: Store) -> None:
    """However a listed number came to the queue (the IVR's session failed, or the FastAGI
    server was down when the call began), queue entry sends it away."""
    _block(store)
    with store.session() as s:
        s.add(Call(id="call-q", started_at=utcnow(), caller_number=BLOCKED, outcome="failed"))
    route = queue_entry_route(store, ALWAYS, callers=CallerBlocks(store, "self_service", clock=lambda: NOW))
    async with _serving("queue-entry", route) as port:
        commands = await run_peer(port, _asterisk([], ready=1, logged=1), env=_env("8613812345678"))
    assert _played(commands) == ["caller.no_agent", "goodbye"]
    assert "SET VARIABLE HOTLINE_ACTION hangup" in commands
    assert not any("QUEUE_MEMBER" in c for c in commands)  # it never looked at the queue
    assert _blocked_calls(store) == [(BLOCKED, "queue", "self_service")]
    # After the expiry the same number queues (an agent is free: it hears nothing).
    route = queue_entry_route(store, ALWAYS, callers=CallerBlocks(store, "self_service", clock=lambda: UNTIL))
    async with _serving("queue-entry", route) as port:
        commands = await run_peer(port, _asterisk([], ready=1, logged=1), env=_env(BLOCKED))
    assert _played(commands) == [] and not any("HOTLINE_ACTION" in c for c in commands)
    assert len(_blocked_calls(store)) == 1


async def test_the_call_trail_shows_the_refusals(services: IvrServices, store: Store) -> None:
    _block(store)
    async with _serving("ivr", _ivr(services, store, "self_service", lambda: NOW)) as port:
        await run_peer(port, Caller([None, "0", None, "0", None, "0"]), env=environment(callerid=BLOCKED))
    call = await recorded_end(store, 0)
    refused = [s["refused"] for s in call["trail"] if s["kind"] == "blocked" and "refused" in s]
    assert refused == [1, 2, 3]
    assert show_call(store, call["id"], actor="test")["outcome"] == "completed"
