"""Reading the audit trail: verifying its hash chain, and finding entries for an auditor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Select, func, select

from core.audit import AUDIT, GENESIS, ChainLink
from core.db import Store

_BATCH = 5000


@dataclass(frozen=True)
class Break:
    """The first row at which the chain does not hold."""

    id: int
    seq: int
    # altered | gap | relinked | out_of_order (the chain itself); truncated | rewritten (against a
    # head kept elsewhere or a seal); forged_seal | unsealed (core.audit_seal)
    problem: str
    detail: str


@dataclass(frozen=True)
class Head:
    """The chain's last row as it was written down outside the database (a log line, a
    printout): given to `verify`, it detects rows deleted from the end, or a chain rebuilt
    from some row on, which the chain alone cannot show."""

    seq: int
    hash: str
    mac: str = ""  # its seal's HMAC, when it was copied from a sealed head (core.audit_seal)

    @classmethod
    def parse(cls, text: str) -> Head:
        """`SEQ:HASH`, or `SEQ:HASH:MAC` for a sealed head, as `hotline audit verify` and
        `hotline serve`'s log print it."""
        seq, _, rest = text.strip().partition(":")
        digest, _, mac = rest.partition(":")
        if not seq.isdigit() or not _hex64(digest) or (mac and not _hex64(mac)):
            raise ValueError(f"not a chain head {text[:80]!r}: SEQ:HASH[:MAC], e.g. 1200:<64 hex digits>")
        return cls(int(seq), digest, mac)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}" + (f":{self.mac}" if self.mac else "")


def _hex64(text: str) -> bool:
    return len(text) == 64 and all(ch in "0123456789abcdef" for ch in text)


@dataclass(frozen=True)
class Kept:
    """A row's hash recorded outside the chain (a head kept, a seal): the chain must still
    hold row `seq` with hash `hash`. `what` names it in a Break's detail."""

    seq: int
    hash: str
    what: str


@dataclass(frozen=True)
class Verdict:
    rows: int
    head_seq: int  # the last row's seq (0 when empty): keep it elsewhere to detect truncation
    head_hash: str
    broken: Break | None
    # With a sealing key (core.audit_seal): seals checked, and the last one (seq, when made).
    seals: int | None = None
    sealed_seq: int = 0
    sealed_at: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def as_json(self) -> dict[str, Any]:
        b = self.broken
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "broken": None if b is None else {"id": b.id, "seq": b.seq, "problem": b.problem, "detail": b.detail},
            "sealed": None
            if self.seals is None
            else {
                "seals": self.seals,
                "seq": self.sealed_seq,
                "at": self.sealed_at.isoformat(timespec="seconds") if self.sealed_at else None,
                "unsealed_rows": self.head_seq - self.sealed_seq,
            },
        }


def _rows(store: Store) -> Iterator[Row[Any]]:
    """Every row in chain order, a batch per short transaction (no long-held snapshot)."""
    after: int | None = None
    while True:
        q = select(AUDIT).order_by(AUDIT.c.seq).limit(_BATCH)
        if after is not None:
            q = q.where(AUDIT.c.seq > after)
        with store.transaction() as c:
            batch = c.execute(q).all()
        yield from batch
        if len(batch) < _BATCH:
            return
        after = int(batch[-1].seq)


def check_row(r: Row[Any], last_seq: int, last_hash: str) -> Break | None:
    """What is wrong with row `r` following a row (seq, hash) = (last_seq, last_hash)."""
    seq = int(r.seq)
    if seq != last_seq + 1:
        kind = "gap" if seq > last_seq + 1 else "out_of_order"
        where = f"rows {last_seq + 1}..{seq - 1}" if seq > last_seq + 2 else f"row {last_seq + 1}"
        return Break(r.id, seq, kind, f"seq {seq} follows seq {last_seq}: {where} missing (deleted?)")
    if r.prev_hash != last_hash:
        named = "the genesis hash" if last_seq == 0 else f"row {last_seq}'s hash"
        return Break(r.id, seq, "relinked", f"prev_hash {r.prev_hash[:12]}... is not {named} {last_hash[:12]}...")
    computed = ChainLink.of(r).row_hash()
    if computed != r.row_hash:
        return Break(
            r.id, seq, "altered", f"its fields hash to {computed[:12]}..., the row says {r.row_hash[:12]}...: changed"
        )
    return None


