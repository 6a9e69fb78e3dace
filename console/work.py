"""What agents do in the console besides taking calls: wrap-ups and callbacks."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from console.errors import BadRequest, NotAllowed
from console.i18n import local_time
from core import audit
from core.db import Store, upsert
from core.masking import mask_phone
from core.models import Agent, Call, Callback, WorkOrder, Wrapup, utcnow

# `abusive`: an abusive or nuisance caller; the number is proposed for the nuisance list
# (core.blocked_callers.WRAPUP_ABUSIVE), which only a supervisor decides.
WRAPUP_CODES = ("resolved", "follow_up", "complaint", "transferred", "abusive", "other")
MAX_NOTE = 2000


@dataclass(frozen=True)
class LastCall:
    call_id: str
    caller: str  # masked
    started_at: str
    wrapup_code: str | None
    wrapup_note: str
    order_id: int | None = None  # the work order opened from this call, if any


def last_call(store: Store, agent_id: str, zone: str) -> LastCall | None:
    """The agent's current or last call, with the wrap-up saved for it so far; its time on
    the hotline's clock (`zone`, queue.timezone)."""
    with store.session() as s:
        agent = s.get(Agent, agent_id)
        call_id = agent and (agent.current_call_id or agent.last_call_id)
        call = s.get(Call, call_id) if call_id else None
        if call is None:
            return None
        wrap = s.get(Wrapup, call.id)
        order_id = s.scalar(select(WorkOrder.id).where(WorkOrder.call_id == call.id).limit(1))
        return LastCall(
            call.id,
            mask_phone(call.caller_number),
            local_time(call.started_at, zone),
            wrap.code if wrap else None,
            wrap.note if wrap else "",
            order_id,
        )


def check_wrapup(code: str, note: str) -> None:
    """BadRequest for a code or note the wrap-up refuses: checked before anything is written."""
    if code not in WRAPUP_CODES:
        raise BadRequest(f"unknown wrap-up code {code!r} (one of {', '.join(WRAPUP_CODES)})")
    if len(note) > MAX_NOTE:
        raise BadRequest(f"the note has {len(note)} characters; at most {MAX_NOTE}")


def write_wrapup(c: Connection, agent_id: str, call_id: str, code: str, note: str) -> None:
    """The wrap-up (checked by check_wrapup) in the caller's transaction, replacing one
    saved before; NotAllowed unless the call is the agent's current or last one."""
    agent = c.execute(select(Agent.current_call_id, Agent.last_call_id).where(Agent.id == agent_id)).first()
    if agent is None or call_id not in (agent.current_call_id, agent.last_call_id):
        raise NotAllowed(f"call {call_id} is not agent {agent_id}'s current or last call")
    values = {"call_id": call_id, "agent_id": agent_id, "code": code, "note": note.strip(), "saved_at": utcnow()}
    statement = upsert(c, Wrapup.__table__).values(**values)
    changed = {k: statement.excluded[k] for k in ("agent_id", "code", "note", "saved_at")}
    c.execute(statement.on_conflict_do_update(index_elements=["call_id"], set_=changed))


@dataclass(frozen=True)
class CallbackView:
    id: int
    number: str  # masked unless taken by this agent
    queue: str
    reason: str
    requested_at: str
    status: str
    agent_id: str | None
    dial_state: str | None  # the last call out placed for it (core.states.DialState)
    dial_detail: str


def _view(cb: Callback, agent_id: str, zone: str) -> CallbackView:
    number = cb.number if cb.agent_id == agent_id and cb.status == "taken" else mask_phone(cb.number)
    return CallbackView(
        cb.id,
        number,
        cb.queue,
        cb.reason,
        local_time(cb.requested_at, zone),
        cb.status,
        cb.agent_id,
        cb.dial_state,
        cb.dial_detail,
    )


def my_callbacks(store: Store, agent_id: str, queues: tuple[str, ...], zone: str) -> list[CallbackView]:
    """Open callbacks of the agent's queues, oldest first, and the ones the agent has taken."""
    stmt = (
        select(Callback)
        .where(
            ((Callback.status == "open") & Callback.queue.in_(queues))
            | ((Callback.status == "taken") & (Callback.agent_id == agent_id))
        )
        .order_by(Callback.requested_at)
        .limit(50)
    )
    with store.session() as s:
        return [_view(cb, agent_id, zone) for cb in s.scalars(stmt)]


def take_callback(store: Store, agent_id: str, callback_id: int) -> str:
    """Claim an open callback (a conditional UPDATE: two agents cannot both take it) and
    return the number to dial. Showing the full number is audited."""
    with store.session() as s:
        audit.lock_chain(s)  # before the claim's UPDATE: the order every audited transaction keeps
        taken = s.execute(
            update(Callback)
            .where(Callback.id == callback_id, Callback.status == "open")
            .values(status="taken", agent_id=agent_id)
        ).rowcount  # type: ignore[attr-defined]
        cb = s.get(Callback, callback_id)
        if cb is None:
            raise BadRequest(f"no callback {callback_id}")
        if not taken and not (cb.status == "taken" and cb.agent_id == agent_id):
            raise NotAllowed(f"callback {callback_id} is {cb.status} (agent {cb.agent_id or '-'})")
        call = s.get(Call, cb.call_id)
        audit.record(
            s,
            actor=f"console:{agent_id}",
            action="view:callback_number",
            resident_id=call.resident_id if call else None,
            call_id=cb.call_id,
        )
        return cb.number


def finish_callback(store: Store, agent_id: str, callback_id: int, outcome: str, note: str) -> None:
    if outcome not in ("done", "failed"):
        raise BadRequest("a callback ends done (reached) or failed (not reached)")
    if len(note) > MAX_NOTE:
        raise BadRequest(f"the note is longer than {MAX_NOTE} characters")
    with store.session() as s:
        done = s.execute(
            update(Callback)
            .where(Callback.id == callback_id, Callback.status == "taken", Callback.agent_id == agent_id)
            .values(status=outcome, done_at=utcnow(), note=note.strip())
        ).rowcount  # type: ignore[attr-defined]
    if not done:
        raise NotAllowed(f"callback {callback_id} is not taken by agent {agent_id}")
