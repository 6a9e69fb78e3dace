"""Supervised tasks of `hotline serve`: a task that raises is logged, started again after
a backoff, and `/healthz` says so, with the kind of its error (never its text), until it runs again."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from console.app import ConsoleDeps, make_app
from core.db import Store
from core.health import Health, State
from core.sample_port import SampleBusinessPort
from hotline.supervise import Backoff, Supervisor
from ivr.agents import AgentControl
from tests.conftest import PEPPER, make_settings


@pytest.fixture
async def healthz(sqlite_store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Health]]:
    settings = make_settings(tmp_path, sqlite_store.url)
    health = Health()
    deps = ConsoleDeps(
        settings, sqlite_store, SampleBusinessPort(sqlite_store, PEPPER), AgentControl(settings, sqlite_store), None
    )
    deps.health = health
    server = TestServer(make_app(deps), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/healthz")), health
    finally:
        await server.close()


async def _until(check: Callable[[], bool], limit_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not check():
        assert loop.time() < deadline, "the supervisor's state did not change in time"
        await asyncio.sleep(0.01)


async def _get(url: str) -> tuple[int, dict[str, Any]]:
    async with ClientSession() as http, http.get(url) as r:
        return r.status, await r.json()


def _state(health: Health, name: str) -> State | None:
    return next((c.state for c in health.components() if c.name == name), None)


async def test_a_task_that_raises_is_restarted_and_healthz_shows_its_error(
    healthz: tuple[str, Health], caplog: pytest.LogCaptureFixture
) -> None:
    url, health = healthz
    runs: list[int] = []
    hold = asyncio.Event()

    async def dispatcher() -> None:
        runs.append(1)
        if len(runs) == 1:
            await hold.wait()
            raise RuntimeError("claim failed for 13800001234 at db.internal.example:5432 (10.1.2.3)")
        await asyncio.Event().wait()  # the second run stays up

    stop = asyncio.Event()
    supervisor = Supervisor(health, stop, Backoff(first_s=0.5, ceiling_s=1.0))
    health.up("web")
    task = supervisor.spawn("sms-dispatcher", dispatcher)
    await _until(lambda: _state(health, "sms-dispatcher") is State.UP)
    status, body = await _get(url)
    assert status == 200 and body["ok"] is True
    hold.set()
    await _until(lambda: _state(health, "sms-dispatcher") is State.RESTARTING)
    status, body = await _get(url)
    shown = body["components"]["sms-dispatcher"]
    assert status == 503 and body["ok"] is False and body["components"]["web"]["state"] == "up"
    assert shown["state"] == "restarting" and shown["restarts"] == 1
    # The kind of error, not its text: /healthz answers anyone, and the text names hosts.
    assert shown["last_error"] == "RuntimeError" and shown["last_error_at"]
    said = json.dumps(body)
    assert not [x for x in ("db.internal.example", "10.1.2.3", "5432", "13800001234") if x in said]
    await _until(lambda: len(runs) == 2 and _state(health, "sms-dispatcher") is State.UP)
    status, body = await _get(url)
    assert status == 200 and body["components"]["sms-dispatcher"]["restarts"] == 1
    crash = [r for r in caplog.records if r.levelno == logging.ERROR and "sms-dispatcher failed" in r.getMessage()]
    assert len(crash) == 1 and crash[0].exc_info is not None  # with its traceback
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and _state(health, "sms-dispatcher") is State.STOPPED


async def _run_failing(backoff: Backoff, work: Callable[[], Awaitable[None]], failures: int) -> list[str]:
    """Messages of the supervisor's log lines until `work` has failed `failures` times."""
    health, stop, seen = Health(), asyncio.Event(), 0

    async def factory() -> None:
        nonlocal seen
        seen += 1
        if seen > failures:
            stop.set()
            return
        await work()

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("hotline.supervise").addHandler(handler)
    try:
        await asyncio.wait_for(Supervisor(health, stop, backoff).spawn("chores", factory), 10)
    finally:
        logging.getLogger("hotline.supervise").removeHandler(handler)
    return [r.getMessage() for r in records]


async def test_the_backoff_doubles_to_its_ceiling_and_resets_after_a_healthy_run() -> None:
    async def fail_at_once() -> None:
        raise ValueError("bad row")

    quick = await _run_failing(Backoff(first_s=0.01, ceiling_s=0.04, healthy_after_s=60), fail_at_once, 4)
    assert [m.rsplit(" ", 2)[-2] for m in quick] == ["0.01", "0.02", "0.04", "0.04"]

    async def fail_after_a_while() -> None:
        await asyncio.sleep(0.06)
        raise ValueError("bad row")

    healthy = await _run_failing(Backoff(first_s=0.01, ceiling_s=0.04, healthy_after_s=0.05), fail_after_a_while, 3)
    assert [m.rsplit(" ", 2)[-2] for m in healthy] == ["0.01", "0.01", "0.01"]


async def test_cancellation_is_not_a_crash() -> None:
    health, stop = Health(), asyncio.Event()

    async def forever() -> None:
        await asyncio.Event().wait()

    task = Supervisor(health, stop).spawn("report-sums", forever)
    await _until(lambda: _state(health, "report-sums") is State.UP)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    part = health.components()[0]
    assert task.cancelled() and part.state is State.STOPPED and part.restarts == 0 and part.last_error is None
