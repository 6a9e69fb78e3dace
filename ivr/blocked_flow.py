"""The rules for a call from a number on the nuisance list (core/blocked_callers.py): the
flow engine's part. The transport looks the caller up before the call's first step and
says so in `Start.blocked`, the treatment `ivr.blocked_treatment` names:

- `self_service`: PROMPT_BLOCKED, then the menu as for anyone, without agents. Identifying
  still takes the ID number and PIN; every way to an agent (0, the agent offer, the menu's
  transfer nodes, the fallback when the business system is down) says PROMPT_NO_AGENT and
  goes back to the menu's start, and after NO_AGENT_TRIES such refusals the call ends.
- `hang_up`: PROMPT_BLOCKED_END, then the end of the call.

The trail notes `blocked` where the treatment applied and each refused transfer. Like the
engine, these functions do no I/O and never mutate the state.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Final

from ivr import engine
from ivr.menu import Node

if TYPE_CHECKING:
    from ivr.engine import CallState, Start, Step, _Flow

TREATMENT_SELF_SERVICE: Final = "self_service"
TREATMENT_HANG_UP: Final = "hang_up"
TREATMENTS: Final = (TREATMENT_SELF_SERVICE, TREATMENT_HANG_UP)
PROMPT_BLOCKED: Final = "caller.blocked"
PROMPT_BLOCKED_END: Final = "caller.blocked_end"
PROMPT_NO_AGENT: Final = "caller.no_agent"
PROMPT_GOODBYE: Final = "goodbye"
PROMPTS: Final = (PROMPT_BLOCKED, PROMPT_BLOCKED_END, PROMPT_NO_AGENT, PROMPT_GOODBYE)
NO_AGENT_TRIES: Final = 3
# The count of refused transfers, kept among the tries: no node's id can hold a '#'.
NO_AGENT_KEY: Final = "#no_agent"


def start(flow: _Flow, event: Start) -> Step:
    """The first step of a blocked caller's call, as its treatment says."""
    if event.blocked not in TREATMENTS:
        raise ValueError(f"unknown treatment {event.blocked!r} for a blocked caller")
    first = event.node or flow.menu.start
    state = engine.CallState(node=first, language=event.language, reason=event.reason, no_agent=True)
    noted = engine.Note("blocked", first, {"treatment": event.blocked})
    if event.blocked == TREATMENT_HANG_UP:
        done = dataclasses.replace(state, finished=True)
        outcome = engine.Note("outcome", first, {"outcome": "blocked"})
        return engine.Step(done, engine.Hangup((PROMPT_BLOCKED_END,)), (noted, outcome))
    return flow.enter(state, first, (PROMPT_BLOCKED,), notes=(noted,))


def no_agent(flow: _Flow, state: CallState, node: Node, notice: tuple[str, ...]) -> Step:
    """A blocked caller's way to an agent (`node`, a transfer): refused, back to the menu's
    start; after NO_AGENT_TRIES refusals, goodbye."""
    tries = dict(state.tries)
    tries[NO_AGENT_KEY] = refused = tries.get(NO_AGENT_KEY, 0) + 1
    state = dataclasses.replace(state, tries=tries)
    note = engine.Note("blocked", node.id, {"queue": node.queue, "refused": refused})
    if refused >= NO_AGENT_TRIES:
        done = dataclasses.replace(state, finished=True)
        outcome = engine.Note("outcome", node.id, {"outcome": "blocked"})
        return engine.Step(done, engine.Hangup(notice + (PROMPT_NO_AGENT, PROMPT_GOODBYE)), (note, outcome))
    step = flow.enter(state, flow.menu.start, notice + (PROMPT_NO_AGENT,))
    return dataclasses.replace(step, notes=(note, *step.notes))
