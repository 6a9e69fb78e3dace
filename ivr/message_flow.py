"""The rules of a `message` node (留言): the flow engine's part of leaving a voice message.

A message node runs in phases, kept in `CallState.phase`:

- `budget`: a `Query("message_budget")` first, before the caller says or keys anything: has
  this calling number left its messages for today (`recordings.messages_per_number_day`)?
  If so (`refused`), the caller is told so and goes `on_fail` (the agent offer), and the
  trail notes `message_refused`.
- `id`: the caller may key their ID number (checked like identification, GB 11643 check
  character, but no PIN is asked: the message is what they say, not who they proved to be)
  or skip it with a bare `#`. A wrong one is asked again with the reason; after the node's
  `retries` the message goes on without one. A caller identified earlier with a PIN is not
  asked.
- `record`: a `Record` action (the transport records after a beep until `#`). A take with
  no sound in it (`ended=empty`: the transport removed it) is not a message: the caller is
  told and asked again, and after the node's `retries` empty takes the call goes `on_fail`
  (one silent line cannot fill the work-order queue with empty messages).
- `review`: 1 listens to the take, 2 records again, 3 sends it. Silence or wrong keys for
  `retries` prompts send it as it is (nothing the caller said is dropped).
- `play`: the take is being played back; then the review again.
- `save`: a `SaveMessage` action; its result leads to `next` (or the unavailable node).

A hang-up during or after the recording still saves the take, with `ended=hangup`.
Like the engine, these functions do no I/O and never mutate the state.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from core import idnumber
from ivr import engine
from ivr.menu import MESSAGE_PROMPTS, Node

if TYPE_CHECKING:
    from ivr.engine import CallState, Step, _Flow

# Ask for the ID number; said when its retries are used up; before the beep; Asterisk could
# not record (disk full, directory not writable); the take held no sound; the number's
# messages for today are used up.
ASK_ID, ID_SKIPPED, RECORD, FAILED, EMPTY, LIMIT = MESSAGE_PROMPTS
SAVE = "save_message"  # the name of the SaveMessage action's result
BUDGET = "message_budget"  # the query: may this calling number leave another message today?
KEY_LISTEN, KEY_AGAIN, KEY_SEND = "1", "2", "3"


def enter(flow: _Flow, state: CallState, node: Node, notice: tuple[str, ...]) -> Step:
    asking = dataclasses.replace(
        state, message_id_number=None, recording="", phase="budget", awaiting=BUDGET, carry=notice
    )
    return engine.Step(asking, engine.Query(BUDGET, {}))


def on_budget(flow: _Flow, state: CallState, node: Node, done: engine.QueryDone, notice: tuple[str, ...]) -> Step:
    """The budget's answer: the message begins, or the caller hears why not and goes on_fail.
    Noted as `message_budget`, not `query`: the reports' menu usage and calls resolved by the
    IVR count what callers asked for, and nobody asks for this."""
    note = engine.Note(BUDGET, node.id, {"status": done.status.value})
    if done.status is engine.QueryStatus.UNAVAILABLE:
        return flow.enter(state, flow.menu.unavailable_node, notes=(note,))
    if done.status is engine.QueryStatus.REFUSED:
        refused = engine.Note("message_refused", node.id, {"reason": str(done.data.get("reason", "limit"))})
        return flow.enter(state, node.on_fail, notice + (LIMIT,), notes=(note, refused))
    if done.status is not engine.QueryStatus.OK:
        raise ValueError(f"{BUDGET} answered {done.status.value!r}")
    if state.resident_id is not None:
        return record(state, node, notice + (node.prompt,), (note,))
    step = _ask_id(state, node, notice + (node.prompt, ASK_ID))
    return dataclasses.replace(step, notes=(note,))


def _ask_id(state: CallState, node: Node, prompts: tuple[str, ...]) -> Step:
    asking = dataclasses.replace(state, phase="id", repeat=(ASK_ID,))
    # One key more than an ID number: GET DATA then ends on the `#` the prompt asks for. Read
    # at exactly 18 keys, it returned before that `#`, which then interrupted the next
    # prompt and read as "skip" (seen on a real call).
    keys = node.max_digits + 1
    return engine.Step(asking, engine.Collect(prompts, keys, int(node.timeout_s * 1000), secret=True))


def record(state: CallState, node: Node, notice: tuple[str, ...] = (), notes: tuple[engine.Note, ...] = ()) -> Step:
    recording = dataclasses.replace(state, phase="record")
    return engine.Step(recording, engine.Record(notice + (RECORD,), node.silence_s, discard=state.recording), notes)


def _review(state: CallState, node: Node, notice: tuple[str, ...] = (), notes: tuple[engine.Note, ...] = ()) -> Step:
    reviewing = dataclasses.replace(state, phase="review", repeat=(node.confirm,))
    action = engine.Collect(notice + (node.confirm,), 1, int(node.timeout_s * 1000))
    return engine.Step(reviewing, action, notes)


def save(state: CallState, ended: str) -> engine.SaveMessage:
    id_number = state.id_number if state.resident_id is not None else state.message_id_number
    return engine.SaveMessage(state.recording, ended, state.reason, id_number, state.resident_id)


def _send(state: CallState, node: Node, notes: tuple[engine.Note, ...] = ()) -> Step:
    saving = dataclasses.replace(state, phase="save", awaiting=SAVE)
    return engine.Step(saving, save(saving, "complete"), notes)


def _failed_try(state: CallState, node: Node, kind: str, detail: dict[str, str]) -> tuple[CallState, engine.Note, bool]:
    """Count a failed attempt in this phase; True when the node's retries are used up."""
    tries = dict(state.tries)
    tries[node.id] = tries.get(node.id, 0) + 1
    note = engine.Note(kind, node.id, {**detail, "phase": state.phase, "attempt": tries[node.id]})
    return dataclasses.replace(state, tries=tries), note, tries[node.id] >= node.retries


