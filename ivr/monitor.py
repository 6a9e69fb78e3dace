"""Supervisors listen to (监听), whisper to (耳语) or barge into (强插) an agent's call.

The platform rings the supervisor's own phone with an AMI Originate; once answered the
phone runs CTX_MONITOR, which raises the UserEvent HotlineMonitor (State: start) and runs
ChanSpy on the agent's channel with the options of the mode asked for. ChanSpy's `d` lets
the supervisor switch during the session: 4 listen, 5 whisper, 6 barge; the AMI monitor
sees those keys as DTMFEnd events on the supervisor's channel and records the change.

A session row (`monitor_sessions`) says what is going on now; the audit trail keeps every
start, mode change and end, with the supervisor as actor and the call: listening to a call
is seeing a resident's data. Only supervisors and admins; only an agent on a hotline call
(one the queue connected, `agents.current_call_id`); never a call another supervisor is
already barging into; never the agent's own phone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import select

from core.audit import lock_chain, record
from core.db import Store
from core.models import Agent, Call, ConsoleUser, MonitorSession, utcnow
from core.settings import Settings
from ivr.ami_client import AmiSession
from ivr.ami_events import failed_originate
from ivr.cluster_config import ami_targets
from ivr.dialplan import CTX_MONITOR, EXTEN_START, USEREVENT_MONITOR, VAR_MONITOR_ID, VAR_SPY_CHANNEL, VAR_SPY_OPTIONS
from ivr.errors import AmiError, MonitorRefused

log = logging.getLogger(__name__)

Mode = Literal["listen", "whisper", "barge"]
MODES: Final[tuple[Mode, ...]] = ("listen", "whisper", "barge")
# ChanSpy options (app_chanspy): b bridged calls only, q no beep, s no channel name, E end
# with the agent's channel, S end when nothing is left to spy on, d keys 4/5/6 switch mode.
BASE_OPTIONS: Final = "bqsESd"
MODE_OPTION: Final[dict[Mode, str]] = {"listen": "", "whisper": "w", "barge": "B"}
# ChanSpy's `d`: the key the supervisor presses and the mode it switches to.
MODE_KEYS: Final[dict[str, Mode]] = {"4": "listen", "5": "whisper", "6": "barge"}
SUPERVISOR_ROLES: Final = ("supervisor", "admin")
ACTION_PREFIX: Final = "hotline-monitor-"
PHONE_RING_S: Final = 30  # how long the supervisor's phone rings before the session is given up
OPEN_STATES: Final = ("ringing", "active")
# A phone the platform may ring: a PJSIP endpoint (what pjsip.conf renders for phones).
_PHONE: Final = re.compile(r"PJSIP/[A-Za-z0-9_.-]{1,40}")
# A channel name ChanSpy may be pointed at (passed through a channel variable: no commas,
# parentheses or dialplan expressions).
_CHANNEL: Final = re.compile(r"[A-Za-z]+/[A-Za-z0-9_.@;/-]{1,100}")


@dataclass(frozen=True)
class MonitorView:
    id: int
    supervisor: str
    agent_id: str
    call_id: str
    phone: str
    mode: str
    state: str
    started_at: str
    ended_at: str | None
    detail: str | None


def _view(m: MonitorSession) -> MonitorView:
    ended = m.ended_at.isoformat(timespec="seconds") if m.ended_at else None
    return MonitorView(
        m.id, m.supervisor, m.agent_id, m.call_id, m.phone, m.mode, m.state,
        m.started_at.isoformat(timespec="seconds"), ended, m.detail,
    )  # fmt: skip


def phone_interface(phone: str) -> str:
    """The supervisor's phone as a queue interface: `2001` or `PJSIP/2001`.

    >>> phone_interface("2001"), phone_interface("PJSIP/2001-web")
    ('PJSIP/2001', 'PJSIP/2001-web')
    >>> phone_interface("Local/2001@x,1")
    Traceback (most recent call last):
    ivr.errors.MonitorRefused: 'Local/2001@x,1' is not a phone (a PJSIP endpoint such as 2001 or PJSIP/2001)
    """
    interface = phone if "/" in phone else f"PJSIP/{phone}"
    if not _PHONE.fullmatch(interface):
        raise MonitorRefused(f"{phone!r} is not a phone (a PJSIP endpoint such as 2001 or PJSIP/2001)")
    return interface


def spy_options(mode: Mode) -> str:
    """ChanSpy's options for a session that starts in `mode`.

    >>> [spy_options(m) for m in MODES]
    ['bqsESd', 'bqsESdw', 'bqsESdB']
    """
    return BASE_OPTIONS + MODE_OPTION[mode]


def agent_channel(interface: str, channels: list[dict[str, Any]]) -> str | None:
    """The agent's channel in a call (bridged), among AMI Status events; None if there is none.

    >>> status = [{"Event": "Status", "Channel": "PJSIP/10010-0000000a", "BridgeID": "b2"},
    ...           {"Event": "Status", "Channel": "PJSIP/1001-00000007", "BridgeID": "b1"}]
    >>> agent_channel("PJSIP/1001", status)
    'PJSIP/1001-00000007'
    >>> agent_channel("PJSIP/1001", [{"Event": "Status", "Channel": "PJSIP/1001-00000007", "BridgeID": ""}])
    """
    prefix = interface.removesuffix("/n").replace("/n,", ",") + "-"
    for m in channels:
        name = str(m.get("Channel", ""))
        if m.get("Event") == "Status" and name.startswith(prefix) and m.get("BridgeID") and _CHANNEL.fullmatch(name):
            return name
    return None


def _supervisor_of(s: Any, username: str | None, cli_actor: str) -> str:
    """The audit actor of the session: the console account, which must be a supervisor's
    or an admin's, or (none named) whoever runs the CLI on the host."""
    if username is None:
        return cli_actor
    user = s.get(ConsoleUser, username)
    if user is None or user.disabled or user.role not in SUPERVISOR_ROLES:
        raise MonitorRefused(f"{username} is not a supervisor: only supervisors may listen to agents' calls")
    return f"console:{username}"


