"""`hotline serve` for the real-system tests: FastAGI, the AMI monitor and the web console
in their own process, on their own SQLite file with the sample loaded."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.procs import free_port
from core import sample
from core.db import Store
from core.sample import SampleResident
from core.settings import Settings
from ivr.caller import place_call, wait_hung_up
from ivr.trail import find_call_id, show_call
from tests.conftest import PEPPER, SAMPLE_RESIDENTS
from tests.real.sip_setup import sip_toml

# The queue is open around the clock in tests (business hours have their own unit tests).
ALWAYS_OPEN = {
    "HOTLINE_QUEUE_OPEN_TIME": "00:00",
    "HOTLINE_QUEUE_CLOSE_TIME": "00:00",
    "HOTLINE_QUEUE_OPEN_WEEKDAYS": "1,2,3,4,5,6,7",
}

# Notice calls around the clock, quick to ring out and to try again (their rules have store tests).
NOTICE_CALLS = {
    "HOTLINE_NOTICES_CALLING_HOURS": "00:00,00:00",
    "HOTLINE_NOTICES_RING_S": "6",
    "HOTLINE_NOTICES_RETRY_AFTER_S": "4",
    "HOTLINE_NOTICES_TRUNK_RETRY_S": "2",
    "HOTLINE_NOTICES_MAX_ATTEMPTS": "2",
    "HOTLINE_NOTICES_POLL_S": "0.3",
}


# The longest a caller waits in the queue: Queue(...,60) in dialplans/extensions.conf.
QUEUE_GIVES_UP_S = 60


class Ivr:
    """`hotline serve` on its own SQLite file, with the sample loaded; the console at `web`."""

    def __init__(
        self, settings: Settings, store: Store, people: list[SampleResident], pid: int, log: Path, web: str
    ) -> None:
        self.web = web
        self.settings = settings
        self.store = store
        self.people = people
        self.pid = pid  # the `hotline serve` process
        self.log = log

    def resident(self, index: int) -> SampleResident:
        return self.people[index]

    def call(
        self, dtmf: str, *, tail_s: float = 4.0, lead_s: float = 1.0, caller_id: str | None = None
    ) -> dict[str, Any]:
        """Place a call, wait for it to end, and return its recorded trail."""

        async def run() -> str:
            more = {"caller_id": caller_id} if caller_id else {}
            uid = await place_call(self.settings, dtmf, lead_s=lead_s, tail_s=tail_s, **more)
            await wait_hung_up(self.settings, uid, timeout_s=120)
            return uid

        return self.trail(asyncio.run(run()))

    def trail(self, uid: str) -> dict[str, Any]:
        """The recorded trail of the call with Asterisk uniqueid `uid`, once it has ended."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            call_id = find_call_id(self.store, uniqueid=uid)
            if call_id is not None:
                shown = show_call(self.store, call_id, actor="test")
                if shown["ended_at"]:
                    return shown
            time.sleep(0.1)
        raise AssertionError(f"no finished call recorded for {uid}")


@contextmanager
def serving(asterisk_settings: Settings, tmp: Path, extra_env: dict[str, str] | None = None) -> Iterator[Ivr]:
    url = f"sqlite:///{tmp}/calls.db"
    store = Store(url)
    store.migrate()
    web_port = free_port()
    sample.load(store, PEPPER, residents=SAMPLE_RESIDENTS)
    env = {
        **os.environ,
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_SECURITY_PIN_PEPPER": PEPPER,
        "HOTLINE_AGI_HOST": asterisk_settings.agi.host,
        "HOTLINE_AGI_PORT": str(asterisk_settings.agi.port),
        "HOTLINE_AMI_SECRET": asterisk_settings.ami.secret,
        # The session's Asterisk records: their log directory, and the calls marked as the tests'.
        "HOTLINE_ASTERISK_INSTANCE": asterisk_settings.asterisk.instance,
        "HOTLINE_WEB_PORT": str(web_port),
        "HOTLINE_SKILLS_NAMES": ",".join(asterisk_settings.skills.names),
        "HOTLINE_SKILLS_OVERFLOW_S": str(asterisk_settings.skills.overflow_s),
        # Where the session's Asterisk root has recordings.dir bound (`hotline asterisk up`).
        "HOTLINE_RECORDINGS_DIR": str(asterisk_settings.recordings.dir.resolve()),
        # Where the session's Asterisk root has notices.speech_dir bound.
        "HOTLINE_NOTICES_SPEECH_DIR": str(asterisk_settings.notices.speech_dir.resolve()),
        # The SIP settings the session's Asterisk was rendered with (the test carrier).
        "HOTLINE_CONFIG": str(tmp / "hotline.toml"),
        # The tests dial the test carrier's few numbers many times a day; the caps on calls
        # out have tests of their own (tests/store/test_destinations.py).
        "HOTLINE_DESTINATIONS_CALLS_PER_NUMBER_DAY": "1000",
        **ALWAYS_OPEN,
        **NOTICE_CALLS,
        **(extra_env or {}),
    }
    (tmp / "hotline.toml").write_text(sip_toml(asterisk_settings.sip), encoding="utf-8")
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hotline", "serve", "--only", "agi,ami,web"],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    ready = proc.stdout.readline()
    assert "ready" in ready, (tmp / "serve.log").read_text()
    # The monitor logs in and catches up from queue_log (other modules' calls) before tests count.
    deadline = time.monotonic() + 30
    while "AMI monitor: caught up" not in (tmp / "serve.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    settings = asterisk_settings.model_copy(
        update={
            "database": asterisk_settings.database.model_copy(update={"url": url}),
            "recordings": asterisk_settings.recordings.model_copy(
                update={"dir": asterisk_settings.recordings.dir.resolve()}
            ),
            "notices": asterisk_settings.notices.model_copy(
                update={"speech_dir": asterisk_settings.notices.speech_dir.resolve()}
            ),
        }
    )
    people = sample.generate(residents=SAMPLE_RESIDENTS)[1]
    try:
        yield Ivr(settings, store, people, proc.pid, tmp / "serve.log", f"http://127.0.0.1:{web_port}")
    except BaseException:
        proc.kill()  # a failed test's serve must not outlive it holding the FastAGI port
        proc.wait(15)
        raise
    proc.terminate()
    code = proc.wait(15)
    proc.stdout.close()
    log.close()
    assert code == 0
    serve_log = (tmp / "serve.log").read_text()
    assert "Traceback" not in serve_log, serve_log
    store.dispose()


def keypad(id_number: str) -> str:
    return id_number.replace("X", "*")


def kinds(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in call["trail"] if s["kind"] == kind]
