"""Before the queue, over FastAGI against the scripted AGI peer: what the caller hears, and
the callback booked when they press 1 (after hours, or when the wait is long)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from core.db import Store
from core.models import Agent, AuditEntry, Call, Callback, utcnow
from core.phones import clean_caller_id
from core.settings import QueueSettings
from ivr.fastagi import FastAgiServer
from ivr.queue_entry import queue_entry_route
from tests.protocol.agi_peer import Caller, environment, run_peer

ALWAYS = QueueSettings(open_time=dt.time(0), close_time=dt.time(0), open_weekdays=(1, 2, 3, 4, 5, 6, 7))
NEVER = QueueSettings(open_weekdays=())


def _env(callerid: str) -> bytes:
    block = environment(script="queue-entry", callerid=callerid)
    return block[:-1] + b"agi_arg_1: hotline-12333\n\n"


def _asterisk(entries: list[str | None], **queue: int) -> Caller:
    """A channel whose queue functions answer as app_queue would for `queue`'s figures."""
    values = {"QUEUE_WAITING_COUNT": queue.get("waiting", 0)} | {k: queue.get(k, 0) for k in ("ready", "logged")}

    def answer(_i: int, command: str) -> bytes | None:
        if command.startswith("GET VARIABLE HOTLINE_CALL_ID"):
            return b"200 result=1 (call-q)\n"
        m = re.match(r"GET FULL VARIABLE \$\{(\w+)\(hotline-12333(?:,(\w+))?\)\}", command)
        if m:
            return f"200 result=1 ({values[m.group(2) or m.group(1)]})\n".encode()
        return None

    return Caller(list(entries), fault=answer)


async def _run(store: Store, settings: QueueSettings, caller: Caller, callerid: str = "13912345678") -> list[str]:
    with store.session() as s:
        if s.get(Call, "call-q") is None:
            s.add(
                Call(
                    id="call-q", started_at=utcnow(), caller_number=clean_caller_id(callerid)[0], outcome="transferred"
                )
            )
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("queue-entry", queue_entry_route(store, settings))
    srv = await app.serve("127.0.0.1", 0)
    try:
        return await run_peer(srv.sockets[0].getsockname()[1], caller, env=_env(callerid))
    finally:
        srv.close()


def _played(commands: list[str]) -> list[str]:
    return [c.split()[2].rsplit("/", 1)[1] for c in commands if c.startswith(("STREAM FILE", "GET DATA"))]


def _callbacks(store: Store) -> list[tuple[str, str, str, str]]:
    with store.session() as s:
        return [(c.call_id, c.number, c.reason, c.status) for c in s.scalars(select(Callback))]


async def test_an_agent_is_free_so_the_caller_hears_nothing_and_queues(store: Store) -> None:
    commands = await _run(store, ALWAYS, _asterisk([], waiting=0, ready=1, logged=1))
    assert _played(commands) == []
    assert not any("HOTLINE_ACTION" in c for c in commands)


async def test_position_and_wait_are_announced_then_the_caller_keeps_waiting(store: Store) -> None:
    # 4th in line, nobody free, 2 staffed, 180 s per call: about 6 minutes, over the 120 s offer limit.
    # One of the three logged in is paused (our agents table: QUEUE_MEMBER's paused needs an interface).
    with store.session() as s:
        s.add(
            Agent(
                id="1009", name="paused", interface="PJSIP/1009", queues="hotline-12333,hotline-labour", state="paused"
            )
        )
    commands = await _run(store, ALWAYS, _asterisk(["2"], waiting=3, ready=0, logged=3))
    played = _played(commands)
    assert played[:2] == ["queue.busy", "queue.ahead"] and "queue.ahead_unit" in played
    assert played[played.index("queue.estimate") + 1 : played.index("queue.minutes")] == ["num.6"]
    assert played[-1] == "queue.callback_offer"
    assert _callbacks(store) == [] and not any("HOTLINE_ACTION" in c for c in commands)


async def test_a_long_wait_and_1_books_a_callback_and_ends_the_call(store: Store) -> None:
    commands = await _run(store, ALWAYS, _asterisk(["1"], waiting=2, ready=0, logged=0))
    assert _played(commands)[-2:] == ["queue.callback_offer", "queue.callback_ok"]
    assert "SET VARIABLE HOTLINE_ACTION hangup" in commands
    assert _callbacks(store) == [("call-q", "13912345678", "long_wait", "open")]
    with store.session() as s:
        assert s.get_one(Call, "call-q").disposition == "callback"
    # The caller's second request for the same call books nothing more.
    await _run(store, ALWAYS, _asterisk(["1"], waiting=2))
    assert len(_callbacks(store)) == 1


