"""The FastAGI server against a scripted AGI peer over localhost TCP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import Store
from core.masking import mask_phone
from core.models import AuditEntry, Call
from core.sample import SampleResident
from hotline.serve import ivr_route
from hotline.wiring import ivr_services
from ivr.fastagi import FastAgiServer
from ivr.session import IvrServices, IvrSession
from ivr.trail import find_call_id, import_spool, show_call
from tests.conftest import load_sample, make_settings
from tests.protocol.agi_peer import HANGUP_511, Caller, environment, run_peer


def pension_entries(r: SampleResident) -> list[str | None]:
    return ["1", "1", "1", r.id_number.replace("X", "*"), r.pin, "2"]


def last_call(store: Store) -> dict:  # type: ignore[type-arg]
    call_id = find_call_id(store)
    assert call_id is not None
    return show_call(store, call_id, actor="test")


def _calls(store: Store) -> int:
    with store.transaction() as c:
        return int(c.scalar(select(func.count()).select_from(Call)) or 0)


async def recorded_end(store: Store, calls_before: int) -> dict:  # type: ignore[type-arg]
    """The newest call once it is recorded as ended: the server writes the end after the
    peer has hung up, so waiting a fixed 10 ms lost that race on a busy machine. Waits up
    to 5 s, then returns what is recorded (and the assertions say what is missing)."""
    for _ in range(500):
        if _calls(store) > calls_before and last_call(store)["ended_at"] is not None:
            break
        await asyncio.sleep(0.01)
    return last_call(store)


async def test_pension_balance_query(server: int, store: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    await _pension_call(server, store, sample_data[1][3])


async def test_pension_balance_query_awaited_once_every_query_thread_is_taken(  # type: ignore[no-untyped-def]
    settings, store: Store, sample_data, monkeypatch
) -> None:
    """With no query thread free (as in a burst) identification and the read are awaited on
    the event loop (`verify_async`, `read_async`): the same answers, trail and audit entries."""

    def in_a_thread(*_: object) -> None:
        raise AssertionError("a query ran in a thread although none was free")

    monkeypatch.setattr(IvrSession, "_query_then_prefetch", in_a_thread)
    load_sample(store)
    services = dataclasses.replace(ivr_services(settings, store), threads=0)
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("ivr", ivr_route(services))
    srv = await app.serve("127.0.0.1", 0)
    try:
        await _pension_call(srv.sockets[0].getsockname()[1], store, sample_data[1][3])
    finally:
        srv.close()
        await srv.wait_closed()


async def _pension_call(port: int, store: Store, resident: SampleResident) -> None:
    assert resident.id_number.endswith("X")  # the sample's fourth resident has an ID ending in X
    commands = await run_peer(port, Caller(pension_entries(resident)))
    assert commands[-1] == 'SET VARIABLE HOTLINE_ACTION "hangup"'
    call = last_call(store)
    assert call["outcome"] == "completed" and call["ended_by"] == "system"
    assert call["disposition"] == "automated"  # served by the IVR alone
    assert call["caller"] == "138****5678"
    result = next(s for s in call["trail"] if s["kind"] == "result" and s["query"] == "pension")
    assert result["data"] == {"balance_fen": resident.pension_balance_fen, "months": resident.pension_months}
    spoken = [s["text"] for s in call["trail"] if s["kind"] == "prompt"]
    assert any(t.startswith("身份验证成功。您的养老保险个人账户余额为") for t in spoken)
    assert resident.pin not in json.dumps(call, ensure_ascii=False)
    assert resident.id_number not in json.dumps(call, ensure_ascii=False)
    with store.session() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.call_id == call["id"])).all()
    assert sorted(actions) == ["identify", "read:pension", "view:call_trail"]


async def test_every_hangup_ends_cleanly(server: int, store: Store, sample_data, caplog) -> None:  # type: ignore[no-untyped-def]
    resident = sample_data[1][0]
    full = await run_peer(server, Caller(pension_entries(resident)))
    variants = {
        "inline HANGUP then 511": lambda k: lambda i, c: HANGUP_511 if i == k else None,
        "result=-1 then HANGUP": lambda k: lambda i, c: b"200 result=-1\n" if i == k else None,
    }
    caplog.set_level(logging.INFO)
    for name, make in variants.items():
        for k in range(len(full) - 1):
            before = _calls(store)
            await run_peer(server, Caller(pension_entries(resident), fault=make(k)))
            call = await recorded_end(store, before)
            assert (call["outcome"], call["ended_by"]) == ("caller_hangup", "caller"), (name, k, full[k])
            assert call["trail"][-1]["kind"] == "outcome"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_asterisk_gone_mid_command_is_recorded_as_such(server: int, store: Store, sample_data, caplog) -> None:  # type: ignore[no-untyped-def]
    """Asterisk answers every command, a hang-up too, before it closes the connection; a
    connection closed with a command unanswered and no HANGUP is Asterisk gone (a cluster
    node killed): the call is lost, not hung up by the caller, and the record says so."""
    resident = sample_data[1][0]
    full = await run_peer(server, Caller(pension_entries(resident)))
    caplog.set_level(logging.INFO)
    for k in range(len(full) - 1):
        before = _calls(store)
        await run_peer(server, Caller(pension_entries(resident), fault=lambda i, c, k=k: b"" if i == k else None))
        call = await recorded_end(store, before)
        assert (call["outcome"], call["ended_by"]) == ("failed", "asterisk"), (k, full[k])
        assert "Asterisk went away" in call["trail"][-1]["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"510 Invalid or unknown command\n", "510"),
        (
            b"520-Invalid command syntax.  Proper usage follows:\nUsage: GET DATA <file>\n520 End of proper usage.\n",
            "520",
        ),
        (b"hello there\n", "malformed"),
    ],
)
async def test_error_replies_end_the_call_as_failed(server, store, sample_data, caplog, reply, expected) -> None:  # type: ignore[no-untyped-def]
    caller = Caller(pension_entries(sample_data[1][0]), fault=lambda i, c: reply if i == 2 else None)
    await run_peer(server, caller)
    call = last_call(store)
    assert (call["outcome"], call["ended_by"]) == ("failed", "system")
    assert expected in call["trail"][-1]["error"]
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize(
    "env",
    [
        b"agi_network_script: ivr\n\n",
        b"garbage without end",
        b"agi_network_script: nosuch\nagi_uniqueid: 1\nagi_channel: x\n\n",
        b"x" * 20000,
    ],
)
async def test_malformed_environment_is_refused(server, store, env, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING)
    commands = await run_peer(server, Caller([]), env=env, limit_s=5)
    assert commands == []
    with store.session() as s:
        assert s.scalar(select(Call.id)) is None
    assert any("FastAGI" in r.getMessage() for r in caplog.records)


async def test_peer_not_in_allowed_list_is_refused(services: IvrServices, store: Store, caplog) -> None:  # type: ignore[no-untyped-def]
    app = FastAgiServer(["10.0.0.0/8"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("ivr", ivr_route(services))
    srv = await app.serve("127.0.0.1", 0)
    try:
        commands = await run_peer(srv.sockets[0].getsockname()[1], Caller(["1"]))
    finally:
        srv.close()
    assert commands == []
    assert any("refused connection from 127.0.0.1" in r.getMessage() for r in caplog.records)


async def test_silent_asterisk_times_out(services: IvrServices, store: Store, caplog) -> None:  # type: ignore[no-untyped-def]
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=0.3)
    app.add_route("ivr", ivr_route(services))
    srv = await app.serve("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.sockets[0].getsockname()[1])
    writer.write(environment())
    await writer.drain()
    first = await reader.readline()
    assert first.startswith(b"GET DATA")
    assert await asyncio.wait_for(reader.read(), 3) == b""  # the server gave up and closed
    writer.close()
    srv.close()
    call = last_call(store)
    assert call["outcome"] == "failed" and "no reply" in call["trail"][-1]["error"]


async def test_database_down_gives_apology_and_agent(tmp_path: Path, monkeypatch, sample_data, caplog) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    settings = make_settings(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1")
    services = ivr_services(settings, Store(settings.database.url))
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("ivr", ivr_route(services))
    srv = await app.serve("127.0.0.1", 0)
    caller = Caller(pension_entries(sample_data[1][0]))
    commands = await run_peer(srv.sockets[0].getsockname()[1], caller, limit_s=30)
    srv.close()
    assert "STREAM FILE hotline/zh/sys.unavailable" in " ".join(commands)
    assert commands[-1] == 'SET VARIABLE HOTLINE_ACTION "queue"'
    spooled = list((tmp_path / "var/spool/calls").glob("*.json"))
    assert len(spooled) == 1
    record = json.loads(spooled[0].read_text(encoding="utf-8"))
    assert record["outcome"] == "transferred" and record["trail"][0]["kind"] == "node"
    # Once the database is back, the spooled call is imported whole, once.
    good = Store(f"sqlite:///{tmp_path}/back.db")
    good.migrate()
    assert import_spool(good, tmp_path / "var/spool/calls") == 1
    assert import_spool(good, tmp_path / "var/spool/calls") == 0
    call = last_call(good)
    assert (call["outcome"], call["queue"]) == ("transferred", "hotline-12333")
    assert call["disposition"] is None  # settled later by the queue's records
    assert [st["seq"] for st in call["trail"]] == list(range(len(record["trail"])))


async def test_a_key_during_an_error_prompt_starts_the_next_entry(server: int, store: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    """After a wrong ID the caller starts typing during "check digit wrong": that first key
    must not be lost; the rest of the entry is read after it."""
    r = sample_data[1][0]
    bad = r.id_number[:17] + ("1" if r.id_number[17] != "1" else "2")
    first = r.id_number[0]

    def interrupt(i: int, command: str) -> bytes | None:
        if command.startswith("STREAM FILE hotline/zh/id.bad_check"):
            return f"200 result={ord(first)} endpos=1200\n".encode()
        return None

    entries: list[str | None] = ["1", "1", "1", bad, r.id_number[1:], r.pin, "2"]
    commands = await run_peer(server, Caller(entries, fault=interrupt))
    assert "GET DATA hotline/zh/sys.silence 8000 17" in commands
    call = last_call(store)
    assert call["resident_id"] == r.id


async def test_the_hash_after_a_full_id_number_is_not_an_empty_pin(server: int, store: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    """GET DATA returns at the 18th key, before the `#` the prompt asks for: that `#` is
    waited for and taken, so the PIN prompt plays and the PIN is read whole."""
    r = sample_data[1][0]
    commands = await run_peer(server, Caller(["1", "1", "1", r.id_number, r.pin, "2"]))
    after_id = commands.index("GET DATA hotline/zh/id.ask 8000 18") + 1
    assert commands[after_id] == "WAIT FOR DIGIT 1000"
    assert commands[after_id + 1].startswith("GET DATA hotline/zh/pin.ask ")
    call = last_call(store)
    assert call["resident_id"] == r.id
    assert not [s for s in call["trail"] if s["kind"] in ("invalid", "timeout")]


async def test_a_key_just_after_a_full_entry_starts_the_next_one(server: int, store: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    """No `#`: the caller goes straight on to the PIN; its first key is not lost."""
    r = sample_data[1][0]
    first = f"200 result={ord(r.pin[0])}\n"
    commands = await run_peer(server, Caller(["1", "1", "1", r.id_number, r.pin[1:], "2"], after_full=[first]))
    assert "GET DATA hotline/zh/sys.silence 8000 5" in commands  # the PIN's other five keys
    assert last_call(store)["resident_id"] == r.id


async def test_private_data_never_reaches_the_log(server: int, store: Store, sample_data, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    r = sample_data[1][2]
    wrong = f"{(int(r.pin) + 1) % 10**6:06d}"
    await run_peer(server, Caller(["1", "1", "1", r.id_number, wrong, r.pin, "2"]))
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "138****5678" in text  # the caller is named, masked
    for secret in (r.id_number, r.pin, wrong, "13812345678", str(r.pension_balance_fen)):
        assert secret not in text


def _no_queue_action_and_no_traceback(commands: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """The session ended without telling the dialplan what next: its `unavailable` path
    plays the apology and queues the caller (dialplans/extensions.conf)."""
    assert not [c for c in commands if c.startswith("SET VARIABLE HOTLINE_ACTION")]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_an_over_long_reply_line_ends_the_session_cleanly(server, store, sample_data, caplog) -> None:  # type: ignore[no-untyped-def]
    huge = b"200 result=" + b"1" * 40_000 + b"\n"
    caller = Caller(pension_entries(sample_data[1][0]), fault=lambda i, c: huge if i == 2 else None)
    before = _calls(store)
    commands = await run_peer(server, caller)
    call = await recorded_end(store, before)
    assert (call["outcome"], call["ended_by"]) == ("failed", "system")
    assert "longer than" in call["trail"][-1]["error"]
    assert len(commands) == 3  # nothing more was sent after the bad line
    _no_queue_action_and_no_traceback(commands, caplog)


@pytest.mark.parametrize(
    "reply",
    [
        b"200 result=99999999 endpos=1200\n",  # no such character
        b"200 result=65 endpos=1200\n",  # "A": not one of the keys that may interrupt
        b"200 result=1x endpos=1200\n",
        b"200 result=7 endpos=1200\n",  # a control character
    ],
)
async def test_a_bad_stream_file_result_ends_the_session_cleanly(server, store, sample_data, caplog, reply) -> None:  # type: ignore[no-untyped-def]
    def bad(i: int, command: str) -> bytes | None:
        return reply if command.startswith("STREAM FILE") else None

    before = _calls(store)
    commands = await run_peer(server, Caller(["0"], fault=bad))
    call = await recorded_end(store, before)
    assert (call["outcome"], call["ended_by"]) == ("failed", "system")
    assert "STREAM FILE answered" in call["trail"][-1]["error"]
    _no_queue_action_and_no_traceback(commands, caplog)


async def test_get_data_with_letters_ends_the_session_cleanly(server, store, sample_data, caplog) -> None:  # type: ignore[no-untyped-def]
    before = _calls(store)
    commands = await run_peer(server, Caller(["1x"]))
    call = await recorded_end(store, before)
    assert call["outcome"] == "failed" and "GET DATA answered" in call["trail"][-1]["error"]
    _no_queue_action_and_no_traceback(commands, caplog)


async def _hold_a_session(port: int) -> asyncio.StreamWriter:
    """A call that has started (the first command arrived) and is not answered yet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(environment())
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"GET DATA")
    return writer


