"""Call records and their trails in the store: one `calls` row and its `call_steps`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, cast

from sqlalchemy import Connection, Table, bindparam, func, select, update

from core import audit, rollups
from core.db import Store, insert_rows
from core.masking import mask_phone
from core.models import Call, CallStep, node_of, utcnow
from core.phones import clean_caller_id
from core.writer import GroupWriter, Later
from ivr.conference import call_conferences
from ivr.dialplan import ORDER_12345_PATTERN

CALLS, STEPS = cast(Table, Call.__table__), cast(Table, CallStep.__table__)  # Core writes: no ORM bookkeeping per step
# The step of a call 12345 transferred here (三方转接): {"order_no": 12345's number}.
TRANSFERRED_12345: Final = "12345"
_ORDER_12345: Final = re.compile(ORDER_12345_PATTERN)


def transferred_order(value: str) -> str | None:
    """The 12345 order number the IVR was given (its FastAGI argument), if it is one: the
    trunk's context checked it already; this checks again what reaches the store.

    >>> transferred_order("HZ20261208-0001"), transferred_order(""), transferred_order('HZ"1')
    ('HZ20261208-0001', None, None)
    """
    return value if _ORDER_12345.fullmatch(value) else None


@dataclass(frozen=True)
class TrailEntry:
    kind: str
    node: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class CallBegin:
    call_id: str
    uniqueid: str | None
    channel: str | None
    caller: str | None
    transport: str
    started_at: dt.datetime


@dataclass(frozen=True)
class CallSteps:
    call_id: str
    first_seq: int
    entries: Sequence[TrailEntry]


@dataclass(frozen=True)
class CallEnd:
    call_id: str
    outcome: str
    ended_by: str
    last_node: str | None
    resident_id: int | None
    queue: str | None
    language: str
    ended_at: dt.datetime

    @property
    def disposition(self) -> str | None:
        """A call that never reached a queue was served by the IVR alone; a transferred one
        is settled by the queue's records (AMI or queue_log)."""
        return None if self.outcome == "transferred" else "automated"


TrailOp = CallBegin | CallSteps | CallEnd


class CallSink(Protocol):
    """Where a transport records a call; the FastAGI and TwiML transports share it."""

    async def write(self, ops: Sequence[TrailOp]) -> bool:
        """Store `ops` in order; True once committed, False if the store cannot be reached."""
        ...


class SqlCallSink:
    """Trail writes through the process's group writer (core/writer.py)."""

    def __init__(self, store: Store, writer: GroupWriter | None = None) -> None:
        self.store = store
        self.writer = writer or GroupWriter(store)

    async def write(self, ops: Sequence[TrailOp]) -> bool:
        label = f"the trail of call {ops[0].call_id}" if ops else "a trail"
        return await self.writer.write([Later(_write_trail, op) for op in ops], label)


# Built once: executing a prepared statement with parameters skips building and keying a
# new statement per write (a visible share of the writer's time under load).
_END = (
    update(CALLS)
    .where(CALLS.c.id == bindparam("call_id"))
    .values(
        {
            name: bindparam(name)
            for name in (
                "ended_at",
                "outcome",
                "ended_by",
                "last_node",
                "resident_id",
                "queue",
                "language",
            )
        }
        # The queue's records (or a callback request) may have settled the call first: keep them.
        | {"disposition": func.coalesce(CALLS.c.disposition, bindparam("disposition"))}
    )
)


def _write_trail(s: Connection, ops: list[TrailOp]) -> None:
    """A batch's trail writes, every call's together: the calls begun, then the steps, then
    the calls ended (one statement each; a call's own writes keep that order)."""
    begins = [op for op in ops if isinstance(op, CallBegin)]
    steps = [op for op in ops if isinstance(op, CallSteps)]
    ends = [op for op in ops if isinstance(op, CallEnd)]
    if begins:
        insert_rows(s, CALLS, [_begin_row(op) for op in begins])
    rows = [
        {"call_id": op.call_id, "seq": op.first_seq + i, "at": e.at, "kind": e.kind, "node": e.node, "detail": e.detail}
        for op in steps
        for i, e in enumerate(op.entries)
    ]
    insert_rows(s, STEPS, rows)
    if ends:
        s.execute(_END, [_end_row(op) for op in ends])


