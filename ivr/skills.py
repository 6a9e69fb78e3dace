"""Skills-based routing: callers reach the agents who speak their language or know their
business line first, and any agent after a set wait.

Each skill of `skills.names` has its queue, hotline-skill-<name> (rendered into
queues_hotline_skills.conf, included by queues.conf). Every agent who logs in joins every
skill queue: with penalty 0 when they have the skill, 1 when not. A caller routed to a
skill queue starts with QUEUE_MAX_PENALTY 0 (only the skilled agents are rung); the queue's
rule hotline-overflow (queuerules.conf) raises it to 1 after `skills.overflow_s`, so the
caller then overflows to every agent, in the same queue and the same wait (app_queue's
penalty rules: one Queue(), one record of the call).

Which skill a caller needs: the language they chose in the menu when it is not the
hotline's own (English on 9 reaches the `en` queue), else the transfer node's `skill`
(menu.toml); neither, or a skill not in `skills.names`, keeps the node's queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from sqlalchemy import delete, select

from core.db import Store
from core.models import AgentSkill
from core.settings import Settings
from ivr.dialplan import SKILL_QUEUE_PREFIX
from ivr.errors import AgentError

OVERFLOW_RULE: Final = "hotline-overflow"
SKILLS_FILE: Final = "queues_hotline_skills.conf"
RULES_FILE: Final = "queuerules.conf"
SKILLED, UNSKILLED = 0, 1  # member penalties


def skill_queue(skill: str) -> str:
    return SKILL_QUEUE_PREFIX + skill


def route(skills: Sequence[str], queue: str, skill: str) -> tuple[str, int | None]:
    """The queue a transfer goes to, and the caller's starting QUEUE_MAX_PENALTY.

    >>> route(("en", "pension"), "hotline-12333", "en")
    ('hotline-skill-en', 0)
    >>> route(("en",), "hotline-labour", "wuu"), route((), "hotline-12333", "en")
    (('hotline-labour', None), ('hotline-12333', None))
    """
    return (skill_queue(skill), SKILLED) if skill and skill in skills else (queue, None)


def queues_conf(settings: Settings) -> str:
    """The skill queues, each like the others (hotline-defaults) with the overflow rule.

    >>> from core.settings import SkillSettings
    >>> print(queues_conf(Settings(skills=SkillSettings(names=("en",)))), end="")
    ; Written by `hotline asterisk up` from [skills]; do not edit.
    [hotline-skill-en](hotline-defaults)
    defaultrule = hotline-overflow
    """
    lines = ["; Written by `hotline asterisk up` from [skills]; do not edit."]
    for name in settings.skills.names:
        lines += [f"[{skill_queue(name)}](hotline-defaults)", f"defaultrule = {OVERFLOW_RULE}"]
    return "\n".join(lines) + "\n"


def queuerules_conf(settings: Settings) -> str:
    """app_queue's rule: `penaltychange => seconds,max_penalty` (queuerules.conf).

    >>> print(queuerules_conf(Settings()), end="")
    ; Written by `hotline asterisk up` from [skills]; do not edit.
    ; After skills.overflow_s in a skill queue, agents without the skill are rung too.
    [hotline-overflow]
    penaltychange => 30,1
    """
    return (
        "; Written by `hotline asterisk up` from [skills]; do not edit.\n"
        "; After skills.overflow_s in a skill queue, agents without the skill are rung too.\n"
        f"[{OVERFLOW_RULE}]\npenaltychange => {settings.skills.overflow_s},{UNSKILLED}\n"
    )


def member_queues(names: Sequence[str], has: Iterable[str]) -> list[tuple[str, int]]:
    """The skill queues an agent joins with their penalty in each.

    >>> member_queues(("en", "pension"), {"pension"})
    [('hotline-skill-en', 1), ('hotline-skill-pension', 0)]
    """
    mine = set(has)
    return [(skill_queue(n), SKILLED if n in mine else UNSKILLED) for n in names]


def skills_of(store: Store, agent_id: str) -> list[str]:
    with store.session() as s:
        return sorted(s.scalars(select(AgentSkill.skill).where(AgentSkill.agent_id == agent_id)))


def all_skills(store: Store) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with store.session() as s:
        for agent, skill in s.execute(select(AgentSkill.agent_id, AgentSkill.skill).order_by(AgentSkill.skill)):
            out.setdefault(agent, []).append(skill)
    return out


def save_skills(store: Store, settings: Settings, agent_id: str, skills: Iterable[str]) -> list[str]:
    """Replace the agent's skills; AgentError naming any that `skills.names` lacks."""
    wanted = sorted({s.strip().lower() for s in skills if s.strip()})
    unknown = [s for s in wanted if s not in settings.skills.names]
    if unknown:
        known = ", ".join(settings.skills.names) or "none: set [skills] names"
        raise AgentError(f"unknown skill {', '.join(unknown)} (skills.names: {known})")
    with store.session() as s:
        s.execute(delete(AgentSkill).where(AgentSkill.agent_id == agent_id))
        s.add_all(AgentSkill(agent_id=agent_id, skill=skill) for skill in wanted)
    return wanted
