"""A real `hotline serve` process: a SIGTERM ends it within its deadline even while the
SMSC never answers and messages wait to be sent; `hotline status` asks it over its web
port which components are up, and says clearly when it is not running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bench.procs import free_port
from core.db import Store
from hotline.serve import SHUTDOWN_DEADLINE_S, SHUTDOWN_FORCE_AFTER_S
from tests.store.sms_support import insert_reminders, messages_of
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _env(url: str, **more: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")},
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_SECURITY_PIN_PEPPER": "test-pepper",
        "HOTLINE_SMPP_PASSWORD": "secret",
        "PYTHONPATH": str(ROOT),
        **more,
    }


def _serve(tmp: Path, env: dict[str, str], only: str) -> subprocess.Popen[str]:
    with (tmp / "serve.log").open("a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", "serve", "--only", only],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded by the test's timeout
    assert "ready" in line, (tmp / "serve.log").read_text()
    return proc


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture
def silent_smsc() -> Iterator[int]:
    """An SMSC that takes the TCP connection and never answers a bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@pytest.mark.parametrize("smsc", ["refused", "silent"])
def test_sigterm_ends_serve_within_its_deadline_while_the_smsc_is_unreachable(
    store: Store, tmp_path: Path, silent_smsc: int, smsc: str
) -> None:
    insert_reminders(store, 5)  # claimed and waiting for a bind that never comes
    port = silent_smsc if smsc == "silent" else free_port()
    proc = _serve(tmp_path, _env(store.url, HOTLINE_SMPP_PORT=str(port), HOTLINE_SMS_POLL_S="0.1"), "sms")
    try:
        # The dispatcher claims the reminders and waits on the transport.
        wait_until(
            lambda: [m.status for m in messages_of(store)] == ["sending"] * 5,
            "the five reminders claimed by serve's dispatcher",
            limit_s=60,
        )
        proc.send_signal(signal.SIGTERM)
        # Before: still running minutes later, the SMPP client reconnecting every few seconds.
        code = proc.wait(SHUTDOWN_DEADLINE_S + SHUTDOWN_FORCE_AFTER_S + 5)
    finally:
        _end(proc)
    log = (tmp_path / "serve.log").read_text()
    assert code in (0, 1), log
    assert "shutting down" in log
    # Either everything stopped by itself, or the log names what did not.
    assert "shut down\n" in log or "cancelling what did not stop: " in log, log


def _status(env: dict[str, str], fmt: str = "json") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline", "status", "--format", fmt],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_asks_the_running_serve_and_says_when_it_is_not_running(store: Store, tmp_path: Path) -> None:
    env = _env(store.url, HOTLINE_WEB_PORT=str(free_port()))
    proc = _serve(tmp_path, env, "web")
    try:
        answer = _status(env)
        assert answer.returncode == 0, answer.stderr
        shown = json.loads(answer.stdout)
        assert shown["ok"] is True
        assert shown["components"]["web"]["state"] == "up"
        assert shown["components"]["report-sums"]["state"] == "up"
        assert shown["components"]["casework"]["state"] == "up"
        assert shown["components"]["audit-head"]["state"] == "up"
        text = _status(env, "text")
        assert text.returncode == 0 and "all components up" in text.stdout and "report-sums" in text.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(SHUTDOWN_DEADLINE_S + SHUTDOWN_FORCE_AFTER_S + 5) == 0
    finally:
        _end(proc)
    gone = _status(env)
    assert gone.returncode == 3 and gone.stdout == ""
    assert "`hotline serve` is not running" in gone.stderr and f":{env['HOTLINE_WEB_PORT']}/healthz" in gone.stderr


@pytest.mark.parametrize("component", ["agi", "web"])
def test_a_port_already_taken_is_named_not_a_traceback(store: Store, tmp_path: Path, component: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        env = _env(store.url, HOTLINE_AGI_PORT=port, HOTLINE_WEB_PORT=port)
        if component == "web":
            env["HOTLINE_SECURITY_AUDIT_KEY"] = "test-audit-key-0123456789abcdef-0123"
        done = subprocess.run(
            [sys.executable, "-m", "hotline", "serve", "--only", component],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_fastagi_workers_end_with_a_serve_killed_outright(store: Store, tmp_path: Path) -> None:
    """SIGKILL gives serve no chance to stop its workers: they go by themselves (Linux's
    parent-death signal), not on serving the shared port with the dead serve's settings."""
    env = _env(store.url, HOTLINE_AGI_PORT=str(free_port()), HOTLINE_AGI_WORKERS="2")
    proc = _serve(tmp_path, env, "agi")
    try:
        workers = psutil.Process(proc.pid).children()
        assert len(workers) == 1  # agi.workers = 2: serve itself and one more process
        proc.kill()
        proc.wait()
        _gone, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive, [w.cmdline() for w in alive]
    finally:
        _end(proc)
