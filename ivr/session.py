"""One call through the IVR: the engine's actions carried out on a voice channel.

The session is transport-neutral: FastAGI (ivr/fastagi.py) gives it an `AgiVoice`;
tests and benchmarks may give it anything that satisfies `Voice`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from core import stage_times
from core.business import AuditedReader
from core.errors import IdentifyRefused, IdentityLocked, StoreUnavailable, WrongPin
from core.identify import Identifier
from core.masking import mask_phone
from core.models import utcnow
from ivr import engine, message_flow, prefs_flow
from ivr.caller_blocks import CallerBlocks
from ivr.catalogue import Catalogue
from ivr.engine import (
    Action,
    Collect,
    Hangup,
    Play,
    PlayRecording,
    Query,
    QueryDone,
    QueryStatus,
    Record,
    SaveMessage,
    Transfer,
)
from ivr.errors import AgiError, AsteriskGone, CallerHungUp, MessageNotSaved
from ivr.menu import Menu
from ivr.messages import EMPTY_TAKE_S, VoiceMessages
from ivr.notice_settings import Caller, NoNumberToCall, NoticeSettings, WeChatNotBound
from ivr.skills import route
from ivr.speech import text
from ivr.trail import (
    SPOOL_DIR,
    TRANSFERRED_12345,
    CallBegin,
    CallEnd,
    CallSink,
    CallSteps,
    TrailEntry,
    TrailOp,
    spool_call,
)

log = logging.getLogger(__name__)


class Voice(Protocol):
    """What a transport must do for the session. Raises CallerHungUp when the caller is gone."""

    async def collect(self, prompts: Sequence[str], lang: str, max_digits: int, timeout_ms: int) -> str | None:
        """Digits entered ('' for a bare '#'), or None on a timeout with nothing entered."""
        ...

    async def play(self, prompts: Sequence[str], lang: str) -> None: ...
    async def record(self, path: str, max_s: int, silence_s: int) -> str:
        """Record after a beep into `path` (as Asterisk names it); dtmf | timeout | failed."""
        ...

    async def play_file(self, path: str) -> None: ...
    async def transfer(self, queue: str, call_id: str, max_penalty: int | None = None) -> None: ...
    async def finish(self, call_id: str) -> None: ...


class QueryLoad:
    """How many of the callers' queries hold a thread now (changed on the event loop only)."""

    def __init__(self) -> None:
        self.busy = 0


@dataclass(frozen=True)
class IvrServices:
    menu: Menu
    catalogue: Catalogue
    identifier: Identifier
    reader: AuditedReader
    sink: CallSink
    # The callers' queries run here, not in the loop's default executor that the console
    # and the SMS gateway share: their load cannot make a caller wait (None: the default).
    executor: Executor | None = None
    threads: int = 8  # the executor's threads
    load: QueryLoad = field(default_factory=QueryLoad)
    messages: VoiceMessages | None = None  # None: a message node answers as if it could not record
    prefs: NoticeSettings | None = None  # None: the notification settings answer as unavailable
    skills: tuple[str, ...] = ()  # skills.names: transfers needing one of them go to its queue
    callers: CallerBlocks | None = None  # the nuisance list; None: no caller is blocked here


@dataclass(frozen=True)
class CallInfo:
    uniqueid: str | None
    channel: str | None
    caller: str | None
    transport: str = "fastagi"
    order_12345: str | None = None  # a call 12345 transferred: its work order's number there


# A call's trail is written behind it in gathered writes: what it records within this long
# goes in one write (at a caller's pace a write per step was a task, a future and a writer
# request each, a sixth of the event loop's time; issue 23). The end of the call writes at
# once, and the trail is whole when the call is over (a transfer's screen pop included);
# a process that dies mid-call loses at most this much of that call's trail.
TRAIL_GATHER_S = 2.0

