"""The rules of a `prefs` node (通知设置): the flow engine's part of choosing how notices come.

Only an identified caller reaches it (the engine's gate sends anyone else to identification
first, then back here). On the way in it asks `Query("prefs")` for the caller's choice for
all notices (category '*'); the answer is kept in `CallState.prefs` while the caller stays in
the node, so a repeat, a wrong key or silence re-prompts without another read. The answer's
data is what the store says, in words the engine can speak:

    {"channels": "voice,sms", "language": "zh", "wechat": True, "voice_calls": True, "others": 0}

`wechat`: the ID number is bound to WeChat; `voice_calls`: whether notice calls may ring
the number they go to (the row's number to call, else the registered phone; None when there
is none on record); `others`: categories with
a choice of their own, which this menu does not change.

The keys: 1 text messages only, 2 a call to the registered phone first then a text message,
3 WeChat first then a text message (bound callers only; the others hear how to bind), 4
notices in the other language, 5 stop notice calls to this number or allow them again. A
change is `Query("prefs_change")` or `Query("voice_calls")`; its answer is the choice as it
now stands, said back after `prefs.saved`, then the menu again. `*`, `0`, other options
(9: main menu), wrong keys and silence work as in every menu. Like the engine, these
functions do no I/O and never mutate the state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from ivr import engine
from ivr.menu import PREFS_KEYS, PREFS_PROMPTS, Node

if TYPE_CHECKING:
    from ivr.engine import CallState, Step, _Flow

READ: Final = "prefs"
CHANGE: Final = "prefs_change"
VOICE_CALLS: Final = "voice_calls"
QUERIES: Final = (READ, CHANGE, VOICE_CALLS)
CHOICES: Final = {"1": "sms", "2": "voice,sms", "3": "wechat,sms"}
KEY_WECHAT, KEY_LANGUAGE, KEY_VOICE_CALLS = "3", "4", "5"
WECHAT_UNBOUND, NO_NUMBER_TO_CALL = "wechat_unbound", "no_number"  # why a change was refused

(CURRENT, THEN, CH_SMS, CH_VOICE, CH_WECHAT, LANG_ZH, LANG_EN, CALLS_STOPPED, OTHERS, SAVED) = PREFS_PROMPTS[:10]
(CALLS_ALLOWED, UNBOUND, NO_NUMBER, MENU_SMS, MENU_VOICE, MENU_WECHAT, MENU_TO_EN, MENU_TO_ZH) = PREFS_PROMPTS[10:18]
(MENU_STOP, MENU_ALLOW) = PREFS_PROMPTS[18:]
CHANNEL_WORDS: Final = {"sms": CH_SMS, "voice": CH_VOICE, "wechat": CH_WECHAT}
LANGUAGE_WORDS: Final = {"zh": LANG_ZH, "en": LANG_EN}
MENU_TO: Final = {"zh": MENU_TO_EN, "en": MENU_TO_ZH}  # key 4, by the notices' language now


def enter(flow: _Flow, state: CallState, node: Node, notice: tuple[str, ...]) -> Step:
    gated = flow.gate(state, node, notice)
    if gated is not None:
        return gated
    if state.prefs:  # read on this visit already: a re-prompt, not a new read
        return _menu(state, node, notice)
    waiting = dataclasses.replace(state, awaiting=READ, carry=notice)
    return engine.Step(waiting, engine.Query(READ, _whose(state)))


def _whose(state: CallState) -> dict[str, Any]:
    return {"resident_id": state.resident_id, "id_number": state.id_number}


def describe(prefs: Mapping[str, Any]) -> tuple[str, ...]:
    """The choice read out: its channels in order, its language; stopped calls if stopped."""
    words: list[str] = [CURRENT]
    for i, name in enumerate(str(prefs.get("channels") or "sms").split(",")):
        words += [THEN, CHANNEL_WORDS[name]] if i else [CHANNEL_WORDS[name]]
    words.append(LANGUAGE_WORDS[str(prefs.get("language", "zh"))])
    if prefs.get("voice_calls") is False:
        words.append(CALLS_STOPPED)
    return tuple(words)


def choices(node: Node, prefs: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys on offer now: WeChat only to a bound caller, 4 and 5 as the opposite of now."""
    offered = [MENU_SMS, MENU_VOICE]
    if prefs.get("wechat"):
        offered.append(MENU_WECHAT)
    offered.append(MENU_TO[str(prefs.get("language", "zh"))])
    offered.append(MENU_ALLOW if prefs.get("voice_calls") is False else MENU_STOP)
    return (*offered, node.prompt)