def _without_id(state: CallState, node: Node, notice: tuple[str, ...], notes: tuple[engine.Note, ...]) -> Step:
    cleared = dataclasses.replace(state, tries={**state.tries, node.id: 0})
    skipped = engine.Note("message_id", node.id, {"id": "skipped"})
    return record(cleared, node, notice, notes + (skipped,))


def on_digits(flow: _Flow, state: CallState, node: Node, value: str) -> Step:
    if state.phase == "id":
        return _on_id(state, node, value)
    if state.phase == "review":
        return _on_review(state, node, value)
    return engine.Step(state, None)  # digits where none were asked: ignored by construction


def _on_id(state: CallState, node: Node, value: str) -> Step:
    # The ID number never enters the trail: only how many keys were pressed.
    masked = {"digits": "*" * len(value)}
    if value == "":
        skipped = engine.Note("message_id", node.id, {"id": "skipped"})
        return record(state, node, notes=(engine.Note("digits", node.id, masked), skipped))
    id_number = idnumber.from_keypad(value)
    problem = idnumber.problem(id_number)
    if problem is None:
        keep = dataclasses.replace(state, message_id_number=id_number, tries={**state.tries, node.id: 0})
        return record(keep, node, notes=(engine.Note("digits", node.id, masked), engine.Note("message_id", node.id)))
    failed, note, exhausted = _failed_try(state, node, "invalid", {**masked, "reason": problem.value})
    reason = f"id.{problem.value}"
    if exhausted:
        return _without_id(failed, node, (reason, ID_SKIPPED), (note,))
    return dataclasses.replace(_ask_id(failed, node, (reason, ASK_ID)), notes=(note,))


def _on_review(state: CallState, node: Node, value: str) -> Step:
    note = engine.Note("digits", node.id, {"digits": value})
    if value == KEY_LISTEN:
        playing = dataclasses.replace(state, phase="play")
        return engine.Step(playing, engine.PlayRecording(state.recording), (note,))
    if value == KEY_AGAIN:
        return record(state, node, notes=(note,))
    if value == KEY_SEND:
        return _send(state, node, (note,))
    if value == "*":
        return _review(state, node, notes=(note, engine.Note("repeat", node.id)))
    return _review_failed(state, node, "input.invalid", "invalid", {"digits": value}, (note,))


def _review_failed(
    state: CallState, node: Node, notice: str, kind: str, detail: dict[str, str], before: tuple[engine.Note, ...] = ()
) -> Step:
    failed, note, exhausted = _failed_try(state, node, kind, detail)
    if exhausted:
        # The caller neither chose nor hung up: what they said is sent rather than dropped.
        return _send(failed, node, (*before, note))
    return _review(failed, node, (notice,), (*before, note))


def on_timeout(flow: _Flow, state: CallState, node: Node) -> Step:
    if state.phase == "id":
        failed, note, exhausted = _failed_try(state, node, "timeout", {})
        if exhausted:
            return _without_id(failed, node, (ID_SKIPPED,), (note,))
        return dataclasses.replace(_ask_id(failed, node, ("input.none", ASK_ID)), notes=(note,))
    if state.phase == "review":
        return _review_failed(state, node, "input.none", "timeout", {})
    return engine.Step(state, None)


def on_recorded(flow: _Flow, state: CallState, node: Node, event: engine.Recorded) -> Step:
    if node.type != "message" or state.phase != "record":
        raise ValueError(f"a recording ended at node {node.id!r} (phase {state.phase!r}), which asked for none")
    if event.ended == "failed":
        note = engine.Note("record_failed", node.id)
        return flow.enter(dataclasses.replace(state, recording=""), node.on_fail, (FAILED,), notes=(note,))
    if event.ended == "empty":
        return _empty_take(flow, dataclasses.replace(state, recording=""), node)
    took = dataclasses.replace(state, recording=event.recording)
    return _review(took, node, notes=(engine.Note("recorded", node.id, {"ended": event.ended}),))


def _empty_take(flow: _Flow, state: CallState, node: Node) -> Step:
    # Counted apart from the ID number's tries: a wrong ID number earlier costs no take.
    key = f"{node.id}:empty"
    tries = {**state.tries, key: state.tries.get(key, 0) + 1}
    note = engine.Note("recorded", node.id, {"ended": "empty", "attempt": tries[key]})
    counted = dataclasses.replace(state, tries=tries)
    if tries[key] >= node.retries:
        return flow.enter(counted, node.on_fail, (EMPTY,), notes=(note,))
    return record(counted, node, (EMPTY,), (note,))


def on_played(flow: _Flow, state: CallState, node: Node) -> Step:
    if state.phase != "play":
        return engine.Step(state, None)
    return _review(state, node)


def on_hangup(done: CallState, event: engine.HungUp, outcome: engine.Note) -> Step:
    """The caller hung up in a message node: whatever was recorded is kept."""
    recording = event.recording or done.recording
    if not recording or done.phase == "save":
        return engine.Step(done, None, (outcome,))
    kept = dataclasses.replace(done, recording=recording, awaiting=SAVE, phase="save")
    return engine.Step(kept, save(kept, "hangup"), (outcome,))