class Monitoring:
    """Starts sessions (the console's buttons, `hotline agents monitor`) and records what
    the AMI monitor sees of them."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock

    def open_session(
        self, *, username: str | None, agent_id: str, mode: str, phone: str, cli_actor: str = "cli"
    ) -> MonitorView:
        """Check who may listen to what, then write the ringing session and its audit entry
        in one transaction; MonitorRefused names the rule that stops it."""
        if mode not in MODES:
            raise MonitorRefused(f"mode {mode!r} is not one of {', '.join(MODES)}")
        interface = phone_interface(phone)
        with self.store.session() as s:
            lock_chain(s)  # the audit entry below is this transaction's; its chain lock first
            actor = _supervisor_of(s, username, cli_actor)
            agent = s.get(Agent, agent_id)
            if agent is None:
                raise MonitorRefused(f"no agent {agent_id}")
            if agent.current_call_id is None:
                raise MonitorRefused(f"agent {agent_id} is not on a hotline call")
            if agent.interface == interface:
                raise MonitorRefused(f"{interface} is agent {agent_id}'s own phone")
            open_ = s.scalars(
                select(MonitorSession).where(
                    MonitorSession.call_id == agent.current_call_id, MonitorSession.state.in_(OPEN_STATES)
                )
            ).all()
            barging = [m for m in open_ if m.mode == "barge"]
            if barging:
                raise MonitorRefused(f"{barging[0].supervisor} is already barging into agent {agent_id}'s call")
            if any(m.supervisor == actor for m in open_):
                raise MonitorRefused(f"{actor} is already on agent {agent_id}'s call")
            resident = s.scalar(select(Call.resident_id).where(Call.id == agent.current_call_id))
            session = MonitorSession(
                supervisor=actor, agent_id=agent_id, call_id=agent.current_call_id, phone=interface,
                mode=mode, state="ringing", started_at=self.clock(),
            )  # fmt: skip
            s.add(session)
            s.flush()
            record(
                s, actor=actor, action=f"monitor:{mode}", resident_id=resident, call_id=agent.current_call_id,
                detail=f"session {session.id}: agent {agent_id}, {interface} rung",
            )  # fmt: skip
            return _view(session)

    async def start(
        self, *, username: str | None, agent_id: str, mode: str, phone: str, cli_actor: str = "cli"
    ) -> MonitorView:
        """Open the session, find the agent's channel in Asterisk and ring the supervisor's
        phone. MonitorRefused (the session written as failed) if the call is not up in
        Asterisk or Asterisk refuses the Originate."""
        view = await asyncio.to_thread(
            self.open_session, username=username, agent_id=agent_id, mode=mode, phone=phone, cli_actor=cli_actor
        )
        interface = await asyncio.to_thread(self._interface, agent_id)
        errors: list[str] = []
        for _, target in ami_targets(self.settings):
            try:
                async with AmiSession(target) as ami:
                    channel = agent_channel(interface, await ami.send({"Action": "Status"}, as_list=True))
                    if channel is None:
                        continue
                    reply = (await ami.send(self.originate(view, channel), as_list=False))[0]
                    if reply.get("Response") != "Success":
                        errors.append(f"Asterisk refused the call to {view.phone}: {reply.get('Message', '')}")
                        break
                    return view
            except AmiError as exc:
                errors.append(f"{target.ami.host}:{target.ami.port}: {exc}")
        why = "; ".join(errors) or f"agent {agent_id}'s call is not up in Asterisk"
        await asyncio.to_thread(self.finish, view.id, "failed", why[:200])
        raise MonitorRefused(why)

    async def stop(self, session_id: int) -> MonitorView:
        """End a session from the platform (the CLI's --stop): hang up the supervisor's
        channel; the dialplan's end event then closes the row. A session still ringing or
        whose channel is gone is closed here."""
        with self.store.session() as s:
            m = s.get(MonitorSession, session_id)
            if m is None:
                raise MonitorRefused(f"no monitor session {session_id}")
            channel, state = m.spy_channel, m.state
        if state == "active" and channel:
            for _, target in ami_targets(self.settings):
                try:
                    async with AmiSession(target) as ami:
                        reply = (await ami.send({"Action": "Hangup", "Channel": channel}, as_list=False))[0]
                except AmiError as exc:
                    log.warning("monitor session %s: hang-up at %s:%s failed: %s",
                                session_id, target.ami.host, target.ami.port, exc)  # fmt: skip
                    continue
                if reply.get("Response") == "Success":
                    break
        await asyncio.to_thread(self.finish, session_id, "ended", "stopped")
        return await asyncio.to_thread(self.get, session_id)

    def get(self, session_id: int) -> MonitorView:
        with self.store.session() as s:
            m = s.get(MonitorSession, session_id)
            if m is None:
                raise MonitorRefused(f"no monitor session {session_id}")
            return _view(m)

    def _interface(self, agent_id: str) -> str:
        with self.store.session() as s:
            return s.scalar(select(Agent.interface).where(Agent.id == agent_id)) or ""

    @staticmethod
    def originate(view: MonitorView, channel: str) -> dict[str, Any]:
        mode: Mode = view.mode  # type: ignore[assignment]  # checked in open_session
        return {
            "Action": "Originate",
            "ActionID": f"{ACTION_PREFIX}{view.id}",
            "Channel": view.phone,
            "Context": CTX_MONITOR,
            "Exten": EXTEN_START,
            "Priority": "1",
            "CallerID": f"Monitor <{view.agent_id}>",
            "Timeout": str(PHONE_RING_S * 1000),
            "Async": "true",
            "Variable": [
                f"{VAR_MONITOR_ID}={view.id}",
                f"{VAR_SPY_CHANNEL}={channel}",
                f"{VAR_SPY_OPTIONS}={spy_options(mode)}",
            ],
        }

    def finish(self, session_id: int, state: str, detail: str | None = None) -> None:
        """The session ended (hung up) or failed (never answered, refused): once, audited."""
        with self.store.session() as s:
            lock_chain(s)
            m = s.get(MonitorSession, session_id)
            if m is None or m.state not in OPEN_STATES:
                return
            m.state, m.ended_at, m.detail = state, self.clock(), detail
            self._audit(s, m, f"monitor:{state}", detail or "")

    def answered(self, session_id: int, channel: str) -> None:
        with self.store.session() as s:
            m = s.get(MonitorSession, session_id)
            if m is not None and m.state == "ringing":
                m.state, m.spy_channel, m.answered_at = "active", channel[:120], self.clock()

    def switched(self, session_id: int, mode: Mode) -> None:
        """The supervisor pressed 4, 5 or 6: the session's mode now, audited."""
        with self.store.session() as s:
            lock_chain(s)
            m = s.get(MonitorSession, session_id)
            if m is None or m.state != "active" or m.mode == mode:
                return
            m.mode = mode
            self._audit(s, m, f"monitor:{mode}", "mode changed by key")

    @staticmethod
    def _audit(s: Any, m: MonitorSession, action: str, detail: str) -> None:
        resident = s.scalar(select(Call.resident_id).where(Call.id == m.call_id))
        record(
            s, actor=m.supervisor, action=action, resident_id=resident, call_id=m.call_id,
            detail=f"session {m.id}: agent {m.agent_id}" + (f", {detail}" if detail else ""),
        )  # fmt: skip

    def sessions(self, *, open_only: bool = True) -> list[MonitorView]:
        with self.store.session() as s:
            q = select(MonitorSession).order_by(MonitorSession.id.desc()).limit(200)
            if open_only:
                q = q.where(MonitorSession.state.in_(OPEN_STATES))
            return [_view(m) for m in s.scalars(q)]

    def watching(self, agent_id: str) -> list[str]:
        """The modes of the supervisors on the agent's call now (for the desk's notice)."""
        with self.store.session() as s:
            q = select(MonitorSession.mode).where(MonitorSession.agent_id == agent_id, MonitorSession.state == "active")
            return list(s.scalars(q))


@dataclass(frozen=True)
class MonitorChange:
    session_id: int
    kind: Literal["answered", "ended", "failed", "switched"]
    channel: str = ""
    mode: Mode = "listen"
    detail: str = ""


class MonitorEvents:
    """What AMI events say of monitor sessions: the UserEvent of CTX_MONITOR, a failed
    Originate, and the supervisor's 4 / 5 / 6 on the channel that is spying."""

    def __init__(self) -> None:
        self.channels: dict[str, int] = {}  # the supervisor's channel -> session id

    def feed(self, msg: dict[str, str]) -> MonitorChange | None:
        """
        >>> ev = MonitorEvents()
        >>> ev.feed({"Event": "UserEvent", "UserEvent": "HotlineMonitor", "MonitorId": "3",
        ...          "State": "start", "Channel": "PJSIP/2001-00000009"})
        MonitorChange(session_id=3, kind='answered', channel='PJSIP/2001-00000009', mode='listen', detail='')
        >>> ev.feed({"Event": "DTMFEnd", "Channel": "PJSIP/2001-00000009", "Digit": "6", "Direction": "Received"})
        MonitorChange(session_id=3, kind='switched', channel='', mode='barge', detail='')
        >>> ev.feed({"Event": "DTMFEnd", "Channel": "PJSIP/1001-00000007", "Digit": "6", "Direction": "Received"})
        >>> ev.feed({"Event": "UserEvent", "UserEvent": "HotlineMonitor", "MonitorId": "3", "State": "end",
        ...          "Channel": "PJSIP/2001-00000009"}).kind
        'ended'
        >>> ev.feed({"Event": "OriginateResponse", "ActionID": "hotline-monitor-4", "Response": "Failure",
        ...          "Reason": "3"}).detail
        "the supervisor's phone did not answer"
        """
        event = msg.get("Event")
        if event == "UserEvent" and msg.get("UserEvent") == USEREVENT_MONITOR:
            raw, channel = msg.get("MonitorId", ""), msg.get("Channel", "")
            if not raw.isdigit():
                return None
            if msg.get("State") == "start":
                self.channels[channel] = int(raw)
                return MonitorChange(int(raw), "answered", channel=channel)
            self.channels.pop(channel, None)
            return MonitorChange(int(raw), "ended")
        if event == "DTMFEnd" and msg.get("Direction") == "Received":
            session = self.channels.get(msg.get("Channel", ""))
            mode = MODE_KEYS.get(msg.get("Digit", ""))
            if session is not None and mode is not None:
                return MonitorChange(session, "switched", mode=mode)
            return None
        failed = failed_originate(msg, ACTION_PREFIX)
        if failed is not None:
            why = _PHONE_REASONS.get(failed[1], f"the supervisor's phone failed ({failed[1] or None})")
            return MonitorChange(failed[0], "failed", detail=why)
        return None


# OriginateResponse Reason: the last control frame of the phone's leg (AST_CONTROL_*).
_PHONE_REASONS: Final = {
    "0": "the supervisor's phone is not reachable (not registered?)",
    "1": "the supervisor's phone hung up",
    "3": "the supervisor's phone did not answer",
    "5": "the supervisor's phone is busy",
}


def apply(monitoring: Monitoring, change: MonitorChange) -> None:
    if change.kind == "answered":
        monitoring.answered(change.session_id, change.channel)
    elif change.kind == "switched":
        monitoring.switched(change.session_id, change.mode)
    else:
        monitoring.finish(change.session_id, change.kind, change.detail or None)
