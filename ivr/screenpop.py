"""What an agent's console shows when a call connects: who the caller is (verified in the
IVR, masked), what they did in the menu, and an account summary. Only the agent on that
call may see it; every view, and every refused request, is audited."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from core import audit
from core.business import BusinessPort
from core.db import Store
from core.errors import HotlineError
from core.masking import mask_id, mask_phone
from core.models import Agent, Call, CallStep, Hotline12345Order
from ivr.conference import in_conference
from ivr.trail import TRANSFERRED_12345


class NotOnThisCall(HotlineError):
    """An agent asked for the caller's data of a call they are not on."""


def agent_on_call(store: Store, interface: str, uniqueid: str) -> str | None:
    """AgentConnect: the agent on `interface` now talks to the caller `uniqueid`; returns our call id."""
    with store.session() as s:
        call_id = s.scalar(select(Call.id).where(Call.asterisk_uniqueid == uniqueid))
        values = {"current_call_id": call_id, **({"last_call_id": call_id} if call_id else {})}
        s.execute(update(Agent).where(Agent.interface == interface).values(**values))
    return call_id


def clear_finished_agent_calls(store: Store, in_call: set[str]) -> int:
    """After an AMI outage: agents not in a call now (per QueueStatus) are off their call."""
    with store.session() as s:
        result = s.execute(
            update(Agent)
            .where(Agent.current_call_id.is_not(None), Agent.interface.not_in(in_call or {""}))
            .values(current_call_id=None)
        )
        return int(cast(CursorResult[Any], result).rowcount)


def agent_off_call(store: Store, interface: str) -> None:
    """AgentComplete: the agent on `interface` left the caller's bridge; still on the call
    when that was to go on in a three-party call (ivr/conference.py ends it there)."""
    with store.session() as s:
        s.execute(update(Agent).where(Agent.interface == interface, ~in_conference(Agent)).values(current_call_id=None))


@dataclass(frozen=True)
class ScreenPop:
    call_id: str
    caller: str
    verified: bool
    name: str | None
    id_number: str | None  # masked
    phone: str | None  # masked
    menu_path: list[str]
    queries: list[str]
    pension_balance_fen: int | None
    pension_months: int | None
    medical_balance_fen: int | None
    resident_id: int | None = None  # who the caller proved to be: the console links their settings by it
    # A call 12345 transferred here (三方转接): 12345's order number, and our work order of
    # that number if 12345 sent it to us (hotline12345_orders), for the agent to open.
    order_12345: str | None = None
    order_12345_id: int | None = None


def screen_pop(store: Store, port: BusinessPort, agent_id: str, call_id: str) -> ScreenPop:
    actor = f"console:{agent_id}"
    with store.session() as s:
        agent = s.get(Agent, agent_id)
        call = s.get(Call, call_id)
        allowed = agent is not None and call is not None and agent.current_call_id == call_id
        if not allowed or call is None:
            # Recorded in this transaction, which commits: the refusal is raised after it.
            audit.record(
                s,
                actor=actor,
                action="denied:screen_pop",
                resident_id=call.resident_id if call else None,
                call_id=call_id,
                detail="agent not on this call",
            )
            steps: list[CallStep] = []
            resident_id = caller = order_12345 = None
            order_12345_id = None
        else:
            steps = list(s.scalars(select(CallStep).where(CallStep.call_id == call_id).order_by(CallStep.seq)))
            resident_id, caller = call.resident_id, call.caller_number
            order_12345 = next((str(st.detail["order_no"]) for st in steps if st.kind == TRANSFERRED_12345), None)
            order_12345_id = _our_order(s, order_12345) if order_12345 else None
    if not allowed:
        raise NotOnThisCall(f"agent {agent_id} is not on call {call_id}")
    menu_path = [st.node for st in steps if st.kind == "node" and st.node]
    queries = [str(st.detail.get("query")) for st in steps if st.kind == "result" and st.detail.get("status") == "ok"]
    summary: dict[str, Any] = {"pension_balance_fen": None, "pension_months": None, "medical_balance_fen": None}
    name = id_number = phone = None
    if resident_id is not None:
        person = port.person(resident_id)
        pension, medical = port.pension(resident_id), port.medical(resident_id)
        name, id_number, phone = person.name, mask_id(person.id_number), mask_phone(person.phone)
        summary = {
            "pension_balance_fen": pension.balance_fen,
            "pension_months": pension.months,
            "medical_balance_fen": medical.balance_fen,
        }
    with store.session() as s:
        audit.record(s, actor=actor, action="view:screen_pop", resident_id=resident_id, call_id=call_id)
    return ScreenPop(
        call_id,
        mask_phone(caller),
        resident_id is not None,
        name,
        id_number,
        phone,
        menu_path,
        queries,
        **summary,
        resident_id=resident_id,
        order_12345=order_12345,
        order_12345_id=order_12345_id,
    )


def _our_order(s: Session, order_no: str) -> int | None:
    """Our work order of 12345's number (the first taken, should two counterparts share it)."""
    query = select(Hotline12345Order.order_id).where(Hotline12345Order.order_no == order_no)
    return s.scalar(query.order_by(Hotline12345Order.received_at).limit(1))