def _begin_row(op: CallBegin) -> dict[str, object]:
    caller, flag = clean_caller_id(op.caller)
    return {
        "id": op.call_id,
        "asterisk_uniqueid": op.uniqueid,
        "channel": op.channel,
        "caller_number": caller,
        "caller_flag": flag,
        "transport": op.transport,
        "language": "zh",
        "started_at": op.started_at,
    }


def _end_row(op: CallEnd) -> dict[str, object]:
    return {
        "call_id": op.call_id,
        "ended_at": op.ended_at,
        "outcome": op.outcome,
        "ended_by": op.ended_by,
        "last_node": op.last_node,
        "resident_id": op.resident_id,
        "queue": op.queue,
        "language": op.language,
        "disposition": op.disposition,
    }


SPOOL_DIR = Path("var/spool/calls")


def spool_call(directory: Path, record: dict[str, Any]) -> Path:
    """Keep a call the store could not take, as JSON, for `hotline calls import --spool`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['id']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


def import_spool(store: Store, directory: Path) -> int:
    """Load spooled calls into the store, then remove their files. Idempotent: a step whose
    sequence number is already stored is skipped, and a call already ended is left as is."""
    imported = 0
    for path in sorted(directory.glob("*.json")):
        rec = json.loads(path.read_text(encoding="utf-8"))
        with store.session() as s:
            call = s.get(Call, rec["id"])
            if call is None:
                caller, flag = clean_caller_id(rec["caller"])
                call = Call(
                    id=rec["id"],
                    asterisk_uniqueid=rec["uniqueid"],
                    channel=rec["channel"],
                    caller_number=caller,
                    caller_flag=flag,
                    transport=rec["transport"],
                    started_at=dt.datetime.fromisoformat(rec["started_at"]),
                )
                s.add(call)
                s.flush()
            have = set(s.scalars(select(CallStep.seq).where(CallStep.call_id == rec["id"])))
            for i, entry in enumerate(rec["trail"]):
                seq = rec["first_seq"] + i
                if seq not in have:
                    s.add(
                        CallStep(
                            call_id=rec["id"],
                            seq=seq,
                            at=dt.datetime.fromisoformat(entry["at"]),
                            kind=entry["kind"],
                            node=entry["node"],
                            detail=entry["detail"],
                        )
                    )
            if call.ended_at is None:
                call.ended_at = dt.datetime.fromisoformat(rec["ended_at"])
                call.outcome, call.ended_by, call.queue = rec["outcome"], rec["ended_by"], rec["queue"]
                call.last_node, call.resident_id, call.language = rec["last_node"], rec["resident_id"], rec["language"]
                if call.disposition is None and rec["outcome"] != "transferred":
                    call.disposition = "automated"
            rollups.unseal(s.connection(), [call.started_at])  # its hour's report sums are redone
        path.unlink()
        imported += 1
    return imported


def next_seq_of(store: Store, call_id: str) -> int | None:
    """The next step number of a stored call's trail (to continue it), None if no such call."""
    with store.session() as s:
        if s.get(Call, call_id) is None:
            return None
        last = s.scalar(select(func.max(CallStep.seq)).where(CallStep.call_id == call_id))
        return 0 if last is None else int(last) + 1


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
            "node": node_of(call.asterisk_uniqueid),
            "channel": call.channel,
            "caller": mask_phone(call.caller_number),
            "caller_flag": call.caller_flag,
            "transport": call.transport,
            "language": call.language,
            "started_at": _iso(call.started_at),
            "ended_at": _iso(call.ended_at),
            "outcome": call.outcome,
            "ended_by": call.ended_by,
            "resident_id": call.resident_id,
            "queue": call.queue,
            "last_node": call.last_node,
            "disposition": call.disposition,
            "queue_entered_at": _iso(call.queue_entered_at),
            "queue_wait_s": call.queue_wait_s,
            "answered_at": _iso(call.answered_at),
            "agent": call.agent,
            "talk_s": call.talk_s,
            "queue_exit": call.queue_exit,
            "transferred_to": call.transferred_to,
            "survey": call.survey,
            "source": call.source,
            # Three-party calls: who was brought in, and each party's join, leave and talk time.
            "conferences": [dataclasses.asdict(c) for c in call_conferences(s, call_id)],
            "trail": [
                {"seq": st.seq, "at": _iso(st.at), "kind": st.kind, "node": st.node, **st.detail} for st in steps
            ],
        }