def _menu(state: CallState, node: Node, notice: tuple[str, ...], notes: tuple[engine.Note, ...] = ()) -> Step:
    asking = dataclasses.replace(state, phase="menu", repeat=describe(state.prefs) + choices(node, state.prefs))
    action = engine.Collect(notice + choices(node, state.prefs), 1, int(node.timeout_s * 1000))
    return engine.Step(asking, action, notes)


def on_digits(flow: _Flow, state: CallState, node: Node, value: str) -> Step:
    if state.phase != "menu":
        return engine.Step(state, None)  # digits where none were asked: ignored by construction
    note = engine.Note("digits", node.id, {"digits": value})
    if value == "":
        return flow.on_timeout(state)
    if value == "*":
        repeat = engine.Note("repeat", node.id)
        return _menu(state, node, describe(state.prefs), (note, repeat))
    if value not in PREFS_KEYS:
        return flow.on_key(state, node, value)  # 0, the node's own options, wrong keys
    if value in CHOICES:
        return _choose(state, node, value, note)
    if value == KEY_LANGUAGE:
        other = "en" if state.prefs.get("language", "zh") == "zh" else "zh"
        return _ask(state, CHANGE, {"language": other}, note)
    if state.prefs.get("voice_calls") is None:
        return _refused(state, node, NO_NUMBER_TO_CALL, (), (note,))
    return _ask(state, VOICE_CALLS, {"allowed": state.prefs.get("voice_calls") is False}, note)


def _choose(state: CallState, node: Node, key: str, note: engine.Note) -> Step:
    if key == KEY_WECHAT and not state.prefs.get("wechat"):
        return _refused(state, node, WECHAT_UNBOUND, (), (note,))
    return _ask(state, CHANGE, {"channels": CHOICES[key]}, note)


def _ask(state: CallState, name: str, change: dict[str, Any], note: engine.Note) -> Step:
    waiting = dataclasses.replace(state, phase="change", awaiting=name)
    return engine.Step(waiting, engine.Query(name, {**_whose(state), **change}), (note,))


def _refused(
    state: CallState, node: Node, reason: str, notice: tuple[str, ...], notes: tuple[engine.Note, ...]
) -> Step:
    """Nothing changes: the caller hears why, then the menu again."""
    refused = engine.Note("refused", node.id, {"reason": reason})
    if reason == WECHAT_UNBOUND:
        unbound = dataclasses.replace(state, prefs={**state.prefs, "wechat": False})
        return _menu(unbound, node, (*notice, UNBOUND), (*notes, refused))
    if reason == NO_NUMBER_TO_CALL:
        unknown = dataclasses.replace(state, prefs={**state.prefs, "voice_calls": None})
        return _menu(unknown, node, (*notice, NO_NUMBER), (*notes, refused))
    raise ValueError(f"a notice settings change refused for {reason!r}")


def on_result(
    flow: _Flow, state: CallState, node: Node, done: engine.QueryDone, carry: tuple[str, ...], note: engine.Note
) -> Step:
    """A read leads to the choice and the menu; a change to `saved`, the choice now, the menu.
    A change the store refused (WeChat unbound since the read) is said and changes nothing."""
    if done.status is engine.QueryStatus.REFUSED:
        return _refused(state, node, str(done.data.get("reason", "")), carry, (note,))
    if done.status is not engine.QueryStatus.OK:
        raise ValueError(f"{done.name} answered {done.status.value!r}")
    known = dataclasses.replace(state, prefs=dict(done.data))
    if done.name == READ:
        said = carry + describe(known.prefs) + ((OTHERS,) if known.prefs.get("others") else ())
        return _menu(known, node, said, (note,))
    if done.name == VOICE_CALLS:
        said = (SAVED, CALLS_ALLOWED if known.prefs.get("voice_calls") else CALLS_STOPPED)
        return _menu(known, node, carry + said, (note,))
    return _menu(known, node, (*carry, SAVED, *describe(known.prefs)), (note,))
