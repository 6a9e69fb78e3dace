"""Voice messages over FastAGI against a scripted AGI peer that records as Asterisk does:
RECORD FILE writes a WAV where the command says (recordings.dir and asterisk_dir name one
directory here), then answers as res_agi does, hang-ups included."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import Store
from core.models import AuditEntry, Call, CallStep, VoiceMessage, utcnow
from core.sample import SampleResident
from core.settings import QueueSettings, Settings
from hotline.serve import ivr_route, message_runner
from hotline.wiring import ivr_services
from ivr.fastagi import FastAgiServer
from ivr.queue_entry import queue_entry_route
from ivr.session import IvrServices
from ivr.trail import find_call_id, show_call
from tests.conftest import load_sample, make_settings
from tests.protocol.agi_peer import HANGUP_511, Caller, environment, run_peer
from tests.protocol.test_fastagi import recorded_end

RECORD = re.compile(r'^RECORD FILE "(?P<path>[^"]+)" wav # (?P<ms>\d+) BEEP s=(?P<silence>\d+)$')
DTMF_HASH = b"200 result=35 (dtmf) endpos=16000\n"


def write_wav(path: Path, seconds: float) -> None:
    """What format_wav leaves: 8 kHz mono 16-bit."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x00" * int(8000 * seconds))


@dataclass
class Recorder(Caller):
    """A caller whose RECORD FILE writes `seconds` of audio (None: no file) and answers `answer`."""

    seconds: float | None = 2.0
    answer: bytes = DTMF_HASH
    takes: list[Path] | None = None

    def reply(self, command: str) -> bytes:
        m = RECORD.match(command)
        if m is None or self.hung_up:
            return super().reply(command)
        self.commands.append(command)
        take = Path(m["path"] + ".wav")
        if self.seconds is not None:
            write_wav(take, self.seconds)
        self.takes = [*(self.takes or []), take]
        if b"hangup" in self.answer or self.answer.startswith(b"HANGUP"):
            self.hung_up = True
        return self.answer


@pytest.fixture
def rec_settings(tmp_path: Path, db_url: str) -> Settings:
    rec = tmp_path / "rec"
    rec.mkdir()
    return make_settings(tmp_path, db_url, HOTLINE_RECORDINGS_DIR=str(rec), HOTLINE_RECORDINGS_ASTERISK_DIR=str(rec))


@pytest.fixture
def msg_services(rec_settings: Settings, store: Store) -> IvrServices:
    load_sample(store)
    return ivr_services(rec_settings, store)


@pytest.fixture
async def server(msg_services: IvrServices) -> AsyncIterator[int]:
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("ivr", ivr_route(msg_services))
    srv = await app.serve("127.0.0.1", 0)
    yield srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()


def messages(store: Store) -> list[VoiceMessage]:
    with store.session() as s:
        rows = list(s.scalars(select(VoiceMessage).order_by(VoiceMessage.id)))
        s.expunge_all()
    return rows


async def _ended_call(store: Store) -> dict:  # type: ignore[type-arg]
    return await recorded_end(store, 0)


async def test_a_message_with_an_id_number_is_listened_to_and_sent(
    server: int, store: Store, rec_settings: Settings, sample_data: tuple[list[object], list[SampleResident]]
) -> None:
    r = sample_data[1][2]
    caller = Recorder(["1", "6", r.id_number.replace("X", "*"), "1", "3"])
    commands = await run_peer(server, caller)
    record = next(RECORD.match(c) for c in commands if c.startswith("RECORD FILE"))
    assert record is not None and (record["ms"], record["silence"]) == ("60000", "5")
    # Where Asterisk writes: asterisk_dir/messages/<local date>/<random id>; nothing of the caller's.
    day = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    assert re.fullmatch(rf"{re.escape(str(rec_settings.recordings.dir))}/messages/{day}/[0-9a-f]{{32}}", record["path"])
    # Listening plays the take itself, by the name Asterisk knows.
    assert f'STREAM FILE "{record["path"]}" ""' in commands
    assert commands[-1] == 'SET VARIABLE HOTLINE_ACTION "hangup"'
    [row] = messages(store)
    assert row.recording == f"messages/{day}/{Path(record['path']).name}.wav"
    assert (rec_settings.recordings.dir / row.recording).exists()
    assert (row.duration_s, row.ended, row.reason) == (2, "complete", "menu")
    assert row.resident_id == r.id and row.id_number_masked == r.id_number[:6] + "********" + r.id_number[-4:]
    assert row.caller_number == "13812345678"
    call = await _ended_call(store)
    assert row.call_id == call["id"] and call["outcome"] == "completed"
    assert r.id_number not in json.dumps(call, ensure_ascii=False)
    saved = [s for s in call["trail"] if s["kind"] == "result" and s["query"] == "save_message"]
    assert saved and saved[0]["message_id"] == row.id and saved[0]["duration_s"] == 2
    assert any(s["kind"] == "playback" for s in call["trail"])
    with store.session() as s:
        audited = s.scalars(select(AuditEntry.resident_id).where(AuditEntry.action == "write:voice_message")).all()
    assert audited == [r.id]


