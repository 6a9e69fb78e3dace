"""Three-party calls (三方通话, GB/T 33358): an agent brings a department's expert, or
another phone, into the caller's call; the three talk in a ConfBridge, and the agent may
leave the caller with the expert or stay to the end.

1. `start` (the desk's button, the desk phone's feature code, the CLI) checks the agent's
   call and the number, finds the caller's and the agent's channels in Asterisk (AMI
   Status: the agent's channel and the other one in its bridge), writes the conference
   and its audit entry, and rings the member with an AMI Originate into CTX_CONFERENCE.
   The caller and the agent keep talking meanwhile; a member who does not answer ends it
   there (`failed`), and nobody was moved.
2. When the member is in the ConfBridge (ConfbridgeJoin), the AMI monitor moves the caller
   and the agent into it: AMI Setvar of each one's role (and the conference recording's
   path on the caller's channel), then one Redirect of both.
3. ConfbridgeJoin and ConfbridgeLeave are each party's leg (`conference_legs`); a caller
   left alone is let go (ConfbridgeKick) to the survey; ConfbridgeEnd ends the conference.

A department's number (sip.departments) brings in a free agent of that department's queue
(available, not on a call, longest idle first) on their own phone, without queueing: the
consultation is not a caller in that queue and no call record is made for it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sqlalchemy import exists, select, update

from core.audit import lock_chain, record
from core.db import Store
from core.models import Agent, Call, Conference, ConferenceLeg, SipPhone, utcnow
from core.settings import Settings
from ivr.ami_client import AmiSession
from ivr.ami_events import failed_originate
from ivr.cluster_config import ami_targets
from ivr.dialplan import (
    CONFERENCE_PREFIX,
    CTX_CONFERENCE,
    USEREVENT_CONFERENCE,
    VAR_CONFERENCE_RECORDING,
    VAR_CONFERENCE_ROLE,
)
from ivr.errors import AmiError, ConferenceRefused
from ivr.recordings import recording_path

log = logging.getLogger(__name__)

ACTION_PREFIX: Final = "hotline-conference-"
MEMBER_RING_S: Final = 30  # how long the member's phone rings before the conference is given up
OPEN_STATES: Final = ("dialing", "active")
Party = Literal["caller", "agent", "member"]


@dataclass(frozen=True)
class Leg:
    party: str
    joined_at: str
    left_at: str | None
    talk_s: int | None


@dataclass(frozen=True)
class ConferenceView:
    id: int
    call_id: str
    agent_id: str
    target_kind: str
    target: str
    state: str
    started_at: str
    ended_at: str | None
    detail: str | None
    legs: list[Leg] = field(default_factory=list)


def _iso(at: dt.datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at else None


def _view(c: Conference, legs: list[ConferenceLeg]) -> ConferenceView:
    shown = [
        Leg(
            leg.party,
            leg.joined_at.isoformat(timespec="seconds"),
            _iso(leg.left_at),
            round((leg.left_at - leg.joined_at).total_seconds()) if leg.left_at else None,
        )
        for leg in legs
    ]
    return ConferenceView(
        c.id, c.call_id, c.agent_id, c.target_kind, c.target, c.state,
        c.started_at.isoformat(timespec="seconds"), _iso(c.ended_at), c.detail, shown,
    )  # fmt: skip


def bridged_pair(interface: str, status: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The agent's channel and the caller's (the other channel in the agent's bridge),
    among AMI Status events; None unless the agent is bridged to exactly one other channel.

    >>> status = [{"Event": "Status", "Channel": "PJSIP/trunk-carrier-00000003", "BridgeID": "b1"},
    ...           {"Event": "Status", "Channel": "PJSIP/1001-00000004", "BridgeID": "b1"},
    ...           {"Event": "Status", "Channel": "PJSIP/1002-00000005", "BridgeID": ""}]
    >>> bridged_pair("PJSIP/1001", status)
    ('PJSIP/1001-00000004', 'PJSIP/trunk-carrier-00000003')
    >>> bridged_pair("PJSIP/1002", status)
    """
    prefix = interface.removesuffix("/n") + "-"
    channels = [m for m in status if m.get("Event") == "Status"]
    agent = next((m for m in channels if str(m.get("Channel", "")).startswith(prefix) and m.get("BridgeID")), None)
    if agent is None:
        return None
    others = [m for m in channels if m.get("BridgeID") == agent["BridgeID"] and m is not agent]
    return (str(agent["Channel"]), str(others[0]["Channel"])) if len(others) == 1 else None


