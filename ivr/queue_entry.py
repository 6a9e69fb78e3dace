"""Before a caller joins an agent queue: where they stand, how long they may wait, and
the offer of a callback instead.

The dialplan runs the FastAGI script `queue-entry` just before Queue(). It reads the
queue's state from Asterisk's own functions (QUEUE_WAITING_COUNT and QUEUE_MEMBER, app_queue
docs), estimates the wait from the agents free now and the recent average talk time, and:

- outside business hours (ivr.hours), says so and offers a callback (press 1), then ends
  the call: nobody would answer the queue;
- when the caller would wait, says how many are ahead and about how long it will be; when
  that is longer than `queue.callback_offer_wait_s`, or unknown because no agent is
  staffed, offers a callback instead of waiting;
- otherwise (an agent is free) says nothing, so the caller is connected at once.

A number on the nuisance list (core/blocked_callers.py) is turned away before all of this:
it hears that it cannot reach an agent, then goodbye, however it came to the queue.

A booked callback is a `callbacks` row, and the call's disposition is `callback`. Where the
callback is offered, so is a voice message (press 3, issue 14): the IVR's `message` node
runs on this channel, continuing the call's trail, with the reason long_wait or after_hours.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.calls_out import refuse
from core.db import Store
from core.destinations import DestinationPolicy, DestinationSettings
from core.errors import StoreUnavailable
from core.masking import mask_phone
from core.models import Agent, Call, Callback, utcnow
from core.phones import phone_number
from core.settings import QueueSettings
from ivr import dialplan, speech
from ivr.blocked_flow import PROMPT_GOODBYE, PROMPT_NO_AGENT
from ivr.caller_blocks import CallerBlocks
from ivr.fastagi import AgiChannel, AgiVoice, Route
from ivr.hours import is_open, local_now
from ivr.recordings import recording_path
from ivr.records import log_call_id

log = logging.getLogger(__name__)
OFFER_TIMEOUT_MS = 5000
TALK_SAMPLE = 50  # the last answered calls whose talk time is averaged
TALK_CACHE_S = 60.0


@dataclass(frozen=True)
class QueueState:
    waiting: int  # callers already in the queue
    ready: int  # members free to answer now
    staffed: int  # members logged in and not paused


def estimate_wait_s(state: QueueState, avg_talk_s: int) -> int | None:
    """Seconds until an agent answers a caller joining now; None if nobody is staffed.

    Callers are served in order; each staffed agent frees up once per average call.

    >>> estimate_wait_s(QueueState(waiting=0, ready=1, staffed=1), 180)
    0
    >>> estimate_wait_s(QueueState(waiting=5, ready=0, staffed=2), 180)  # 6th in line, 2 agents
    540
    """
    position = state.waiting + 1
    if state.ready >= position:
        return 0
    if state.staffed == 0:
        return None
    return math.ceil((position - state.ready) / state.staffed) * avg_talk_s


def average_talk_s(store: Store, queue: str, default: int) -> int:
    recent = (
        select(Call.talk_s)
        .where(Call.queue == queue, Call.disposition == "agent", Call.talk_s.is_not(None))
        .order_by(Call.started_at.desc())
        .limit(TALK_SAMPLE)
        .subquery()
    )
    with store.transaction() as c:
        avg = c.scalar(select(func.avg(recent.c.talk_s)))
    return round(float(avg)) if avg is not None else default


def book_callback(store: Store, call_id: str, number: str, queue: str, reason: str) -> bool:
    """One callback per call (a second request is the same booking); the call's
    disposition becomes `callback`. True if this request booked it."""
    try:
        with store.session() as s:
            s.execute(insert(Callback).values(call_id=call_id, number=number, queue=queue, reason=reason))
            result = s.execute(update(Call).where(Call.id == call_id).values(disposition="callback"))
            if not cast(CursorResult[Any], result).rowcount:
                # The IVR's record never reached the store (the FastAGI server was down):
                # a minimal record, so reports still count the call.
                s.add(Call(id=call_id, started_at=utcnow(), caller_number=number, queue=queue, disposition="callback"))
    except IntegrityError:
        return False
    return True


def paused_agents(store: Store, queue: str) -> int:
    """Agents paused in `queue` (their desired state, which the monitor keeps applied)."""
    with store.session() as s:
        rows = s.scalars(select(Agent.queues).where(Agent.state == "paused")).all()
    return sum(queue in q.split(",") for q in rows)


# Runs the IVR's message node on this channel: (channel, call id, reason, language). The
# session it runs tells the dialplan what next (hang up, or queue after all).
LeaveMessage = Callable[[AgiChannel, str, str, str], Awaitable[None]]
KEY_CALLBACK, KEY_MESSAGE = "1", "3"
PROMPT_MESSAGE_OFFER = "queue.message_offer"


def callbacks_booked(store: Store, number: str, now: dt.datetime) -> int:
    """Callbacks `number` booked in the 24 hours before `now`."""
    since = now - dt.timedelta(hours=24)
    with store.session() as s:
        query = select(func.count()).where(Callback.number == number, Callback.requested_at > since)
        return int(s.scalar(query) or 0)


class QueueEntry:
    def __init__(
        self,
        store: Store,
        settings: QueueSettings,
        leave_message: LeaveMessage | None = None,
        destinations: DestinationSettings | None = None,
        callers: CallerBlocks | None = None,
    ) -> None:
        self.store = store
        self.callers = callers
        self.settings = settings
        self.leave_message = leave_message
        self.destinations = DestinationPolicy(destinations or DestinationSettings())
        self._talk: dict[str, tuple[float, int]] = {}  # queue -> (when read, seconds)

    async def _talk_s(self, queue: str) -> int:
        cached = self._talk.get(queue)
        if cached is None or time.monotonic() - cached[0] > TALK_CACHE_S:
            try:
                value = await asyncio.to_thread(average_talk_s, self.store, queue, self.settings.default_talk_s)
            except StoreUnavailable:
                value = self.settings.default_talk_s
            cached = self._talk[queue] = (time.monotonic(), value)
        return cached[1]

    async def _number(self, channel: AgiChannel, name: str) -> int:
        reply = await channel.command(f"GET FULL VARIABLE ${{{name}}}")
        return int(reply.data) if reply.result == "1" and reply.data.isdigit() else 0

    async def queue_state(self, channel: AgiChannel, queue: str) -> QueueState:
        waiting = await self._number(channel, f"QUEUE_WAITING_COUNT({queue})")
        ready = await self._number(channel, f"QUEUE_MEMBER({queue},ready)")
        logged = await self._number(channel, f"QUEUE_MEMBER({queue},logged)")
        # QUEUE_MEMBER's `paused` is per member (it needs an interface, and logs an ERROR
        # without one): the paused agents of this queue are counted in our own agents table.
        try:
            paused = await asyncio.to_thread(paused_agents, self.store, queue)
        except StoreUnavailable:
            paused = 0
        return QueueState(waiting, ready, max(logged - paused, 0))

    async def _language(self, channel: AgiChannel, call_id: str) -> str:
        def read() -> str | None:
            with self.store.session() as s:
                return s.scalar(select(Call.language).where(Call.id == call_id))

        try:
            return (await asyncio.to_thread(read)) or "zh"
        except StoreUnavailable:
            return "zh"

    async def run(self, channel: AgiChannel, now: dt.datetime) -> None:
        env = channel.env
        queue = env.args[0] if env.args and env.args[0] else dialplan.QUEUE_GENERAL
        reply = await channel.command(f"GET VARIABLE {dialplan.VAR_CALL_ID}")
        call_id = reply.data if reply.result == "1" and reply.data else log_call_id(env.uniqueid)
        if self.callers is not None and await self.callers.meet(env.callerid, call_id, "queue"):
            # A number on the nuisance list never reaches an agent, whichever way it came here
            # (the IVR's session failed mid-call, or the FastAGI server was down at its start).
            await AgiVoice(channel).play([PROMPT_NO_AGENT, PROMPT_GOODBYE], await self._language(channel, call_id))
            await self._hang_up(channel)
            return
        # The recording's name if an agent answers (CTX_RECORD_AGENT): random, no caller data;
        # `__` so the agent's channel inherits it. One per queue entry: a caller transferred
        # back into a queue gets a second file, not an overwritten first.
        path = recording_path(local_now(self.settings, now).date())
        await channel.command(f"SET VARIABLE __{dialplan.VAR_RECORDING} {path}")
        # Only a number that looks like a real phone gets the offer: an agent would call
        # back whatever is booked (a 200-digit or lettered caller id is no line to call).
        number = await self._callback_number(call_id, phone_number(env.callerid), now)
        voice = AgiVoice(channel)
        lang = await self._language(channel, call_id)
        if not is_open(self.settings, now):
            # Nobody would answer the queue: offer a callback (and a message), then end the call.
            chose = await self._offer(
                channel, lang, call_id, number, queue, "after_hours", ["queue.closed", "queue.closed_offer"]
            )
            if chose == KEY_MESSAGE:
                return  # the message's session has told the dialplan what next
            if chose is None:
                await voice.play(["queue.goodbye"], lang)
            await self._hang_up(channel)
            return
        state = await self.queue_state(channel, queue)
        wait = estimate_wait_s(state, await self._talk_s(queue))
        log.info("call %s: joining %s: %s, estimated wait %s s", call_id, queue, state, wait)
        if wait == 0:
            return
        words = ["queue.busy"]
        if state.waiting:
            words += ["queue.ahead", *speech.number(state.waiting, lang, count=True), "queue.ahead_unit"]
        if wait is not None:
            minutes = max(1, round(wait / 60))
            words += ["queue.estimate", *speech.number(minutes, lang, count=True), "queue.minutes"]
        if wait is not None and wait <= self.settings.callback_offer_wait_s:
            await voice.play(words, lang)
            return
        offer = [*words, "queue.callback_offer"]
        if await self._offer(channel, lang, call_id, number, queue, "long_wait", offer) == KEY_CALLBACK:
            await self._hang_up(channel)

    async def _callback_number(self, call_id: str, number: str | None, now: dt.datetime) -> str | None:
        """The number a callback may be offered to: one the destination policy allows, that
        has not booked `queue.callbacks_per_number_day` callbacks in the last 24 hours."""
        if number is None:
            return None
        refused = self.destinations.refusal(number)
        try:
            if refused is not None:
                where = f"call {call_id}: callback offer"
                await asyncio.to_thread(refuse, self.store, refused, where=where, actor="ivr")
                return None
            booked = await asyncio.to_thread(callbacks_booked, self.store, number, now)
        except StoreUnavailable as exc:
            log.error("call %s: no callback offer (store unavailable: %s)", call_id, exc)
            return None
        if booked >= self.settings.callbacks_per_number_day:
            log.warning(
                "call %s: no callback offer: %s booked %d callbacks in 24 hours (queue.callbacks_per_number_day)",
                call_id,
                mask_phone(number),
                booked,
            )
            return None
        return number

    async def _offer(
        self,
        channel: AgiChannel,
        lang: str,
        call_id: str,
        number: str | None,
        queue: str,
        reason: str,
        prompts: list[str],
    ) -> str | None:
        """Play the offer (its last prompt asks for 1 and, with messages, 3 follows); the key
        of what was done: KEY_CALLBACK (booked), KEY_MESSAGE (a message was left), or None."""
        voice = AgiVoice(channel)
        if number is None:
            prompts = prompts[:-1]  # no number to call back: no callback offer
        if self.leave_message is not None:
            prompts = [*prompts, PROMPT_MESSAGE_OFFER]
        elif number is None:
            await voice.play(prompts, lang)
            return None
        key = await voice.collect(prompts, lang, 1, OFFER_TIMEOUT_MS)
        if key == KEY_MESSAGE and self.leave_message is not None:
            log.info("call %s: leaving a message instead of waiting (%s)", call_id, reason)
            await self.leave_message(channel, call_id, reason, lang)
            return KEY_MESSAGE
        if key != KEY_CALLBACK or number is None:
            return None
        try:
            booked = await asyncio.to_thread(book_callback, self.store, call_id, number, queue, reason)
        except StoreUnavailable as exc:
            log.error("call %s: callback not booked (store unavailable: %s)", call_id, exc)
            return None
        log.info("call %s: callback %s (%s)", call_id, "booked" if booked else "already booked", reason)
        await voice.play(["queue.callback_ok"], lang)
        return KEY_CALLBACK

    @staticmethod
    async def _hang_up(channel: AgiChannel) -> None:
        await channel.command(f"SET VARIABLE {dialplan.VAR_ACTION} {dialplan.ACTION_HANGUP}")


def queue_entry_route(
    store: Store,
    settings: QueueSettings,
    leave_message: LeaveMessage | None = None,
    destinations: DestinationSettings | None = None,
    callers: CallerBlocks | None = None,
) -> Route:
    """The FastAGI route before the queue; with `leave_message`, messages are offered too;
    callbacks only to numbers `destinations` (the default policy if None) allows; with
    `callers`, numbers on the nuisance list are turned away."""
    entry = QueueEntry(store, settings, leave_message, destinations, callers)

    async def route(channel: AgiChannel) -> None:
        await entry.run(channel, utcnow())

    return route