def verify(store: Store, expect: Head | None = None, kept: Sequence[Kept] = ()) -> Verdict:
    """Walk the chain from row 1; stop at the first row that breaks it. With `expect`, a
    head written down earlier, and `kept`, hashes recorded elsewhere (seals): the chain must
    still hold each of those rows, with that hash."""
    held = {k.seq: k for k in kept}
    if expect is not None:
        held[expect.seq] = Kept(expect.seq, expect.hash, "the head kept")
    rows, last_seq, last_hash = 0, 0, GENESIS
    for r in _rows(store):
        broken = check_row(r, last_seq, last_hash)
        if broken is not None:
            return Verdict(rows, last_seq, last_hash, broken)
        rows, last_seq, last_hash = rows + 1, int(r.seq), str(r.row_hash)
        k = held.get(last_seq)
        if k is not None and last_hash != k.hash:
            detail = f"row {last_seq} hashes to {last_hash[:12]}..., {k.what} says {k.hash[:12]}...: rebuilt"
            return Verdict(rows, last_seq, last_hash, Break(int(r.id), last_seq, "rewritten", detail))
    beyond = [k for k in held.values() if k.seq > last_seq]
    if beyond:
        k = max(beyond, key=lambda k: k.seq)
        detail = f"the chain ends at seq {last_seq}, {k.what} was seq {k.seq}: rows deleted from the end"
        return Verdict(rows, last_seq, last_hash, Break(0, last_seq + 1, "truncated", detail))
    return Verdict(rows, last_seq, last_hash, None)


def head(store: Store) -> Head:
    """The chain's last row now (seq 0 and the genesis hash when it is empty)."""
    with store.transaction() as c:
        row = c.execute(select(AUDIT.c.seq, AUDIT.c.row_hash).order_by(AUDIT.c.seq.desc()).limit(1)).first()
    return Head(0, GENESIS) if row is None else Head(int(row.seq), str(row.row_hash))


@dataclass(frozen=True)
class Query:
    """What an auditor asks for; every field narrows it. `until` is exclusive."""

    resident_id: int | None = None
    actors: Sequence[str] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    channel: str | None = None
    limit: int = 5000

    def statement(self) -> Select[Any]:
        q = select(AUDIT).order_by(AUDIT.c.at, AUDIT.c.seq).limit(self.limit)
        if self.resident_id is not None:
            q = q.where(AUDIT.c.resident_id == self.resident_id)
        if self.actors:
            q = q.where(AUDIT.c.actor.in_(list(self.actors)))
        if self.since is not None:
            q = q.where(AUDIT.c.at >= self.since)
        if self.until is not None:
            q = q.where(AUDIT.c.at < self.until)
        if self.channel is not None:
            q = q.where(AUDIT.c.channel == self.channel)
        return q


@dataclass(frozen=True)
class Entry:
    id: int
    seq: int
    at: dt.datetime
    actor: str
    action: str
    channel: str
    resident_id: int | None
    call_id: str | None
    detail: str


def find(store: Store, query: Query) -> list[Entry]:
    with store.transaction() as c:
        rows = c.execute(query.statement()).all()
    return [Entry(r.id, r.seq, r.at, r.actor, r.action, r.channel, r.resident_id, r.call_id, r.detail) for r in rows]


def count(store: Store) -> int:
    with store.transaction() as c:
        return int(c.execute(select(func.count()).select_from(AUDIT)).scalar_one())


def actors_of(store: Store, name: str) -> list[str]:
    """The actor names a person's entries carry: `NAME` itself (ivr, sms), `cli:NAME`,
    `console:NAME`, and `console:AGENT_ID` for a console user who is an agent (the desk
    audits under the agent's id)."""
    from core.models import ConsoleUser

    actors = [name, f"cli:{name}", f"console:{name}"]
    with store.session() as s:
        user = s.get(ConsoleUser, name)
        if user is not None and user.agent_id:
            actors.append(f"console:{user.agent_id}")
    return actors