async def test_recording_again_removes_the_first_take(server: int, store: Store) -> None:
    caller = Recorder(["1", "6", "", "2", "3"])
    await run_peer(server, caller)
    assert caller.takes is not None and len(caller.takes) == 2
    first, second = caller.takes
    assert not first.exists() and second.exists()
    [row] = messages(store)
    assert row.recording.endswith(second.name) and row.id_number_masked is None and row.resident_id is None


@pytest.mark.parametrize(
    "answer",
    [
        # Asterisk announces the hang-up inline before the command's reply (panoramisk would
        # take the HANGUP line as the result and leave the reply unread), or after it.
        b"HANGUP\n200 result=-1 (hangup) endpos=12000\n",
        b"200 result=-1 (hangup) endpos=12000\nHANGUP\n",
    ],
)
async def test_a_hang_up_mid_recording_keeps_the_partial_message(server: int, store: Store, answer: bytes) -> None:
    caller = Recorder(["1", "6", ""], seconds=1.5, answer=answer)
    await run_peer(server, caller)
    call = await _ended_call(store)
    assert (call["outcome"], call["ended_by"]) == ("caller_hangup", "caller")
    [row] = messages(store)
    assert (row.ended, row.duration_s, row.reason) == ("hangup", 2, "menu")
    assert caller.takes is not None and row.recording.endswith(caller.takes[0].name)


async def test_a_hang_up_at_the_review_keeps_the_message(server: int, store: Store) -> None:
    def hang_up_at_review(_i: int, command: str) -> bytes | None:
        return HANGUP_511 if command.startswith("GET DATA hotline/zh/msg.review") else None

    await run_peer(server, Recorder(["1", "6", ""], fault=hang_up_at_review))
    [row] = messages(store)
    assert (row.ended, row.duration_s) == ("hangup", 2)