async def test_sessions_over_the_cap_are_refused_at_once_and_logged_once(services, store, sample_data, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=30.0, max_sessions=2)
    app.add_route("ivr", ivr_route(services))
    srv = await app.serve("127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    held = [await _hold_a_session(port) for _ in range(2)]
    try:
        for _ in range(5):  # a flood over the cap: each closed before any command
            assert await run_peer(port, Caller(pension_entries(sample_data[1][0])), limit_s=5) == []
        refusals = [r for r in caplog.records if "refusing new calls" in r.getMessage()]
        assert len(refusals) == 1 and "agi.max_sessions" in refusals[0].getMessage()
    finally:
        for writer in held:
            writer.close()
    for _ in range(500):  # the held calls end (hung up) and free their places; bounded wait
        if not app.sessions:
            break
        await asyncio.sleep(0.01)
    commands = await run_peer(port, Caller(pension_entries(sample_data[1][0])), limit_s=10)
    srv.close()
    assert commands[-1] == 'SET VARIABLE HOTLINE_ACTION "hangup"'  # served again
    again = [r.getMessage() for r in caplog.records if "accepting calls again" in r.getMessage()]
    assert again == ["FastAGI: accepting calls again; 5 refused over agi.max_sessions"]


@pytest.mark.parametrize(
    ("callerid", "flag"), [("1" * 200, "too_long"), ("Anonymous <sip:x@example.org>", "not_digits")]
)
async def test_an_odd_caller_id_is_stored_trimmed_and_flagged(server, store, sample_data, callerid, flag) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL a caller id longer than its column broke the call's record (a DataError
    on the first write, so the whole trail was lost)."""
    resident = sample_data[1][0]
    before = _calls(store)
    commands = await run_peer(server, Caller(pension_entries(resident)), env=environment(callerid=callerid))
    assert commands[-1] == 'SET VARIABLE HOTLINE_ACTION "hangup"'
    call = await recorded_end(store, before)
    assert (call["outcome"], call["resident_id"], call["caller_flag"]) == ("completed", resident.id, flag)
    assert any(s["kind"] == "result" and s["query"] == "pension" for s in call["trail"])
    with store.session() as s:
        assert s.get_one(Call, call["id"]).caller_number == callerid[:32]
    assert call["caller"] == mask_phone(callerid[:32])
