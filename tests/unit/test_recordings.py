"""Recordings without I/O beyond a temporary file: the AMI events that make a recording's
row, the paths a row may name, and the WAV header read for the duration."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.recordings import NotAWav, RecordingPathRefused, resolve, wav_info
from ivr.recordings import RecordingAgent, RecordingEnded, RecordingStarted, RecordingTracker, recording_path
from tests.recording_files import write_wav

NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
AGENT_LEG = "1764644400.31"


def _started() -> dict[str, str]:
    return {
        "Event": "UserEvent",
        "UserEvent": "HotlineRecording",
        "Uniqueid": AGENT_LEG,
        "Linkedid": "1764644400.20",
        "CallId": "c-1",
        "Recording": "calls/2026-12-02/x.wav",
    }


def test_the_agent_legs_events_make_one_recording() -> None:
    t = RecordingTracker()
    assert t.feed(_started(), NOW) == RecordingStarted(AGENT_LEG, "c-1", "calls/2026-12-02/x.wav", None, NOW)
    connect = {"Event": "AgentConnect", "DestUniqueid": AGENT_LEG, "Uniqueid": "1764644400.20", "MemberName": "坐席1"}
    assert t.feed(connect, NOW) == RecordingAgent("calls/2026-12-02/x.wav", "坐席1")
    assert t.feed({"Event": "Hangup", "Uniqueid": "1764644400.20"}, NOW) is None  # the caller's leg
    assert t.feed({"Event": "MixMonitorStop", "Uniqueid": AGENT_LEG}, NOW) == RecordingEnded("calls/2026-12-02/x.wav")
    assert t.feed({"Event": "Hangup", "Uniqueid": AGENT_LEG}, NOW) is None  # ended once


def test_an_agent_named_before_the_recording_started_is_kept_for_it() -> None:
    t = RecordingTracker()
    t.feed({"Event": "AgentConnect", "DestUniqueid": AGENT_LEG, "MemberName": "坐席1"}, NOW)
    started = t.feed({**_started(), "CallId": ""}, NOW)
    assert isinstance(started, RecordingStarted) and started.agent == "坐席1"
    assert started.call_id not in ("", "c-1")  # derived from the caller's uniqueid, as the call's record


def test_recording_names_carry_no_caller_data() -> None:
    path = recording_path(dt.date(2026, 12, 2))
    assert path.startswith("calls/2026-12-02/") and path.endswith(".wav") and len(path) == len("calls/2026-12-02/") + 40


@pytest.mark.parametrize(
    "forged",
    ["../etc/passwd.wav", "/etc/x.wav", "calls/../../x.wav", "calls//x.wav", "calls/x.txt", "calls\\..\\x.wav", ""],
)
def test_paths_outside_the_recordings_directory_are_refused(tmp_path: Path, forged: str) -> None:
    with pytest.raises(RecordingPathRefused):
        resolve(tmp_path, forged)


def test_a_symlink_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    base, outside = tmp_path / "rec", tmp_path / "secret"
    (base / "calls").mkdir(parents=True)
    outside.mkdir()
    (base / "calls" / "day").symlink_to(outside)
    with pytest.raises(RecordingPathRefused):
        resolve(base, "calls/day/a.wav")


def test_wav_duration_from_the_header_or_from_the_bytes_of_an_unclosed_file(tmp_path: Path) -> None:
    f = write_wav(tmp_path / "a.wav", 2.5)
    info = wav_info(f)
    assert (info.sample_rate, info.channels, info.bits, info.duration_s) == (8000, 1, 16, 2.5)
    # As MixMonitor leaves it before closing: the data size still 0 in the header.
    raw = bytearray(f.read_bytes())
    raw[40:44] = b"\0\0\0\0"
    f.write_bytes(bytes(raw))
    assert wav_info(f).duration_s == 2.5
    (tmp_path / "b.wav").write_bytes(b"ID3 not a wav")
    with pytest.raises(NotAWav):
        wav_info(tmp_path / "b.wav")
