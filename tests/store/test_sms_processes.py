"""Real processes on real PostgreSQL: `hotline smsc-sim` and two `hotline serve --only sms`
over 10,000 events send each message exactly once; a dispatcher killed with SIGKILL in
the middle and started again leaves every event delivered, with any duplicate bounded by
the window, flagged in the store and counted by `hotline sms status`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from bench.procs import free_port
from core.db import Store
from core.models import SmsMessage
from tests.conftest import postgres_only
from tests.store.sms_support import insert_reminders

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 20
pytestmark = postgres_only


class Stack:
    def __init__(self, url: str, tmp: Path) -> None:
        self.tmp = tmp
        self.sim_port, self.control = free_port(), free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")},
            "HOTLINE_DATABASE_URL": url,
            "HOTLINE_SECURITY_PIN_PEPPER": "test-pepper",
            "HOTLINE_SMPP_PORT": str(self.sim_port),
            "HOTLINE_SMPP_PASSWORD": "secret",
            "HOTLINE_SMPP_WINDOW": str(WINDOW),
            "HOTLINE_SMPP_TPS": "5000",
            "HOTLINE_SMS_RECLAIM_AFTER_S": "3",
            "HOTLINE_SMS_POLL_S": "0.1",
            "HOTLINE_SMS_RECEIPT_TIMEOUT_S": "15",
        }
        self.procs: list[subprocess.Popen[str]] = []
        self.sim = self._start(["smsc-sim", "--control-port", str(self.control), "--receipt-delay", "0.05"], "sim")

    def _start(self, argv: list[str], name: str) -> subprocess.Popen[str]:
        log = (self.tmp / f"{name}.log").open("a")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", *argv],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        log.close()
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready" in line, (self.tmp / f"{name}.log").read_text()
        self.procs.append(proc)
        return proc

    def dispatcher(self, name: str) -> subprocess.Popen[str]:
        return self._start(["serve", "--only", "sms"], name)

    def stats(self) -> dict[str, int]:
        with socket.create_connection(("127.0.0.1", self.control), timeout=5) as s:
            s.sendall(b"stats\n")
            answer = json.loads(s.makefile().readline())
        return {k: int(v) for k, v in answer["counts"].items()}

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@contextmanager
def stack(store: Store, tmp: Path) -> Iterator[Stack]:
    s = Stack(store.url, tmp)
    try:
        yield s
    finally:
        s.stop()


def _wait_final(store: Store, n: int, limit_s: float) -> dict[str, int]:
    deadline = time.monotonic() + limit_s
    while True:
        with store.transaction() as c:
            states = dict(c.execute(select(SmsMessage.status, func.count()).group_by(SmsMessage.status)).all())
        final = states.get("delivered", 0) + states.get("unknown", 0)
        if final == n or time.monotonic() > deadline:
            return {k: int(v) for k, v in states.items()}
        time.sleep(0.5)


def test_two_dispatchers_send_ten_thousand_events_exactly_once(store: Store, tmp_path: Path) -> None:
    n = 10_000
    insert_reminders(store, n)
    with stack(store, tmp_path) as s:
        s.dispatcher("d1")
        s.dispatcher("d2")
        states = _wait_final(store, n, 240)
        stats = s.stats()
    assert states == {"delivered": n}, states
    assert stats["accepted"] == n  # the SMSC took each message once: no duplicate at all
    with store.transaction() as c:
        by = dict(c.execute(select(SmsMessage.claimed_by, func.count()).group_by(SmsMessage.claimed_by)).all())
    assert by == {None: n}  # every message finished, none left claimed
    logs = "".join((tmp_path / f"{p}.log").read_text() for p in ("d1", "d2"))
    assert "Traceback" not in logs


def test_a_dispatcher_killed_mid_batch_loses_nothing_and_bounds_duplicates(store: Store, tmp_path: Path) -> None:
    n = 3_000
    insert_reminders(store, n)
    with stack(store, tmp_path) as s:
        victim = s.dispatcher("victim")
        deadline = time.monotonic() + 60
        while s.stats().get("accepted", 0) < n // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        s.dispatcher("heir")
        states = _wait_final(store, n, 180)
        stats = s.stats()
        status = subprocess.run(
            [sys.executable, "-m", "hotline", "sms", "status", "--format", "json"],
            cwd=ROOT,
            env=s.env,
            capture_output=True,
            text=True,
            check=True,
        )
    # Every message delivered: receipts are acknowledged only once stored, so those the
    # victim had not stored are delivered again by the SMSC, to the heir.
    assert states == {"delivered": n}, states
    duplicates = stats["accepted"] - n
    with store.transaction() as c:
        flagged = c.scalar(select(func.count()).where(SmsMessage.duplicate_suspect.is_(True)))
    assert 0 <= duplicates <= WINDOW  # at most what was in flight when it died
    assert duplicates <= (flagged or 0) <= WINDOW
    assert json.loads(status.stdout)["messages"]["_all"]["duplicate_suspect"] == flagged