async def test_a_hang_up_at_the_beep_leaves_no_message(server: int, store: Store, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    await run_peer(server, Recorder(["1", "6", ""], seconds=None, answer=b"HANGUP\n200 result=-1 (randomerror)\n"))
    call = await _ended_call(store)
    assert call["outcome"] == "caller_hangup" and messages(store) == []
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


async def test_a_silent_line_that_hangs_up_leaves_no_message_and_no_empty_file(server: int, store: Store) -> None:
    # A line that sends no audio (a Local channel keying digits only) gives RECORD FILE no
    # frames: Asterisk leaves a header-only WAV and answers the hang-up when it comes.
    silent = Recorder(["1", "6", ""], seconds=0, answer=b"HANGUP\n200 result=-1 (hangup) endpos=0\n")
    await run_peer(server, silent)
    call = await _ended_call(store)
    assert call["outcome"] == "caller_hangup" and messages(store) == []
    saved = [st for st in call["trail"] if st.get("query") == "save_message" and st["kind"] == "result"]
    assert saved and saved[0]["message_id"] is None
    assert silent.takes and not silent.takes[0].exists()


async def test_takes_with_no_sound_are_asked_again_and_leave_nothing(server: int, store: Store) -> None:
    # A caller who presses # at the beep twice: no message, no file, told twice.
    quiet = Recorder(["1", "6", ""], seconds=0)
    await run_peer(server, quiet)
    call = await _ended_call(store)
    assert messages(store) == []
    assert [st.get("ended") for st in call["trail"] if st["kind"] == "recorded"] == ["empty", "empty"]
    told = [st["prompts"] for st in call["trail"] if st["kind"] == "prompt" and "msg.empty" in st["prompts"]]
    assert len(told) == 2
    assert quiet.takes and len(quiet.takes) == 2 and not any(t.exists() for t in quiet.takes)


async def test_asterisk_unable_to_record_is_told_and_logged(server: int, store: Store, caplog) -> None:  # type: ignore[no-untyped-def]
    commands = await run_peer(server, Recorder(["1", "6", ""], seconds=None, answer=b"200 result=-1 (writefile)\n"))
    assert "GET DATA hotline/zh/agent.offer" in " ".join(commands)
    assert any(c.startswith("STREAM FILE hotline/zh/msg.failed") for c in commands)
    assert messages(store) == []
    assert any("RECORD FILE failed (writefile)" in rec.getMessage() for rec in caplog.records)


async def test_a_recordings_dir_the_platform_cannot_write_is_told_and_logged(
    server: int, store: Store, rec_settings: Settings, caplog
) -> None:  # type: ignore[no-untyped-def]
    rec_settings.recordings.dir.rmdir()  # as if the disk were gone: no take can be prepared
    commands = await run_peer(server, Recorder(["1", "6", ""]))
    assert not any(c.startswith("RECORD FILE") for c in commands)
    assert any(c.startswith("STREAM FILE hotline/zh/msg.failed") for c in commands)
    assert any("cannot prepare a voice message" in rec.getMessage() for rec in caplog.records)


ALWAYS = QueueSettings(open_time=dt.time(0), close_time=dt.time(0), open_weekdays=(1, 2, 3, 4, 5, 6, 7))
NEVER = QueueSettings(open_weekdays=())


def _queue_peer(entries: list[str | None]) -> Recorder:
    def answer(_i: int, command: str) -> bytes | None:
        if command.startswith("GET VARIABLE HOTLINE_CALL_ID"):
            return b"200 result=1 (call-q)\n"
        if command.startswith("GET FULL VARIABLE"):
            return b"200 result=1 (0)\n"  # nobody waiting, nobody staffed: the wait is unknown
        return None

    return Recorder(entries, fault=answer)


@pytest.mark.parametrize(("hours", "reason"), [(ALWAYS, "long_wait"), (NEVER, "after_hours")])
async def test_the_queue_offers_a_message_on_3_and_it_continues_the_calls_trail(
    msg_services: IvrServices, store: Store, hours: QueueSettings, reason: str
) -> None:
    with store.session() as s:
        s.add(Call(id="call-q", started_at=utcnow(), caller_number="13912345678", outcome="transferred"))
        s.flush()
        s.add_all(CallStep(call_id="call-q", seq=n, kind="node", node="main", detail={}) for n in range(3))
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("queue-entry", queue_entry_route(store, hours, message_runner(msg_services, store, "message")))
    srv = await app.serve("127.0.0.1", 0)
    env = environment(script="queue-entry", callerid="13912345678")[:-1] + b"agi_arg_1: hotline-12333\n\n"
    try:
        commands = await run_peer(srv.sockets[0].getsockname()[1], _queue_peer(["3", "", "3"]), env=env)
    finally:
        srv.close()
    offer = next(c for c in commands if c.startswith("GET DATA"))
    assert offer.startswith("GET DATA hotline/zh/queue.message_offer")
    assert commands[-1] == 'SET VARIABLE HOTLINE_ACTION "hangup"'
    [row] = messages(store)
    assert (row.call_id, row.reason, row.ended) == ("call-q", reason, "complete")
    call = show_call(store, "call-q", actor="test")
    assert [s["seq"] for s in call["trail"]] == list(range(len(call["trail"])))
    assert call["trail"][3]["node"] == "message" and call["outcome"] == "completed"
    assert find_call_id(store) == "call-q"  # no second call record


async def test_a_number_that_left_three_messages_today_hears_so_and_is_offered_an_agent(
    server: int, store: Store
) -> None:
    for _ in range(3):  # recordings.messages_per_number_day's default
        await run_peer(server, Recorder(["1", "6", "", "3"]))
    assert len(messages(store)) == 3
    fourth = Recorder(["1", "6", "1"])  # 1 at the agent offer
    commands = await run_peer(server, fourth)
    # Told before keying or saying anything: no ID number asked, nothing recorded.
    assert not any(c.startswith("RECORD FILE") or "msg.id.ask" in c or "msg.intro" in c for c in commands)
    assert any(c.startswith("STREAM FILE hotline/zh/msg.limit") for c in commands)
    assert "GET DATA hotline/zh/agent.offer" in " ".join(commands)
    assert len(messages(store)) == 3
    call = await recorded_end(store, 3)
    assert call["outcome"] == "transferred"
    refused = [st for st in call["trail"] if st["kind"] == "message_refused"]
    assert [(st["node"], st["reason"]) for st in refused] == [("message", "limit")]
    assert [st["status"] for st in call["trail"] if st["kind"] == "message_budget"] == ["refused"]
    # Not among the caller's queries (the screen pop's list, the report's menu usage).
    assert not [st for st in call["trail"] if st["kind"] in ("query", "result")]
    # Another number still may leave one.
    other = environment(callerid="13987654321")
    await run_peer(server, Recorder(["1", "6", "", "3"]), env=other)
    assert [row.caller_number for row in messages(store)][-1] == "13987654321"


async def test_from_the_queue_offer_a_number_past_its_messages_is_told_and_may_still_wait(
    msg_services: IvrServices, store: Store
) -> None:
    with store.session() as s:
        s.add(Call(id="call-q", started_at=utcnow(), caller_number="13912345678", outcome="transferred"))
        s.add_all(
            VoiceMessage(call_id=f"vm-{i}", caller_number="13912345678", recording=f"messages/x/{i}.wav")
            for i in range(3)
        )
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("queue-entry", queue_entry_route(store, ALWAYS, message_runner(msg_services, store, "message")))
    srv = await app.serve("127.0.0.1", 0)
    env = environment(script="queue-entry", callerid="+8613912345678")[:-1] + b"agi_arg_1: hotline-12333\n\n"
    try:
        # 3 at the offer: a message; 1 at the agent offer that follows the refusal.
        commands = await run_peer(srv.sockets[0].getsockname()[1], _queue_peer(["3", "1"]), env=env)
    finally:
        srv.close()
    assert not any(c.startswith("RECORD FILE") for c in commands)
    assert any(c.startswith("STREAM FILE hotline/zh/msg.limit") for c in commands)
    assert commands[-1] == 'SET VARIABLE HOTLINE_ACTION "queue"'  # back on the way to the queue
    assert len(messages(store)) == 3
    call = show_call(store, "call-q", actor="test")
    assert [st["reason"] for st in call["trail"] if st["kind"] == "message_refused"] == ["limit"]
