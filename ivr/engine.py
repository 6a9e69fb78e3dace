"""The flow engine: a pure function from (menu, call state, input) to the next action.

It does no I/O and keeps nothing between calls: the state it returns is plain data that a
transport keeps in memory (FastAGI, one connection per call) or stores between stateless
webhooks (TwiML). The PIN never enters the state; it travels only in the `Query` action
that verifies it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core import idnumber
from ivr import blocked_flow as blocked
from ivr import message_flow as messages
from ivr import prefs_flow as prefs
from ivr import speech
from ivr.menu import Menu, Node

# --- inputs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    language: str = "zh"
    node: str | None = None  # where the call begins (None: the menu's start), e.g. a message
    reason: str = "menu"  # why a message node was reached: menu | long_wait | after_hours
    # The caller's number is on the nuisance list (core/blocked_callers.py): "" not blocked,
    # or the treatment (ivr.blocked_flow: self_service | hang_up).
    blocked: str = ""


@dataclass(frozen=True)
class Digits:
    value: str  # without the terminating '#'


@dataclass(frozen=True)
class Timeout:
    pass


@dataclass(frozen=True)
class Played:
    pass


class QueryStatus(enum.StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"  # the business system or database cannot be reached
    # The ID number and PIN identify nobody: a wrong PIN or an ID number nobody holds, which
    # the business port does not tell apart, so neither can the caller.
    WRONG_PIN = "wrong_pin"
    LOCKED = "locked"
    # This call tried too many ID numbers, or its number failed too often today; or (a message
    # node's budget) its number left as many voice messages today as one may.
    REFUSED = "refused"


@dataclass(frozen=True)
class QueryDone:
    name: str
    status: QueryStatus
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    """A `Record` action ended: `recording` is the take's path relative to recordings.dir."""

    recording: str
    # dtmf (the caller pressed #) | timeout (the length limit or silence) | failed (Asterisk
    # could not record) | empty (no sound in the take; the transport removed the file)
    ended: str


@dataclass(frozen=True)
class HungUp:
    recording: str | None = None  # the take being recorded when the caller hung up


Input = Start | Digits | Timeout | Played | QueryDone | Recorded | HungUp

# --- actions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Collect:
    """Play the prompts (interruptible by a key), then read up to `max_digits` keys."""

    prompts: tuple[str, ...]
    max_digits: int
    timeout_ms: int
    secret: bool = False  # the digits are a PIN or an ID: masked in the trail


@dataclass(frozen=True)
class Play:
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    name: str  # identify | pension | ... | card_lost | prefs | prefs_change | voice_calls
    args: Mapping[str, Any]


@dataclass(frozen=True)
class Transfer:
    queue: str
    prompts: tuple[str, ...]
    # What the caller needs an agent for (ivr/skills.py): the language they chose when it
    # is not the hotline's own, else the node's business line; "" for none.
    skill: str = ""


@dataclass(frozen=True)
class Hangup:
    prompts: tuple[str, ...]


@dataclass(frozen=True)
class Record:
    """Play the prompts (not interruptible), then record the caller after a beep until `#`,
    the length limit (the transport's setting) or `silence_s` of silence. `discard` is the
    take this one replaces (the caller chose to record again)."""

    prompts: tuple[str, ...]
    silence_s: int
    discard: str = ""


@dataclass(frozen=True)
class PlayRecording:
    recording: str  # relative to recordings.dir


@dataclass(frozen=True)
class SaveMessage:
    """Write the voice message row; answered by QueryDone("save_message", ...). The ID number
    is the one the caller keyed (unverified, no PIN) or the one they identified with."""

    recording: str
    ended: str  # complete | hangup
    reason: str  # menu | long_wait | after_hours
    id_number: str | None
    resident_id: int | None  # known when the caller identified with a PIN earlier in the call


Action = Collect | Play | Query | Transfer | Hangup | Record | PlayRecording | SaveMessage


