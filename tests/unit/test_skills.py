"""Skills-based routing without Asterisk: which queue a transfer goes to, what agents join
with which penalty, and what the rendered configuration says (the calls themselves: tests/real/test_skills.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings, SkillSettings
from ivr import engine
from ivr.engine import Transfer
from ivr.menu import load_menu
from ivr.skills import member_queues, queuerules_conf, queues_conf, route

SKILLS = Settings(skills=SkillSettings(names=("en", "pension"), overflow_s=45))


def _transfer(language: str, skill: str = "") -> Transfer:
    menu = load_menu()
    if skill:
        agent = menu.nodes[menu.agent_node]
        menu.nodes[menu.agent_node] = type(agent)(**{**agent.__dict__, "skill": skill})
    state = engine.CallState(node="main", language=language)
    action = engine.step(menu, state, engine.Digits("0")).action  # 0 in the main menu reaches an agent
    assert isinstance(action, Transfer), action
    return action


def test_the_callers_language_then_the_nodes_business_line_name_the_skill() -> None:
    assert _transfer("en").skill == "en"
    assert _transfer("zh").skill == ""
    assert _transfer("zh", "pension").skill == "pension"
    assert _transfer("en", "pension").skill == "en"  # an English speaker needs English first


def test_only_a_skill_of_the_settings_changes_the_queue() -> None:
    names = SKILLS.skills.names
    assert route(names, "hotline-12333", "pension") == ("hotline-skill-pension", 0)
    assert route(names, "hotline-12333", "wuu") == ("hotline-12333", None)
    assert route((), "hotline-12333", "en") == ("hotline-12333", None)


def test_agents_join_every_skill_queue_with_their_penalty_and_the_rule_overflows() -> None:
    assert member_queues(SKILLS.skills.names, ["en"]) == [("hotline-skill-en", 0), ("hotline-skill-pension", 1)]
    assert "[hotline-skill-pension](hotline-defaults)\ndefaultrule = hotline-overflow" in queues_conf(SKILLS)
    assert "penaltychange => 45,1" in queuerules_conf(SKILLS)
    assert "[hotline-skill" not in queues_conf(Settings())  # no skills: no skill queues


@pytest.mark.parametrize("names", [("EN",), ("e",), ("en", "en"), ("en-gb",)])
def test_skill_names_are_checked(names: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError, match="skills"):
        SkillSettings(names=names)