def conference_id(name: str) -> int | None:
    """Our conference id from ConfBridge's name.

    >>> conference_id("hotline-12"), conference_id("sales-12"), conference_id("hotline-x")
    (12, None, None)
    """
    raw = name.removeprefix(CONFERENCE_PREFIX)
    return int(raw) if name.startswith(CONFERENCE_PREFIX) and raw.isdigit() else None


@dataclass(frozen=True)
class ConferenceChange:
    conference_id: int
    kind: Literal["joined", "left", "ended", "failed", "requested"]
    channel: str = ""
    uniqueid: str = ""
    detail: str = ""


def change_of(msg: dict[str, str]) -> ConferenceChange | None:
    """What an AMI event says of a conference, if anything.

    >>> change_of({"Event": "ConfbridgeJoin", "Conference": "hotline-3", "Channel": "PJSIP/1002-00000009",
    ...            "Uniqueid": "1765.9"})
    ConferenceChange(conference_id=3, kind='joined', channel='PJSIP/1002-00000009', uniqueid='1765.9', detail='')
    >>> change_of({"Event": "ConfbridgeEnd", "Conference": "hotline-3"}).kind
    'ended'
    >>> change_of({"Event": "OriginateResponse", "ActionID": "hotline-conference-3", "Response": "Failure",
    ...            "Reason": "5"}).detail
    'the phone is busy'
    >>> change_of({"Event": "ConfbridgeJoin", "Conference": "other-3", "Channel": "x", "Uniqueid": "1"})
    """
    event = msg.get("Event")
    if event == "UserEvent" and msg.get("UserEvent") == USEREVENT_CONFERENCE:
        # An agent's *5 on a desk phone: no conference yet (0), the number keyed as detail.
        return ConferenceChange(0, "requested", msg.get("Channel", ""), msg.get("Uniqueid", ""), msg.get("Target", ""))
    if event in ("ConfbridgeJoin", "ConfbridgeLeave", "ConfbridgeEnd"):
        conf = conference_id(msg.get("Conference", ""))
        if conf is None:
            return None
        kind: Literal["joined", "left", "ended"] = (
            "joined" if event == "ConfbridgeJoin" else "left" if event == "ConfbridgeLeave" else "ended"
        )
        return ConferenceChange(conf, kind, msg.get("Channel", ""), msg.get("Uniqueid", ""))
    failed = failed_originate(msg, ACTION_PREFIX)
    if failed is not None:
        why = _REASONS.get(failed[1], f"the phone failed ({failed[1] or None})")
        return ConferenceChange(failed[0], "failed", detail=why)
    return None


# OriginateResponse Reason: the last control frame of the member's leg (AST_CONTROL_*).
_REASONS: Final = {
    "0": "the phone is not reachable (not registered?)",
    "1": "the phone hung up",
    "3": "the phone did not answer",
    "5": "the phone is busy",
}


def in_conference(agent: Any) -> Any:
    """SQL: the agent is in an active conference they have not left (their call goes on
    there after Queue's bridge ended, so AgentComplete does not end it for the desk)."""
    left = select(ConferenceLeg.id).where(
        ConferenceLeg.conference_id == Conference.id, ConferenceLeg.party == "agent", ConferenceLeg.left_at.is_not(None)
    )
    return exists(
        select(Conference.id).where(Conference.agent_id == agent.id, Conference.state == "active", ~exists(left))
    )


