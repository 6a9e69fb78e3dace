"""The FastAGI script `notice` (an answered notice call) against the scripted AGI peer: what
each key, no key, a hang-up and speech Asterisk cannot play end the call as. The same calls
through real Asterisk and SIPp: tests/real/test_notice_calls.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from core import notices
from core.db import Store
from core.models import AuditEntry, VoiceNotice, VoiceOptOut
from core.settings import NoticeSettings
from ivr.fastagi import FastAgiServer
from ivr.notice_calls import claim
from ivr.notice_flow import notice_route
from tests.protocol.agi_peer import Caller, environment, run_peer
from tests.store.test_notice_calls import DAY, RULES, ZONE, _queue_calls

TEXT_KEYS = '"129"'  # the notice's own STREAM FILE: 1, 2 and 9 may interrupt it
GONE = b"200 result=-1 endpos=0\n"


def _peer(call_id: int, menu: list[str | None], on_text: list[bytes], on_opening: bytes | None = None) -> Caller:
    """Keys `menu` at the menu's GET DATA; the notice's plays answer `on_text` in turn."""
    texts = list(on_text)

    def reply(_i: int, command: str) -> bytes | None:
        if command.startswith("GET VARIABLE HOTLINE_NOTICE_CALL"):
            return f"200 result=1 ({call_id})\n".encode()
        if command.startswith("STREAM FILE") and command.endswith('""') and "hotline-notices" in command:
            return on_opening
        if command.startswith("STREAM FILE") and command.endswith(TEXT_KEYS):
            return texts.pop(0) if texts else None
        return None

    return Caller(list(menu), fault=reply)


def _key(digit: str) -> bytes:
    return f"200 result={ord(digit)} endpos=4000\n".encode()


async def _notice_script(store: Store, caller: Caller) -> list[str]:
    """The commands the notice script sent to `caller`, through a FastAGI server of its own."""
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("notice", notice_route(store, NoticeSettings()))
    srv = await app.serve("127.0.0.1", 0)
    try:
        return await run_peer(srv.sockets[0].getsockname()[1], caller, env=environment(script="notice"))
    finally:
        srv.close()
        await srv.wait_closed()


async def _answered(store: Store, sample_data: Any, peer: Callable[[int], Caller]) -> tuple[VoiceNotice, list[str]]:
    (call_id,) = _queue_calls(store, sample_data[1][:1])
    claim(store, RULES, "d1", DAY, zone=ZONE)
    commands = await _notice_script(store, peer(call_id))
    with store.session() as s:
        call = s.get(VoiceNotice, call_id)
        assert call is not None
    return call, commands


def _last_step(store: Store, notice_id: int) -> tuple[str, str]:
    with store.transaction() as c:
        line = notices.history(c, notice_id)[-1]
    return line.outcome, line.detail


@pytest.mark.parametrize(
    ("menu", "on_text", "state", "detail", "last_prompt"),
    [
        ([], [_key("2")], "confirmed", "pressed 2, heard 1 time", "notice.thanks"),  # while it plays
        (["1", "2"], [], "confirmed", "pressed 2, heard 2 times", "notice.thanks"),  # again, then 2
        ([None], [], "heard", "no key, heard 1 time", "notice.goodbye"),  # an answering machine
        (["5", None], [], "heard", "no key, heard 1 time", "notice.goodbye"),  # a key that is no choice
        (["1", "1", "1"], [], "heard", "heard 3 times, not confirmed", "notice.goodbye"),
    ],
)
async def test_what_the_resident_does_ends_the_call(
    store: Store,
    sample_data: Any,
    menu: list[str | None],
    on_text: list[bytes],
    state: str,
    detail: str,
    last_prompt: str,
) -> None:
    call, commands = await _answered(store, sample_data, lambda i: _peer(i, menu, on_text))
    assert (call.status, call.attempts) == (state, 0)
    assert _last_step(store, call.notice_id) == (state, detail)
    played = [c for c in commands if c.startswith("STREAM FILE hotline/")]
    assert played[-1].startswith(f"STREAM FILE hotline/zh/{last_prompt} ")
    assert commands[1].startswith('STREAM FILE "/var/spool/asterisk/hotline-notices/zh-')  # who calls, first


async def test_9_stops_notice_calls_to_the_number_and_moves_the_notice_on(store: Store, sample_data: Any) -> None:
    call, commands = await _answered(store, sample_data, lambda i: _peer(i, ["9"], []))
    assert call.status == "opted_out"
    assert any(c.startswith("STREAM FILE hotline/zh/notice.optout ") for c in commands)
    with store.session() as s:
        assert s.get(VoiceOptOut, call.number) is not None
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.actor == "ivr")).all() == ["change:voice_optout"]


async def test_hung_up_during_the_opening_is_an_attempt_to_try_again(store: Store, sample_data: Any) -> None:
    call, _ = await _answered(store, sample_data, lambda i: _peer(i, [], [], on_opening=GONE))
    assert (call.status, call.attempts, call.last_result) == ("queued", 1, "hung_up")
    assert call.next_attempt_at > DAY


async def test_hung_up_while_the_notice_plays_is_heard(store: Store, sample_data: Any) -> None:
    call, _ = await _answered(store, sample_data, lambda i: _peer(i, [], [GONE]))
    assert call.status == "heard"
    assert _last_step(store, call.notice_id) == ("heard", "hung up while the notice played")


async def test_speech_asterisk_cannot_play_is_an_attempt_not_heard(store: Store, sample_data: Any) -> None:
    def peer(call_id: int) -> Caller:
        caller = _peer(call_id, [], [GONE])
        fault = caller.fault

        def alive(i: int, command: str) -> bytes | None:  # the channel is up: the file is missing
            return b"200 result=6\n" if command == "CHANNEL STATUS" else fault(i, command)

        caller.fault = alive
        return caller

    call, _ = await _answered(store, sample_data, peer)
    assert (call.status, call.attempts, call.last_result) == ("queued", 1, "not_played")
    outcome, detail = _last_step(store, call.notice_id)
    assert outcome == "not_played" and detail.startswith("its speech could not be played")


async def test_a_notice_call_not_under_way_is_hung_up_at_once(store: Store, sample_data: Any) -> None:
    (call_id,) = _queue_calls(store, sample_data[1][:1])  # queued, never claimed
    commands = await _notice_script(store, _peer(call_id, ["2"], []))
    assert commands == ["GET VARIABLE HOTLINE_NOTICE_CALL"]
    with store.session() as s:
        assert s.get_one(VoiceNotice, call_id).status == "queued"