# What a query may raise that the caller is answered for (`IvrSession._failed`).
_ANSWERED = (
    IdentifyRefused,
    WeChatNotBound,
    NoNumberToCall,
    WrongPin,
    IdentityLocked,
    StoreUnavailable,
    SQLAlchemyError,
)


def _query_key(action: Query) -> tuple[str, str]:
    return action.name, repr(sorted(action.args.items()))


class IvrSession:
    def __init__(
        self,
        services: IvrServices,
        voice: Voice,
        info: CallInfo,
        call_id: str | None = None,
        *,
        start: engine.Start | None = None,
        next_seq: int | None = None,
    ) -> None:
        """`start` may begin elsewhere than the menu's start (a message offered before the
        queue); with `next_seq` the session continues the trail of the stored call `call_id`."""
        self.svc = services
        self.voice = voice
        self.info = info
        self.call_id = call_id or str(uuid.uuid4())
        self.start = start or engine.Start()
        self.seq = next_seq or 0
        self.state: engine.CallState | None = None
        self.begun = next_seq is not None
        self.recording: str | None = None  # the take Asterisk is writing now
        self.pending: list[TrailEntry] = []
        self.store_down = False
        self.started_at = utcnow()
        self._writer: asyncio.Task[None] | None = None
        self._ending = asyncio.Event()
        self._prefetched: dict[tuple[str, str], QueryDone] = {}

    async def _write(self, extra: Sequence[TrailOp] = ()) -> bool:
        """Send the pending entries (after the call row, the first time) and `extra`; on
        success they leave `pending`. If the store is down they stay, for the next write or
        the spool. Only one write of a call is in flight at a time."""
        batch = self.pending
        self.pending = []
        ops: list[TrailOp] = []
        if not self.begun:
            ops.append(
                CallBegin(
                    self.call_id,
                    self.info.uniqueid,
                    self.info.channel,
                    self.info.caller,
                    self.info.transport,
                    self.started_at,
                )
            )
        if batch:
            ops.append(CallSteps(self.call_id, self.seq, batch))
        ops.extend(extra)
        if await self.svc.sink.write(ops):
            self.begun = True
            self.seq += len(batch)
            self.store_down = False
            return True
        if not self.store_down:
            log.error("call %s: store unavailable, keeping the trail in memory", self.call_id)
        self.store_down = True
        self.pending[:0] = batch
        return False

    async def _write_behind(self) -> None:
        """Write pending entries in order, after gathering for up to TRAIL_GATHER_S (or until
        the call ends); entries recorded meanwhile go out with the next write. Stops while the
        store is down (the next entry or the end tries again)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ending.wait(), TRAIL_GATHER_S)
        while self.pending and await self._write():
            pass

    def _record(self, entries: Sequence[TrailEntry]) -> None:
        """Add to the trail. The write happens behind the call: the caller's next prompt never
        waits for the store (a commit per step under load put tens of ms to seconds of
        silence between prompts)."""
        self.pending.extend(entries)
        if self._writer is None or self._writer.done():
            if self._writer is not None:
                self._writer.result()  # a writer that failed (not a store outage: a bug) fails the call
            self._writer = asyncio.create_task(self._write_behind(), name=f"trail-{self.call_id}")

    async def _close(self, outcome: str, ended_by: str, queue: str | None) -> None:
        """The last write: what is pending and the call's end, together; spooled if the store
        is still down."""
        self._ending.set()  # a write gathering entries goes now
        if self._writer is not None:
            await self._writer
        end = CallEnd(
            self.call_id,
            outcome,
            ended_by,
            self._node(),
            self.state.resident_id if self.state else None,
            queue,
            self.state.language if self.state else "zh",
            utcnow(),
        )
        if not await self._write([end]):
            path = await asyncio.to_thread(spool_call, SPOOL_DIR, self._spool_record(outcome, ended_by, queue))
            log.error("call %s: could not record the end of the call; trail spooled to %s", self.call_id, path)

    def _spool_record(self, outcome: str, ended_by: str, queue: str | None) -> dict[str, Any]:
        return {
            "id": self.call_id,
            "uniqueid": self.info.uniqueid,
            "channel": self.info.channel,
            "caller": self.info.caller,
            "transport": self.info.transport,
            "started_at": self.started_at.isoformat(),
            "ended_at": utcnow().isoformat(),
            "outcome": outcome,
            "ended_by": ended_by,
            "queue": queue,
            "last_node": self._node(),
            "resident_id": self.state.resident_id if self.state else None,
            "language": self.state.language if self.state else "zh",
            "first_seq": self.seq,
            "trail": [
                {"kind": e.kind, "node": e.node, "detail": e.detail, "at": e.at.isoformat()} for e in self.pending
            ],
        }

    async def run(self) -> str:
        """Run the call to its end; returns the outcome recorded."""
        log.info("call %s: start (%s, caller %s)", self.call_id, self.info.uniqueid, mask_phone(self.info.caller))
        outcome, ended_by, queue = "failed", "system", None
        if self.info.order_12345 and not self.begun:
            # First in the trail: the agent's screen pop shows it (ivr/screenpop.py).
            self._record([TrailEntry(TRANSFERRED_12345, None, {"order_no": self.info.order_12345})])
        try:
            outcome, ended_by, queue = await self._loop()
        except AsteriskGone as exc:
            log.warning("call %s: Asterisk went away at %s (%s): the call is lost", self.call_id, self._node(), exc)
            self._record([TrailEntry("error", self._node(), {"error": f"Asterisk went away: {exc}"})])
            outcome, ended_by = "failed", "asterisk"
        except CallerHungUp:
            await self._hung_up()
            outcome, ended_by = "caller_hangup", "caller"
        except AgiError as exc:
            log.warning("call %s: AGI failure at %s: %s", self.call_id, self._node(), exc)
            self._record([TrailEntry("error", self._node(), {"error": str(exc)})])
        finally:
            # A server shutting down cancels us; the call's last write must still land.
            await asyncio.shield(self._close(outcome, ended_by, queue))
            log.info("call %s: %s (ended by %s)", self.call_id, outcome, ended_by)
        return outcome

    def _node(self) -> str | None:
        return self.state.node if self.state else None

    async def _hung_up(self) -> None:
        """The engine decides what a hang-up leaves behind: a voice message being recorded or
        reviewed is saved (ended=hangup), with no one left to tell."""
        if self.state is None:
            self._record([TrailEntry("outcome", None, {"outcome": "caller_hangup"})])
            return
        step = engine.step(self.svc.menu, self.state, engine.HungUp(self.recording))
        self.state = step.state
        self._record([TrailEntry(n.kind, n.node, dict(n.detail)) for n in step.notes])
        if isinstance(step.action, SaveMessage):
            self._record(self._describe(step.action))
            await self._save_message(step.action)

    async def _loop(self) -> tuple[str, str, str | None]:
        step = engine.step(self.svc.menu, None, await self._first())
        while True:
            self.state = step.state
            entries = [TrailEntry(n.kind, n.node, dict(n.detail)) for n in step.notes]
            if step.action is None:
                self._record(entries)
                return "completed", "system", None
            entries += self._describe(step.action)
            self._record(entries)
            if isinstance(step.action, Transfer):
                queue, max_penalty = route(self.svc.skills, step.action.queue, step.action.skill)
                await self.voice.play(step.action.prompts, self.state.language)
                await self.voice.transfer(queue, self.call_id, max_penalty)
                return "transferred", "system", queue
            if isinstance(step.action, Hangup):
                await self.voice.play(step.action.prompts, self.state.language)
                await self.voice.finish(self.call_id)
                return "completed", "system", None
            event = await self._perform(step.action)
            step = engine.step(self.svc.menu, self.state, event)

    async def _first(self) -> engine.Start:
        """The call's Start: blocked (with the treatment) if its number is on the nuisance
        list. A session continuing a call (a message from the queue's offer) was met already."""
        callers = self.svc.callers
        if callers is None or self.begun:
            return self.start
        treatment = await callers.meet(self.info.caller, self.call_id, "ivr")
        return dataclasses.replace(self.start, blocked=treatment) if treatment else self.start

    def _describe(self, action: Action) -> list[TrailEntry]:
        node = self._node()
        lang = self.state.language if self.state else "zh"
        if isinstance(action, (Collect, Play, Transfer, Hangup, Record)):
            return [
                TrailEntry(
                    "prompt",
                    node,
                    {
                        "prompts": list(action.prompts),
                        "language": lang,
                        "text": text(action.prompts, lang, self.svc.catalogue),
                    },
                )
            ]
        if isinstance(action, PlayRecording):
            return [TrailEntry("playback", node, {"recording": action.recording})]
        if isinstance(action, SaveMessage):
            return [TrailEntry("ask", node, {"query": message_flow.SAVE, "ended": action.ended})]
        return [TrailEntry("ask", node, {"query": action.name})]

    async def _perform(self, action: Action) -> engine.Input:
        assert self.state is not None
        lang = self.state.language
        if isinstance(action, Collect):
            digits = await self.voice.collect(action.prompts, lang, action.max_digits, action.timeout_ms)
            return engine.Timeout() if digits is None else engine.Digits(digits)
        if isinstance(action, Play):
            await self.voice.play(action.prompts, lang)
            return engine.Played()
        if isinstance(action, Record):
            return await self._record_take(action, lang)
        if isinstance(action, PlayRecording):
            if self.svc.messages is not None:
                await self.voice.play_file(self.svc.messages.asterisk_path(action.recording))
            return engine.Played()
        if isinstance(action, SaveMessage):
            return await self._save_message(action)
        assert isinstance(action, Query)
        done = self._prefetched.pop(_query_key(action), None)
        if done is None:
            asked = time.perf_counter()
            load = self.svc.load
            if load.busy >= self.svc.threads and self._awaited(action):
                done = await self._query_then_prefetch_async(action)
            else:
                load.busy += 1
                try:
                    loop = asyncio.get_running_loop()
                    done = await loop.run_in_executor(self.svc.executor, self._query_then_prefetch, action, asked)
                finally:
                    load.busy -= 1
            if stage_times.enabled():
                stage_times.add(f"query.{action.name}.wall", time.perf_counter() - asked)
        if done.name == message_flow.BUDGET:
            return done  # the engine notes it (message_budget): no caller's query, none on the screen pop
        shown: dict[str, Any] = {"query": done.name, "status": done.status.value}
        if done.name != "identify":
            shown["data"] = dict(done.data)
        self._record([TrailEntry("result", self._node(), shown)])
        return done

    async def _record_take(self, action: Record, lang: str) -> engine.Input:
        await self.voice.play(action.prompts, lang)
        messages = self.svc.messages
        if messages is None:
            log.error("call %s: no voice message storage configured; cannot record", self.call_id)
            return engine.Recorded("", "failed")
        try:
            take = await asyncio.to_thread(messages.new_take)
        except OSError as exc:
            log.error("call %s: cannot prepare a voice message under %s: %s", self.call_id, messages.settings.dir, exc)
            return engine.Recorded("", "failed")
        if action.discard:
            await asyncio.to_thread(messages.discard, action.discard)
        self.recording = take.relative  # kept if the caller hangs up mid-recording
        ended = await self.voice.record(take.asterisk_path, messages.max_s, action.silence_s)
        self.recording = None
        if ended != "failed":
            seconds = await asyncio.to_thread(messages.duration, take.relative)
            if seconds is not None and seconds < EMPTY_TAKE_S:
                await asyncio.to_thread(messages.discard, take.relative)
                log.info("call %s: voice message take %s held no sound (%.1f s)", self.call_id, take.relative, seconds)
                return engine.Recorded("", "empty")
        return engine.Recorded(take.relative, ended)

    async def _save_message(self, action: SaveMessage) -> QueryDone:
        """Write the voice message row; every failure becomes a status the engine handles."""
        messages = self.svc.messages
        shown: dict[str, Any] = {"query": message_flow.SAVE, "recording": action.recording}
        done = QueryDone(message_flow.SAVE, QueryStatus.UNAVAILABLE)
        if messages is not None:
            loop = asyncio.get_running_loop()
            try:
                saved = await loop.run_in_executor(
                    self.svc.executor, messages.save, self.call_id, self.info.caller, action
                )
            except MessageNotSaved as exc:
                log.error("call %s: %s", self.call_id, exc)
            else:
                done = QueryDone(message_flow.SAVE, QueryStatus.OK)
                shown |= {"message_id": saved.message_id, "duration_s": saved.duration_s}
                shown |= {"named_resident": saved.named_resident}
                if saved.message_id is None:
                    log.info("call %s: hung up before saying anything; no voice message", self.call_id)
                else:
                    log.info(
                        "call %s: voice message %d saved (%s, %d s, %s)",
                        self.call_id,
                        saved.message_id,
                        action.ended,
                        saved.duration_s,
                        action.reason,
                    )
        self._record([TrailEntry("result", self._node(), {**shown, "status": done.status.value})])
        return done

    def _query_then_prefetch(self, action: Query, asked: float | None = None) -> QueryDone:
        """Run a query; after a successful identification, also run the query the engine will
        ask for next (the one the caller chose before being identified), in the same thread:
        the engine is pure, so its next action is known now, and the caller waits for one
        hop to the store instead of two."""
        began = time.perf_counter()
        if asked is not None:
            stage_times.add("query.to_thread", began - asked)
        done = self._query(action)
        following = self._following(action, done)
        if following is not None:
            self._prefetched[_query_key(following)] = self._query(following)
        if stage_times.enabled():
            stage_times.add(f"query.{action.name}.thread", time.perf_counter() - began)
        return done

    def _following(self, action: Query, done: QueryDone) -> Query | None:
        """After a successful identification, the query the engine will ask for next, to
        run at once; None otherwise."""
        if action.name != "identify" or done.status is not QueryStatus.OK or self.state is None:
            return None
        following = engine.step(self.svc.menu, self.state, done).action
        return following if isinstance(following, Query) and following.name != "identify" else None

    def _awaited(self, action: Query) -> bool:
        """May this query be awaited on the loop rather than run in a thread? Identification
        and the data reads, with the group writer: a thread is then taken only for the PIN
        check and the read itself (`verify_async`). Used once every thread is taken: in a
        thread a query waits for the writer without the loop's hops (at a human pace its
        wait after the PIN was half the loop's), but a burst blocked every thread on the
        writer while the callers behind queued for one (issue 23)."""
        if self.svc.identifier.writer is None:
            return False
        return action.name not in (message_flow.BUDGET, *prefs_flow.QUERIES)

    async def _query_then_prefetch_async(self, action: Query) -> QueryDone:
        """`_query_then_prefetch` on the loop (see `_awaited`)."""
        done = await self._query_async(action)
        following = self._following(action, done)
        if following is not None and self._awaited(following):
            self._prefetched[_query_key(following)] = await self._query_async(following)
        return done

    async def _query_async(self, action: Query) -> QueryDone:
        try:
            if action.name == "identify":
                ident = await self.svc.identifier.verify_async(
                    str(action.args["id_number"]),
                    str(action.args["pin"]),
                    actor="ivr",
                    call_id=self.call_id,
                    caller=self.info.caller,
                    executor=self.svc.executor,
                )
                return QueryDone("identify", QueryStatus.OK, {"resident_id": ident.resident_id})
            rid = int(action.args["resident_id"])
            data = await self.svc.reader.read_async(
                action.name, rid, actor="ivr", call_id=self.call_id, executor=self.svc.executor
            )
            return QueryDone(action.name, QueryStatus.OK, data)
        except _ANSWERED as exc:
            return self._failed(action, exc)

    def _failed(self, action: Query, exc: Exception) -> QueryDone:
        """A query's failure as the status the engine handles."""
        if isinstance(exc, IdentifyRefused):
            return QueryDone(action.name, QueryStatus.REFUSED, {"reason": exc.reason})
        if isinstance(exc, WeChatNotBound):
            return QueryDone(action.name, QueryStatus.REFUSED, {"reason": prefs_flow.WECHAT_UNBOUND})
        if isinstance(exc, NoNumberToCall):
            return QueryDone(action.name, QueryStatus.REFUSED, {"reason": prefs_flow.NO_NUMBER_TO_CALL})
        if isinstance(exc, WrongPin):
            return QueryDone(action.name, QueryStatus.WRONG_PIN, {"failures": exc.failures})
        if isinstance(exc, IdentityLocked):
            until = exc.until.isoformat() if isinstance(exc.until, dt.datetime) else str(exc.until)
            return QueryDone(action.name, QueryStatus.LOCKED, {"until": until})
        log.error("call %s: business data unavailable for %s: %s", self.call_id, action.name, str(exc).splitlines()[0])
        return QueryDone(action.name, QueryStatus.UNAVAILABLE)

    def _query(self, action: Query) -> QueryDone:
        """Run a query in a worker thread; every failure becomes a status the engine handles."""
        actor = "ivr"
        try:
            if action.name == message_flow.BUDGET:
                return self._message_budget()
            if action.name in prefs_flow.QUERIES:
                return self._notice_settings(action)
            if action.name == "identify":
                ident = self.svc.identifier.verify(
                    str(action.args["id_number"]),
                    str(action.args["pin"]),
                    actor=actor,
                    call_id=self.call_id,
                    caller=self.info.caller,
                )
                return QueryDone("identify", QueryStatus.OK, {"resident_id": ident.resident_id})
            data = self.svc.reader.read(action.name, int(action.args["resident_id"]), actor=actor, call_id=self.call_id)
            return QueryDone(action.name, QueryStatus.OK, data)
        except _ANSWERED as exc:
            return self._failed(action, exc)

    def _notice_settings(self, action: Query) -> QueryDone:
        """The caller's notice choice read or changed (ivr/notice_settings.py), audited there."""
        settings = self.svc.prefs
        if settings is None:
            log.error("call %s: no notice settings configured; %s unavailable", self.call_id, action.name)
            return QueryDone(action.name, QueryStatus.UNAVAILABLE)
        who = Caller(str(action.args["id_number"]), self.call_id)
        args = action.args
        if action.name == prefs_flow.READ:
            data = settings.read(who)
        elif action.name == prefs_flow.CHANGE:
            data = settings.change(who, channels=args.get("channels"), language=args.get("language"))
        else:
            data = settings.allow_calls(who, allowed=bool(args["allowed"]))
        return QueryDone(action.name, QueryStatus.OK, data)

    def _message_budget(self) -> QueryDone:
        """May this calling number leave another voice message today? Without message storage
        the answer is yes: the recording then fails and the caller is told so."""
        messages = self.svc.messages
        if messages is None or messages.may_leave(self.info.caller):
            return QueryDone(message_flow.BUDGET, QueryStatus.OK)
        log.info(
            "call %s: caller %s has left %d voice messages today (the limit); no more",
            self.call_id,
            mask_phone(self.info.caller),
            messages.settings.messages_per_number_day,
        )
        return QueryDone(message_flow.BUDGET, QueryStatus.REFUSED, {"reason": "limit"})
