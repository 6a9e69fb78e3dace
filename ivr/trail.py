"""Call records and their trails in the store: one `calls` row and its `call_steps`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, insert, select, update

from core import audit
from core.db import Store
from core.masking import mask_phone
from core.models import Call, CallStep, utcnow


@dataclass(frozen=True)
class TrailEntry:
    kind: str
    node: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=utcnow)


class CallSink(Protocol):
    """Where a transport records a call; the FastAGI and TwiML transports share it."""

    def begin(
        self,
        call_id: str,
        *,
        uniqueid: str | None,
        channel: str | None,
        caller: str | None,
        transport: str,
        language: str,
    ) -> None: ...
    def append(self, call_id: str, first_seq: int, entries: Sequence[TrailEntry]) -> None: ...
    def end(
        self,
        call_id: str,
        *,
        outcome: str,
        ended_by: str,
        last_node: str | None,
        resident_id: int | None,
        queue: str | None,
        language: str,
    ) -> None: ...


class SqlCallSink:
    def __init__(self, store: Store) -> None:
        self.store = store

    def begin(
        self,
        call_id: str,
        *,
        uniqueid: str | None,
        channel: str | None,
        caller: str | None,
        transport: str,
        language: str,
    ) -> None:
        with self.store.session() as s:
            s.add(
                Call(
                    id=call_id,
                    asterisk_uniqueid=uniqueid,
                    channel=channel,
                    caller_number=caller,
                    transport=transport,
                    language=language,
                    started_at=utcnow(),
                )
            )

    def append(self, call_id: str, first_seq: int, entries: Sequence[TrailEntry]) -> None:
        if not entries:
            return
        rows = [
            {"call_id": call_id, "seq": first_seq + i, "at": e.at, "kind": e.kind, "node": e.node, "detail": e.detail}
            for i, e in enumerate(entries)
        ]
        with self.store.session() as s:
            s.execute(insert(CallStep), rows)

    def end(
        self,
        call_id: str,
        *,
        outcome: str,
        ended_by: str,
        last_node: str | None,
        resident_id: int | None,
        queue: str | None,
        language: str,
    ) -> None:
        with self.store.session() as s:
            s.execute(
                update(Call)
                .where(Call.id == call_id)
                .values(
                    ended_at=utcnow(),
                    outcome=outcome,
                    ended_by=ended_by,
                    last_node=last_node,
                    resident_id=resident_id,
                    queue=queue,
                    language=language,
                )
            )


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def find_call_id(store: Store, ref: str | None = None, *, uniqueid: str | None = None) -> str | None:
    """A call id from our id, an Asterisk uniqueid, or the most recent call when both are None."""
    with store.session() as s:
        if uniqueid is not None or (ref and "-" not in ref):
            key = uniqueid or ref
            return s.scalar(
                select(Call.id).where(Call.asterisk_uniqueid == key).order_by(Call.started_at.desc()).limit(1)
            )
        if ref:
            return s.scalar(select(Call.id).where(Call.id == ref))
        return s.scalar(select(Call.id).order_by(Call.started_at.desc(), Call.id.desc()).limit(1))


def show_call(store: Store, call_id: str, *, actor: str) -> dict[str, Any]:
    """The call and its trail as plain data; the view is audited when it names a resident."""
    with store.session() as s:
        call = s.get_one(Call, call_id)
        steps = s.scalars(select(CallStep).where(CallStep.call_id == call_id).order_by(CallStep.seq)).all()
        if call.resident_id is not None:
            audit.record(s, actor=actor, action="view:call_trail", resident_id=call.resident_id, call_id=call_id)
        return {
            "id": call.id,
            "asterisk_uniqueid": call.asterisk_uniqueid,
            "channel": call.channel,
            "caller": mask_phone(call.caller_number),
            "transport": call.transport,
            "language": call.language,
            "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ended_at),
            "outcome": call.outcome,
            "ended_by": call.ended_by,
            "resident_id": call.resident_id,
            "queue": call.queue,
            "last_node": call.last_node,
            "trail": [
                {"seq": st.seq, "at": _iso(st.at), "kind": st.kind, "node": st.node, **st.detail} for st in steps
            ],
        }


def count_calls(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(Call)) or 0