@pytest.mark.parametrize(("key", "booked"), [("1", True), (None, False)])
async def test_after_hours_the_caller_may_book_a_callback_and_the_call_ends(
    store: Store, key: str | None, booked: bool
) -> None:
    commands = await _run(store, NEVER, _asterisk([key], ready=3, logged=3))
    assert _played(commands)[:2] == ["queue.closed", "queue.closed_offer"]
    assert _played(commands)[-1] == ("queue.callback_ok" if booked else "queue.goodbye")
    assert "SET VARIABLE HOTLINE_ACTION hangup" in commands
    assert [c[2] for c in _callbacks(store)] == (["after_hours"] if booked else [])


async def test_without_a_caller_number_there_is_no_offer(store: Store) -> None:
    commands = await _run(store, ALWAYS, _asterisk([], waiting=1, logged=0), callerid="unknown")
    assert "GET DATA" not in " ".join(commands) and _played(commands)[0] == "queue.busy"
    assert _callbacks(store) == []


@pytest.mark.parametrize("callerid", ["1" * 200, "13812345678abc", "12333", "Anonymous"])
@pytest.mark.parametrize("settings", [ALWAYS, NEVER], ids=["long_wait", "after_hours"])
async def test_no_callback_offer_for_what_is_not_a_phone_number(
    store: Store, callerid: str, settings: QueueSettings
) -> None:
    """A caller id of 200 digits, or with letters, is no line an agent could call back: the
    caller hears the wait (or that we are closed) without the offer, and nothing is booked."""
    commands = await _run(store, settings, _asterisk(["1"], waiting=2, ready=0, logged=0), callerid=callerid)
    played = _played(commands)
    assert "GET DATA" not in " ".join(commands)
    assert "queue.callback_offer" not in played and "queue.closed_offer" not in played
    assert played[0] == ("queue.busy" if settings is ALWAYS else "queue.closed")
    assert _callbacks(store) == []


async def test_a_number_with_the_country_code_is_booked_as_the_national_number(store: Store) -> None:
    await _run(store, ALWAYS, _asterisk(["1"], waiting=2, ready=0, logged=0), callerid="+8613912345678")
    assert _callbacks(store) == [("call-q", "13912345678", "long_wait", "open")]


@pytest.mark.parametrize("callerid", ["+8821612345678", "008821612345678", "+447700900123", "+864008123123"])
async def test_no_callback_offer_to_a_number_abroad_or_a_premium_range(store: Store, callerid: str) -> None:
    """A fraudster presenting a premium number and pressing 1 would have an agent call it:
    the caller hears the wait without the offer; a 400 number (which looks like a fixed line)
    is refused by the destination policy, on record."""
    commands = await _run(store, ALWAYS, _asterisk(["1"], waiting=2, ready=0, logged=0), callerid=callerid)
    assert "GET DATA" not in " ".join(commands) and "queue.callback_offer" not in _played(commands)
    assert _callbacks(store) == []
    with store.session() as s:
        refusals = s.scalars(select(AuditEntry.detail).where(AuditEntry.action == "refuse:destination")).all()
    assert len(refusals) == (1 if callerid.startswith("+86") else 0)  # the others are no Chinese number at all


async def test_a_number_that_booked_its_callbacks_today_gets_no_more_offers(store: Store) -> None:
    capped = ALWAYS.model_copy(update={"callbacks_per_number_day": 2})
    with store.session() as s:
        for i in range(2):
            s.add(Callback(call_id=f"earlier-{i}", number="13912345678", queue="hotline-12333", reason="long_wait"))
    commands = await _run(store, capped, _asterisk(["1"], waiting=2, ready=0, logged=0))
    assert "queue.callback_offer" not in _played(commands) and "GET DATA" not in " ".join(commands)
    assert len(_callbacks(store)) == 2
    # Another number still has its offer.
    commands = await _run(store, capped, _asterisk(["1"], waiting=2, ready=0, logged=0), callerid="13700001111")
    assert _played(commands)[-1] == "queue.callback_ok"