@dataclass(frozen=True)
class Note:
    """One entry for the call's trail, as the engine sees it."""

    kind: str  # node | digits | invalid | timeout | repeat | identified | query | outcome
    node: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallState:
    node: str
    language: str = "zh"
    tries: Mapping[str, int] = field(default_factory=dict)  # failed attempts per node
    id_number: str | None = None
    resident_id: int | None = None
    resume: str | None = None  # the query to run once the caller is identified
    phase: str = ""  # transaction: "confirm" | "run"; message: see ivr.message_flow
    repeat: tuple[str, ...] = ()  # what `*` plays again
    awaiting: str = ""  # the query whose result is expected next
    carry: tuple[str, ...] = ()  # notices to say before the query's answer (e.g. id.ok)
    identify_closed: bool = False  # identification was refused: queries lead to the agent offer
    reason: str = "menu"  # why a message would be left (Start.reason)
    message_id_number: str | None = None  # the ID number keyed for a message (no PIN: not an identity)
    recording: str = ""  # the message's current take, relative to recordings.dir
    prefs: Mapping[str, Any] = field(default_factory=dict)  # a prefs node's choice, while in it
    no_agent: bool = False  # a blocked number: self-service only, no transfer to an agent
    finished: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallState:
        values = dict(data)
        values["tries"] = dict(values.get("tries", {}))
        values["prefs"] = dict(values.get("prefs", {}))
        for name in ("repeat", "carry"):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


@dataclass(frozen=True)
class Step:
    state: CallState
    action: Action | None  # None: the call is over
    notes: tuple[Note, ...] = ()


