"""Agents' skills in the store: set and checked against skills.names, and the wallboard's
per-skill figures (waiting callers from the AMI monitor, free agents with the skill)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from console import live
from core.db import Store
from core.models import Agent
from core.settings import QueueSettings, Settings, SkillSettings
from ivr.agents import AgentControl
from ivr.errors import AgentError
from ivr.skills import skills_of

SETTINGS = Settings(skills=SkillSettings(names=("en", "pension")))


class Waiting:
    def waiting(self) -> list[tuple[str, dt.datetime]]:
        now = dt.datetime.now(dt.UTC)
        return [("hotline-skill-en", now), ("hotline-skill-en", now), ("hotline-12333", now)]


def test_skills_are_kept_checked_and_shown_on_the_wallboard(store: Store) -> None:
    with store.session() as s:
        s.add(Agent(id="1001", name="A1", interface="PJSIP/1001", state="available"))
        s.add(Agent(id="1002", name="A2", interface="PJSIP/1002", state="logged_out"))
    control = AgentControl(SETTINGS, store, targets=[])
    # Logged out: stored for the next log-in, no Asterisk asked.
    assert asyncio.run(control.set_skills("1002", ["en", " EN ", "pension"])) == ["en", "pension"]
    with pytest.raises(AgentError, match="unknown skill wuu"):
        asyncio.run(control.set_skills("1002", ["wuu"]))
    assert skills_of(store, "1002") == ["en", "pension"]  # a refused change changes nothing
    assert asyncio.run(control.set_skills("1002", [])) == []
    asyncio.run(control.set_skills("1002", ["en"]))
    board = live.wallboard(store, QueueSettings(), Waiting(), None, SETTINGS.skills.names)
    assert board["by_skill"] == [
        {"skill": "en", "waiting": 2, "available": 0},  # 1002 has English but is logged out
        {"skill": "pension", "waiting": 0, "available": 0},
    ]
    assert {a["id"]: a["skills"] for a in board["agent_list"]} == {"1001": [], "1002": ["en"]}
