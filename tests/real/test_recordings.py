"""Real calls: an agent call is recorded by MixMonitor from the moment the agent answers,
and the AMI monitor leaves a row whose WAV lasts about the talk time."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from core.models import Recording
from core.recordings import resolve, wav_info
from ivr.agents import AgentControl
from tests.real.serving import Ivr

pytestmark = pytest.mark.real
TALK_S = 4


def test_an_answered_call_leaves_a_recording_of_the_talk(ivr: Ivr) -> None:
    control = AgentControl(ivr.settings, ivr.store)
    asyncio.run(control.login("1011", "Agent 1011", f"Local/1011-1-{TALK_S}@hotline-agents/n"))
    try:
        # 0 at the welcome: the transfer prompt, the agent rings 1 s and talks TALK_S s.
        call = ivr.call("0", tail_s=14)
    finally:
        asyncio.run(control.logout("1011"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with ivr.store.session() as s:
            rows = s.scalars(select(Recording).where(Recording.call_id == call["id"])).all()
        if rows and rows[0].duration_s is not None:
            break
        time.sleep(0.2)
    assert len(rows) == 1, ivr.log.read_text()
    row = rows[0]
    assert row.agent == "Agent 1011"
    # calls/<date>/<uuid>.wav: nothing of the caller's in the name.
    parts = row.path.split("/")
    assert parts[0] == "calls" and len(parts[2]) == len("00000000-0000-0000-0000-000000000000.wav")
    file = resolve(ivr.settings.recordings.dir, row.path)
    info = wav_info(file)
    assert (info.sample_rate, info.channels, info.bits) == (8000, 1, 16)
    # The talk was recorded (how long it lasted is the benchmarks' to measure).
    assert info.duration_s > 0
    assert row.duration_s is not None and abs(row.duration_s - info.duration_s) < 0.1
    assert row.size == file.stat().st_size