class _Flow:
    """The rules, bound to one menu. Methods return Steps and never mutate state."""

    def __init__(self, menu: Menu) -> None:
        self.menu = menu

    # entering nodes ----------------------------------------------------------------
    def enter(
        self,
        state: CallState,
        node_id: str,
        notice: tuple[str, ...] = (),
        content: tuple[str, ...] = (),
        *,
        retry: bool = False,
        pin: str | None = None,
        notes: tuple[Note, ...] = (),
    ) -> Step:
        node = self.menu.node(node_id)
        tries = dict(state.tries)
        if not retry:
            tries.pop(node_id, None)
        kept = state.prefs if node_id == state.node else {}  # what a prefs node read, while in it
        state = dataclasses.replace(state, node=node_id, tries=tries, phase="", prefs=kept)
        notes = notes + (Note("node", node_id, {"type": node.type}),)
        handler = getattr(self, f"_enter_{node.type}")
        step: Step = handler(state, node, notice, content, pin)
        return dataclasses.replace(step, notes=notes + step.notes)

    def _collect(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], digits: int
    ) -> Step:
        body = content + (node.confirm or node.prompt,)
        state = dataclasses.replace(state, repeat=body)
        action = Collect(notice + body, digits, int(node.timeout_s * 1000), secret=bool(node.validate))
        return Step(state, action)

    def _enter_menu(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        return self._collect(state, node, notice, content, 1)

    def _enter_collect(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        return self._collect(state, node, notice, content, node.max_digits)

    def _enter_play(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        return Step(state, Play(notice + content + (node.prompt,)))

    def _enter_language(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        switched = dataclasses.replace(state, language=node.language)
        return self.enter(
            switched, node.next, notice + content, notes=(Note("language", node.id, {"language": node.language}),)
        )

    def _enter_identify(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], pin: str | None
    ) -> Step:
        if pin is None or state.id_number is None:
            return self.enter(state, node.id_node, notice)
        waiting = dataclasses.replace(state, awaiting="identify")
        return Step(waiting, Query("identify", {"id_number": state.id_number, "pin": pin}))

    def gate(self, state: CallState, node: Node, notice: tuple[str, ...]) -> Step | None:
        """Send an unidentified caller to identification first, remembering where to resume."""
        if state.resident_id is not None:
            return None
        if state.identify_closed:
            return self.enter(state, self.menu.fail_node, notice + ("id.refused",))
        gated = dataclasses.replace(state, resume=node.id)
        return self.enter(gated, self.menu.identify_node, notice)

    def _enter_query(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        gated = self.gate(state, node, notice)
        if gated is not None:
            return gated
        waiting = dataclasses.replace(state, awaiting=node.query, carry=notice)
        return Step(waiting, Query(node.query, {"resident_id": state.resident_id}))

    def _enter_transaction(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        gated = self.gate(state, node, notice)
        if gated is not None:
            return gated
        step = self._collect(state, node, notice, content, 1)
        return dataclasses.replace(step, state=dataclasses.replace(step.state, phase="confirm"))

    def _enter_message(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        return messages.enter(self, state, node, notice + content)

    def _enter_prefs(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        return prefs.enter(self, state, node, notice + content)

    def _enter_transfer(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        if state.no_agent:
            return blocked.no_agent(self, state, node, notice)
        done = dataclasses.replace(state, finished=True)
        outcome = Note("outcome", node.id, {"outcome": "transferred", "queue": node.queue})
        skill = state.language if state.language != CallState.language else node.skill
        return Step(done, Transfer(node.queue, notice + content + (node.prompt,), skill), (outcome,))

    def _enter_hangup(
        self, state: CallState, node: Node, notice: tuple[str, ...], content: tuple[str, ...], _pin: str | None
    ) -> Step:
        done = dataclasses.replace(state, finished=True)
        return Step(
            done, Hangup(notice + content + (node.prompt,)), (Note("outcome", node.id, {"outcome": "completed"}),)
        )

    # failures ------------------------------------------------------------------------
    def fail(
        self,
        state: CallState,
        node: Node,
        notice: str,
        kind: str,
        detail: Mapping[str, Any],
        before: tuple[Note, ...] = (),
    ) -> Step:
        """Count a failed attempt: re-prompt saying what was wrong, or give up to on_fail."""
        tries = dict(state.tries)
        tries[node.id] = tries.get(node.id, 0) + 1
        state = dataclasses.replace(state, tries=tries)
        notes = (*before, Note(kind, node.id, {**detail, "attempt": tries[node.id]}))
        if tries[node.id] >= node.retries:
            return self.enter(state, node.on_fail, (notice,), notes=notes)
        return self.enter(state, node.id, (notice,), retry=True, notes=notes)

    # reading input -------------------------------------------------------------------
    def on_digits(self, state: CallState, value: str) -> Step:
        node = self.menu.node(state.node)
        if node.type == "collect":
            return self._on_collect(state, node, value)
        if node.type == "message":
            return messages.on_digits(self, state, node, value)
        if node.type == "prefs":
            return prefs.on_digits(self, state, node, value)
        if node.type in ("menu", "transaction") or state.phase == "confirm":
            return self.on_key(state, node, value)
        return Step(state, None)  # digits where none were asked: ignored by construction

    def on_key(self, state: CallState, node: Node, value: str) -> Step:
        note = Note("digits", node.id, {"digits": value})
        if value == "":
            return self.on_timeout(state)
        if value == "*":
            return self.enter(
                state, node.id, content=state.repeat[:-1], retry=True, notes=(note, Note("repeat", node.id))
            )
        if value == "0" and "0" not in node.options:
            return self.enter(state, self.menu.agent_node, notes=(note,))
        if node.type == "transaction":
            if value == "1":
                run = dataclasses.replace(state, phase="run", awaiting=node.transaction)
                return Step(run, Query(node.transaction, {"resident_id": state.resident_id}), (note,))
            if value == "2":
                return self.enter(state, node.cancel_next, notes=(note,))
        elif value in node.options:
            return self.enter(state, node.options[value], notes=(note,))
        if node.invalid_next:
            return self.enter(state, node.invalid_next, notes=(note,))
        return self.fail(state, node, "input.invalid", "invalid", {"digits": value})

    def _on_collect(self, state: CallState, node: Node, value: str) -> Step:
        masked = {"digits": "*" * len(value)}
        if value == "":
            return self.on_timeout(state)
        if node.validate == "id_number":
            id_number = idnumber.from_keypad(value)
            problem = idnumber.problem(id_number)
            if problem is not None:
                return self.fail(state, node, f"id.{problem.value}", "invalid", {**masked, "reason": problem.value})
            keep = dataclasses.replace(state, id_number=id_number)
            return self.enter(keep, node.next, notes=(Note("digits", node.id, masked),))
        if len(value) != node.max_digits or not value.isdigit():
            return self.fail(state, node, "pin.bad_format", "invalid", {**masked, "reason": "pin_format"})
        return self.enter(state, node.next, pin=value, notes=(Note("digits", node.id, masked),))

    def on_timeout(self, state: CallState) -> Step:
        node = self.menu.node(state.node)
        if node.type == "message":
            return messages.on_timeout(self, state, node)
        if node.timeout_next:
            return self.enter(state, node.timeout_next, notes=(Note("timeout", node.id),))
        return self.fail(state, node, "input.none", "timeout", {})

    # results ---------------------------------------------------------------------------
    def on_query(self, state: CallState, done: QueryDone) -> Step:
        if done.name != state.awaiting:
            raise ValueError(f"result of {done.name!r} while awaiting {state.awaiting or 'no query'!r}")
        carry = state.carry
        state = dataclasses.replace(state, awaiting="", carry=())
        node = self.menu.node(state.node)
        if done.name == messages.BUDGET:
            return messages.on_budget(self, state, node, done, carry)
        note = Note("query", node.id, {"query": done.name, "status": done.status.value})
        if done.status is QueryStatus.UNAVAILABLE:
            return self.enter(state, self.menu.unavailable_node, notes=(note,))
        if done.name == "identify":
            return self._on_identify(state, node, done, note)
        if node.type == "message":
            return self.enter(state, node.next, notes=(note,))
        if node.type == "prefs":
            return prefs.on_result(self, state, node, done, carry, note)
        if node.type == "transaction":
            say = node.say_already if done.data.get("already") and node.say_already else node.say
            return self.enter(state, node.next, carry, self.say(state.language, say, done.data), notes=(note,))
        return self.enter(state, node.next, carry, self.answer(state.language, node, done.data), notes=(note,))

    def _on_identify(self, state: CallState, node: Node, done: QueryDone, note: Note) -> Step:
        if done.status is QueryStatus.OK:
            resume = state.resume or self.menu.start
            ok = dataclasses.replace(state, resident_id=int(done.data["resident_id"]), resume=None)
            return self.enter(ok, resume, ("id.ok",), notes=(note, Note("identified", node.id)))
        if done.status is QueryStatus.LOCKED:
            return self.enter(state, node.on_fail, ("pin.locked",), notes=(note,))
        if done.status is QueryStatus.REFUSED:
            closed = dataclasses.replace(state, identify_closed=True, id_number=None, resume=None)
            refused = Note("refused", node.id, {"reason": str(done.data.get("reason", ""))})
            return self.enter(closed, self.menu.fail_node, ("id.refused",), notes=(note, refused))
        # Either could be mistyped, and the caller is not told which: both are asked again,
        # counted as one attempt of the ID number's step.
        again = dataclasses.replace(state, id_number=None)
        reason = {"reason": "not_identified"}
        return self.fail(again, self.menu.node(node.id_node), "id.failed", "invalid", reason, before=(note,))

    def answer(self, lang: str, node: Node, data: Mapping[str, Any]) -> tuple[str, ...]:
        items = data.get("items")
        if node.say_each and not items:
            return self.say(lang, node.say_empty, data)
        out = self.say(lang, node.say, data)
        for item in items or ():
            out += self.say(lang, node.say_each, item)
        return out

    @staticmethod
    def say(lang: str, template: tuple[str, ...], data: Mapping[str, Any]) -> tuple[str, ...]:
        out: list[str] = []
        for item in template:
            kind, _, arg = item.partition(":")
            if kind == "p":
                out.append(arg.format_map(data))
            elif kind == "money":
                out += speech.money(int(data[arg]), lang)
            elif kind == "months":
                out += speech.months(int(data[arg]), lang)
            elif kind == "number":
                out += speech.number(int(data[arg]), lang, count=True)
            elif kind == "period":
                out += speech.period(str(data[arg]), lang)
            elif kind == "date":
                out += speech.date(str(data[arg]), lang)
            elif kind == "digits":
                out += speech.digits(str(data[arg]), lang)
        return tuple(out)


def step(menu: Menu, state: CallState | None, event: Input) -> Step:
    """The next action for a call. `state` is None only with `Start`."""
    flow = _Flow(menu)
    if isinstance(event, Start):
        if event.blocked:
            return blocked.start(flow, event)
        first = event.node or menu.start
        return flow.enter(CallState(node=first, language=event.language, reason=event.reason), first)
    if state is None:
        raise ValueError("a call's first input must be Start")
    if isinstance(event, HungUp):
        done = dataclasses.replace(state, finished=True)
        outcome = Note("outcome", state.node, {"outcome": "caller_hangup"})
        if not state.finished and menu.node(state.node).type == "message":
            return messages.on_hangup(done, event, outcome)
        return Step(done, None, (outcome,))
    if state.finished:
        return Step(state, None)
    if isinstance(event, Recorded):
        return messages.on_recorded(flow, state, menu.node(state.node), event)
    if isinstance(event, Digits):
        return flow.on_digits(state, event.value)
    if isinstance(event, Timeout):
        return flow.on_timeout(state)
    if isinstance(event, Played):
        node = menu.node(state.node)
        if node.type == "message":
            return messages.on_played(flow, state, node)
        return flow.enter(state, node.next) if node.type == "play" else Step(state, None)
    return flow.on_query(state, event)