class Conferences:
    """Starts three-party calls and follows them from the AMI events."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock

    # --- starting ---------------------------------------------------------------------

    def _target(self, s: Any, agent: Agent, target: str) -> tuple[str, str, str]:
        """(kind, what the record names, the interface rung) for a number the agent keyed."""
        target = target.strip()
        departments = {number: queue for queue, number in self.settings.sip.departments.items()}
        if target in departments:
            queue = departments[target]
            free = s.scalars(
                select(Agent)
                .where(
                    Agent.state == "available",
                    Agent.current_call_id.is_(None),
                    Agent.id != agent.id,
                    Agent.interface.like("PJSIP/%"),
                )
                .order_by(Agent.updated_at)
            ).all()
            member = next((a for a in free if queue in a.queues.split(",")), None)
            if member is None:
                raise ConferenceRefused(f"no agent of {queue} ({target}) is free to join the call")
            return "department", f"{queue} {target}: agent {member.id}"[:64], member.interface
        phone = s.get(SipPhone, target)
        if phone is not None:
            if phone.agent_id == agent.id:
                raise ConferenceRefused(f"{target} is agent {agent.id}'s own phone")
            return "phone", target, f"PJSIP/{target}"
        numbers = ", ".join(sorted(departments)) or "none set"
        raise ConferenceRefused(
            f"{target!r} is neither a department's number (sip.departments: {numbers}) nor a phone of this hotline"
        )

    def open_conference(
        self, *, agent_id: str, target: str, actor: str, caller_channel: str, agent_channel: str
    ) -> tuple[ConferenceView, str]:
        with self.store.session() as s:
            lock_chain(s)  # the audit entry below is this transaction's
            agent = s.get(Agent, agent_id)
            if agent is None or agent.current_call_id is None:
                raise ConferenceRefused(f"agent {agent_id} is not on a hotline call")
            busy = s.scalar(
                select(Conference.id).where(
                    Conference.call_id == agent.current_call_id, Conference.state.in_(OPEN_STATES)
                )
            )
            if busy is not None:
                raise ConferenceRefused(f"agent {agent_id}'s call already has a three-party call ({busy})")
            kind, label, interface = self._target(s, agent, target)
            conf = Conference(
                call_id=agent.current_call_id, agent_id=agent_id, actor=actor, target_kind=kind, target=label,
                member_interface=interface, caller_channel=caller_channel, agent_channel=agent_channel,
                state="dialing", started_at=self.clock(),
            )  # fmt: skip
            s.add(conf)
            s.flush()
            resident = s.scalar(select(Call.resident_id).where(Call.id == conf.call_id))
            record(
                s, actor=actor, action="conference:add", resident_id=resident, call_id=conf.call_id,
                detail=f"conference {conf.id}: agent {agent_id} adds {kind} {label}",
            )  # fmt: skip
            return _view(conf, []), interface

    async def start(self, *, agent_id: str, target: str, actor: str) -> ConferenceView:
        """Ring the member; ConferenceRefused (and the conference `failed`) if it cannot."""
        interface = await asyncio.to_thread(self._interface, agent_id)
        errors: list[str] = []
        for _, node in ami_targets(self.settings):
            try:
                async with AmiSession(node) as ami:
                    pair = bridged_pair(interface, await ami.send({"Action": "Status"}, as_list=True))
                    if pair is None:
                        continue
                    view, member = await asyncio.to_thread(
                        self.open_conference,
                        agent_id=agent_id,
                        target=target,
                        actor=actor,
                        caller_channel=pair[1],
                        agent_channel=pair[0],
                    )
                    reply = (await ami.send(self.originate(view, member), as_list=False))[0]
                    if reply.get("Response") == "Success":
                        return view
                    why = f"Asterisk refused to ring {member}: {reply.get('Message', '')}"
                    await asyncio.to_thread(self.finish, view.id, "failed", why)
                    raise ConferenceRefused(why)
            except AmiError as exc:
                errors.append(f"{node.ami.host}:{node.ami.port}: {exc}")
        raise ConferenceRefused("; ".join(errors) or f"agent {agent_id} is not talking to a caller in Asterisk")

    def _interface(self, agent_id: str) -> str:
        with self.store.session() as s:
            agent = s.get(Agent, agent_id)
            return agent.interface if agent is not None else ""

    def originate(self, view: ConferenceView, interface: str) -> dict[str, Any]:
        return {
            "Action": "Originate",
            "ActionID": f"{ACTION_PREFIX}{view.id}",
            "Channel": interface,
            "Context": CTX_CONFERENCE,
            "Exten": str(view.id),
            "Priority": "1",
            # What the member's phone shows (ASCII: AMI is sent so): the hotline and the agent.
            "CallerID": f"12333 agent {view.agent_id} <{self.settings.sip.hotline_number}>",
            "Timeout": str(MEMBER_RING_S * 1000),
            "Async": "true",
            "Variable": [f"{VAR_CONFERENCE_ROLE}=member"],
        }

    # --- following --------------------------------------------------------------------

    async def apply(self, change: ConferenceChange, node: Settings) -> None:
        """One AMI change, with the AMI actions it calls for on the node it happened on."""
        if change.kind == "requested":
            await self._requested(change)
        elif change.kind == "failed":
            await asyncio.to_thread(self.finish, change.conference_id, "failed", change.detail)
        elif change.kind == "ended":
            await asyncio.to_thread(self.finish, change.conference_id, "ended")
        elif change.kind == "joined":
            move = await asyncio.to_thread(self._joined, change)
            if move is not None:
                await self._move_in(move, node)
        else:
            alone = await asyncio.to_thread(self._left, change)
            if alone is not None:
                await self._action(node, {"Action": "ConfbridgeKick", "Conference": alone[0], "Channel": alone[1]})

    def _agents(self) -> list[tuple[str, str]]:
        with self.store.session() as s:
            return [(a, i) for a, i in s.execute(select(Agent.id, Agent.interface))]

    async def _requested(self, change: ConferenceChange) -> None:
        """The agent keyed *5 and a number on their desk phone: as the desk's button does."""
        agents = await asyncio.to_thread(self._agents)
        agent = next((a for a, i in agents if change.channel.startswith(i.removesuffix("/n") + "-")), None)
        if agent is None:
            log.warning("conference: *5 from %s, which is no agent's phone", change.channel)
            return
        try:
            view = await self.start(agent_id=agent, target=change.detail, actor=f"phone:{agent}")
        except ConferenceRefused as exc:
            log.warning("conference: agent %s keyed %r on the desk phone: %s", agent, change.detail, exc)
            return
        log.info("conference %s: agent %s rings %s (desk phone)", view.id, agent, view.target)

    def _joined(self, change: ConferenceChange) -> Conference | None:
        """Record the leg; the conference to move the caller and the agent into when this
        is its member arriving."""
        with self.store.session() as s:
            conf = s.get(Conference, change.conference_id)
            if conf is None:
                return None
            party: Party = (
                "caller"
                if change.channel == conf.caller_channel
                else "agent"
                if change.channel == conf.agent_channel
                else "member"
            )
            if s.scalar(select(ConferenceLeg.id).where(
                ConferenceLeg.conference_id == conf.id, ConferenceLeg.uniqueid == change.uniqueid
            )) is None:  # fmt: skip
                s.add(
                    ConferenceLeg(
                        conference_id=conf.id,
                        party=party,
                        channel=change.channel[:120],
                        uniqueid=change.uniqueid[:40],
                        joined_at=self.clock(),
                    )
                )
            if party == "agent":  # the agent's call goes on here: the desk keeps its screen pop
                s.execute(update(Agent).where(Agent.id == conf.agent_id).values(current_call_id=conf.call_id))
            if party == "member" and conf.state == "dialing":
                conf.state = "active"
                s.flush()
                s.expunge(conf)
                return conf
            return None

    async def _move_in(self, conf: Conference, node: Settings) -> None:
        path = recording_path(self.clock().date())
        actions = [
            {"Action": "Setvar", "Channel": conf.caller_channel, "Variable": VAR_CONFERENCE_ROLE, "Value": "caller"},
            {"Action": "Setvar", "Channel": conf.caller_channel, "Variable": VAR_CONFERENCE_RECORDING, "Value": path},
            {"Action": "Setvar", "Channel": conf.agent_channel, "Variable": VAR_CONFERENCE_ROLE, "Value": "agent"},
            {
                "Action": "Redirect",
                "Channel": conf.caller_channel,
                "ExtraChannel": conf.agent_channel,
                "Context": CTX_CONFERENCE,
                "Exten": str(conf.id),
                "Priority": "1",
                "ExtraContext": CTX_CONFERENCE,
                "ExtraExten": str(conf.id),
                "ExtraPriority": "1",
            },
        ]
        try:
            async with AmiSession(node) as ami:
                for action in actions:
                    reply = (await ami.send(action, as_list=False))[0]
                    if reply.get("Response") != "Success":
                        raise ConferenceRefused(f"{action['Action']}: {reply.get('Message', '')}")
        except (AmiError, ConferenceRefused) as exc:
            # The call ended while the member's phone rang, or AMI went away: the member
            # is let go and the conference recorded as failed; the call itself is as it was.
            log.warning("conference %s: the caller and the agent could not be moved in: %s", conf.id, exc)
            await asyncio.to_thread(self.finish, conf.id, "failed", f"not moved in: {exc}"[:200])
            await self._action(node, {"Action": "ConfbridgeKick", "Conference": f"{CONFERENCE_PREFIX}{conf.id}",
                                      "Channel": "all"})  # fmt: skip

    def _left(self, change: ConferenceChange) -> tuple[str, str] | None:
        """Record the leave; (conference, caller's channel) when the caller is left alone."""
        with self.store.session() as s:
            conf = s.get(Conference, change.conference_id)
            if conf is None:
                return None
            legs = s.scalars(select(ConferenceLeg).where(ConferenceLeg.conference_id == conf.id)).all()
            for leg in legs:
                if leg.uniqueid == change.uniqueid and leg.left_at is None:
                    leg.left_at = self.clock()
                    if leg.party == "agent":
                        s.execute(
                            update(Agent)
                            .where(Agent.id == conf.agent_id, Agent.current_call_id == conf.call_id)
                            .values(current_call_id=None, last_call_id=conf.call_id)
                        )
            still = [leg for leg in legs if leg.left_at is None]
            if conf.state == "active" and len(still) == 1 and still[0].party == "caller":
                return f"{CONFERENCE_PREFIX}{conf.id}", still[0].channel
            return None

    def finish(self, conference: int, state: str, detail: str | None = None) -> None:
        """Ended (ConfBridge ended it) or failed: once, audited with each leg's time."""
        with self.store.session() as s:
            lock_chain(s)
            conf = s.get(Conference, conference)
            if conf is None or conf.state not in OPEN_STATES:
                return
            conf.state, conf.ended_at, conf.detail = state, self.clock(), detail
            legs = s.scalars(select(ConferenceLeg).where(ConferenceLeg.conference_id == conf.id)).all()
            for leg in legs:
                leg.left_at = leg.left_at or conf.ended_at
            if state == "ended":  # everybody left: the agent's call is over, if the desk still showed it
                s.execute(
                    update(Agent)
                    .where(Agent.id == conf.agent_id, Agent.current_call_id == conf.call_id)
                    .values(current_call_id=None, last_call_id=conf.call_id)
                )
            resident = s.scalar(select(Call.resident_id).where(Call.id == conf.call_id))
            view = _view(conf, list(legs))
            talk = ", ".join(f"{leg.party} {leg.talk_s} s" for leg in view.legs)
            record(
                s, actor=conf.actor, action=f"conference:{state}", resident_id=resident, call_id=conf.call_id,
                detail=f"conference {conf.id}" + (f": {detail}" if detail else "") + (f"; {talk}" if talk else ""),
            )  # fmt: skip

    async def leave(self, agent_id: str) -> ConferenceView:
        """The agent leaves the three-party call (the desk's button): the caller stays with the member."""
        conf_id, channel = await asyncio.to_thread(self._active, agent_id)
        name = f"{CONFERENCE_PREFIX}{conf_id}"
        for _, node in ami_targets(self.settings):
            if await self._action(node, {"Action": "ConfbridgeKick", "Conference": name, "Channel": channel}):
                break
        return await asyncio.to_thread(self.get, conf_id)

    def _active(self, agent_id: str) -> tuple[int, str]:
        """The agent's active three-party call and their channel in it."""
        with self.store.session() as s:
            conf = s.scalars(
                select(Conference).where(Conference.agent_id == agent_id, Conference.state == "active")
            ).first()
            if conf is None:
                raise ConferenceRefused(f"agent {agent_id} is in no three-party call")
            return conf.id, conf.agent_channel

    @staticmethod
    async def _action(node: Settings, action: dict[str, Any]) -> bool:
        try:
            async with AmiSession(node) as ami:
                reply = (await ami.send(action, as_list=False))[0]
        except AmiError as exc:
            log.warning("conference: %s at %s:%s failed: %s", action["Action"], node.ami.host, node.ami.port, exc)
            return False
        return bool(reply.get("Response") == "Success")

    # --- reading ----------------------------------------------------------------------

    def get(self, conference: int) -> ConferenceView:
        with self.store.session() as s:
            conf = s.get(Conference, conference)
            if conf is None:
                raise ConferenceRefused(f"no three-party call {conference}")
            return _view(conf, self._legs(s, conf.id))

    def of_call(self, call_id: str) -> list[ConferenceView]:
        with self.store.session() as s:
            return call_conferences(s, call_id)

    def of_agent(self, agent_id: str) -> ConferenceView | None:
        """The agent's three-party call going on now and not left by them, for the desk."""
        left = select(ConferenceLeg.id).where(
            ConferenceLeg.conference_id == Conference.id,
            ConferenceLeg.party == "agent",
            ConferenceLeg.left_at.is_not(None),
        )
        with self.store.session() as s:
            conf = s.scalars(
                select(Conference)
                .where(Conference.agent_id == agent_id, Conference.state.in_(OPEN_STATES), ~exists(left))
                .order_by(Conference.id.desc())
            ).first()
            return _view(conf, self._legs(s, conf.id)) if conf is not None else None

    @staticmethod
    def _legs(s: Any, conference: int) -> list[ConferenceLeg]:
        return _legs(s, conference)


def _legs(s: Any, conference: int) -> list[ConferenceLeg]:
    q = select(ConferenceLeg).where(ConferenceLeg.conference_id == conference).order_by(ConferenceLeg.id)
    return list(s.scalars(q))


def call_conferences(s: Any, call_id: str) -> list[ConferenceView]:
    """The call's three-party calls with their legs, in the caller's session."""
    confs = s.scalars(select(Conference).where(Conference.call_id == call_id).order_by(Conference.id)).all()
    return [_view(c, _legs(s, c.id)) for c in confs]
