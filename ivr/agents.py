"""Agent control through AMI: log in (QueueAdd), log out (QueueRemove), pause with a
reason and unpause (QueuePause). The desired state lives in the store, so it survives a
restart of the console or of `hotline serve`, and `restore` re-applies it to Asterisk.
In a cluster every node gets each change (each node queues its own callers; the edge
rings an agent's phone for one call at a time): a node that is down gets it from
`restore` when its AMI monitor logs in again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from core.db import Store
from core.models import Agent, AgentEvent, utcnow
from core.settings import Settings
from ivr.ami_client import AmiSession
from ivr.cluster_config import ami_targets
from ivr.dialplan import QUEUE_GENERAL, SKILL_QUEUE_PREFIX
from ivr.errors import AgentError, AmiError
from ivr.skills import member_queues, save_skills, skills_of

log = logging.getLogger(__name__)
# AMI answers these when the member is already in the state asked for: not a failure.
ALREADY = ("already there", "not there", "interface not found")


@dataclass(frozen=True)
class AgentView:
    id: str
    name: str
    interface: str
    queues: tuple[str, ...]
    state: str
    pause_reason: str | None


def _view(a: Agent) -> AgentView:
    return AgentView(a.id, a.name, a.interface, tuple(q for q in a.queues.split(",") if q), a.state, a.pause_reason)


class AgentControl:
    def __init__(self, settings: Settings, store: Store, *, targets: Sequence[Settings] | None = None) -> None:
        self.settings = settings
        self.store = store
        # The Asterisks to tell: the one, every node of a cluster, or those given.
        self.targets = list(targets) if targets is not None else [t for _, t in ami_targets(settings)]

    async def _ami(self, actions: list[dict[str, Any]]) -> None:
        """Send the actions to every target; an Asterisk that cannot be reached is skipped
        while another took them (it gets them from `restore` when it is back)."""
        unreachable: list[str] = []
        for target in self.targets:
            try:
                await self._ami_one(target, actions)
            except AmiError as exc:
                if len(self.targets) == 1:
                    raise
                unreachable.append(f"{target.ami.host}:{target.ami.port} ({exc})")
        if unreachable and len(unreachable) == len(self.targets):
            raise AgentError("no Asterisk node answers AMI: " + "; ".join(unreachable))
        for where in unreachable:
            log.warning("agent change not applied at %s: applied when its monitor logs in again", where)

    @staticmethod
    async def _ami_one(target: Settings, actions: list[dict[str, Any]]) -> None:
        async with AmiSession(target) as ami:
            for action in actions:
                reply = (await ami.send(action, as_list=False))[0]
                response = str(reply.get("Response", ""))
                message = str(reply.get("Message", ""))
                if response != "Success" and not any(a in message.lower() for a in ALREADY):
                    raise AgentError(f"Asterisk refused {action['Action']} for {action.get('Interface')}: {message}")

    def _get(self, agent_id: str) -> Agent:
        with self.store.session() as s:
            agent = s.get(Agent, agent_id)
        if agent is None:
            raise AgentError(f"no agent {agent_id!r}: log in first (hotline agents login)")
        return agent

    def _save(self, agent: Agent, kind: str, reason: str | None = None) -> AgentView:
        agent.updated_at = utcnow()
        with self.store.session() as s:
            s.merge(agent)
            s.execute(insert(AgentEvent).values(agent_id=agent.id, at=agent.updated_at, kind=kind, reason=reason))
        log.info("agent %s: %s%s", agent.id, kind, f" ({reason})" if reason else "")
        return _view(agent)

    async def login(
        self,
        agent_id: str,
        name: str,
        interface: str,
        queues: tuple[str, ...] = (QUEUE_GENERAL,),
        *,
        paused: bool = False,
        reason: str | None = None,
    ) -> AgentView:
        # Every skill queue too, skilled or not: the penalty says which (ivr/skills.py).
        penalties = dict(member_queues(self.settings.skills.names, skills_of(self.store, agent_id)))
        queues = (*[q for q in queues if q not in penalties], *penalties)
        await self._ami(
            [
                {
                    "Action": "QueueAdd",
                    "Queue": q,
                    "Interface": interface,
                    "MemberName": name,
                    "Paused": "true" if paused else "false",
                    **({"Penalty": str(penalties[q])} if q in penalties else {}),
                    **({"Reason": reason} if paused and reason else {}),
                }
                for q in queues
            ]
        )
        agent = Agent(
            id=agent_id,
            name=name,
            interface=interface,
            queues=",".join(queues),
            state="paused" if paused else "available",
            pause_reason=reason if paused else None,
        )
        self._save(agent, "login")
        return self._save(agent, "pause", reason) if paused else _view(agent)

    async def logout(self, agent_id: str) -> AgentView:
        agent = self._get(agent_id)
        skill_queues = {q for q, _ in member_queues(self.settings.skills.names, ())}
        await self._ami(
            [
                {"Action": "QueueRemove", "Queue": q, "Interface": agent.interface}
                for q in _view(agent).queues
                if not q.startswith(SKILL_QUEUE_PREFIX) or q in skill_queues  # one [skills] lost is gone
            ]
        )
        agent.state, agent.pause_reason = "logged_out", None
        return self._save(agent, "logout")

    async def pause(self, agent_id: str, reason: str) -> AgentView:
        agent = self._get(agent_id)
        if agent.state == "logged_out":
            raise AgentError(f"agent {agent_id} is logged out")
        await self._ami([{"Action": "QueuePause", "Interface": agent.interface, "Paused": "true", "Reason": reason}])
        agent.state, agent.pause_reason = "paused", reason
        return self._save(agent, "pause", reason)

    async def unpause(self, agent_id: str) -> AgentView:
        agent = self._get(agent_id)
        if agent.state == "logged_out":
            raise AgentError(f"agent {agent_id} is logged out")
        await self._ami([{"Action": "QueuePause", "Interface": agent.interface, "Paused": "false"}])
        agent.state, agent.pause_reason = "available", None
        return self._save(agent, "unpause")

    async def set_skills(self, agent_id: str, skills: list[str]) -> list[str]:
        """Replace the agent's skills; a logged-in agent's penalties change at once
        (QueuePenalty, or QueueAdd into a skill queue they are not in yet)."""
        saved = save_skills(self.store, self.settings, agent_id, skills)
        with self.store.session() as s:
            agent = s.get(Agent, agent_id)
        if agent is None or agent.state == "logged_out":
            log.info("agent %s: skills %s (from the next log-in)", agent_id, ",".join(saved) or "none")
            return saved
        joined = [q for q in agent.queues.split(",") if q]
        actions: list[dict[str, Any]] = []
        for queue, penalty in member_queues(self.settings.skills.names, saved):
            if queue in joined:
                actions.append({"Action": "QueuePenalty", "Interface": agent.interface, "Penalty": str(penalty),
                                "Queue": queue})  # fmt: skip
            else:
                actions.append({"Action": "QueueAdd", "Queue": queue, "Interface": agent.interface,
                                "MemberName": agent.name, "Penalty": str(penalty),
                                "Paused": "true" if agent.state == "paused" else "false"})  # fmt: skip
                joined.append(queue)
        await self._ami(actions)
        with self.store.session() as s:
            s.execute(update(Agent).where(Agent.id == agent_id).values(queues=",".join(joined)))
        log.info("agent %s: skills %s, at once", agent_id, ",".join(saved) or "none")
        return saved

    def list(self) -> list[AgentView]:
        with self.store.session() as s:
            return [_view(a) for a in s.scalars(select(Agent).order_by(Agent.id))]

    async def restore(self) -> int:
        """Re-apply every logged-in agent's state to Asterisk (after its restart, or ours)."""
        restored = 0
        for a in self.list():
            if a.state == "logged_out":
                continue
            try:
                penalties = dict(member_queues(self.settings.skills.names, skills_of(self.store, a.id)))
                await self._ami(
                    [
                        {
                            "Action": "QueueAdd",
                            "Queue": q,
                            "Interface": a.interface,
                            "MemberName": a.name,
                            "Paused": "true" if a.state == "paused" else "false",
                            **({"Penalty": str(penalties[q])} if q in penalties else {}),
                        }
                        # A skill queue the settings no longer have is gone from Asterisk too.
                        for q in a.queues
                        if not q.startswith(SKILL_QUEUE_PREFIX) or q in penalties
                    ]
                )
                restored += 1
            except (AgentError, AmiError) as exc:
                log.error("agent %s: could not restore state %s: %s", a.id, a.state, exc)
        return restored
