"""The audit trail: every view or change of a resident's data, by whom, through what.

The log is append-only and tamper-evident. Each row carries `seq` (1, 2, 3, ... with no
gap), `prev_hash` (row seq-1's `row_hash`; 64 zeros for row 1) and `row_hash`, the
SHA-256 of its `ChainLink`: its fields and `prev_hash`. Altering a row breaks its own
hash; deleting one leaves a gap in `seq` and a `prev_hash` that names no row. Triggers
refuse UPDATE and DELETE (migration 0024); `core.audit_log.verify` walks the chain.

Rows are written by several processes at once (FastAGI workers, the console, the SMS
dispatcher), each through its own transactions, so the head of the chain is read and
extended under a lock held to the end of the inserting transaction: on PostgreSQL a
transaction-level advisory lock, on SQLite the database's write lock (BEGIN IMMEDIATE,
unless the transaction already wrote and so holds it). The lock is taken before the
transaction's first write (`lock_chain`; the group writer takes it at the start of a batch
that carries entries), so the order of locks is the same in every transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from sqlalchemy import Connection, Table, select, text
from sqlalchemy.orm import Session

from core.db import Store, insert_rows
from core.errors import AuditLockOrder, StoreUnavailable
from core.models import AuditEntry, utcnow
from core.writer import GroupWriter, Later, Op

AUDIT = cast(Table, AuditEntry.__table__)  # Core inserts: no ORM bookkeeping on the hot path
_HEAD = select(AUDIT.c.seq, AUDIT.c.row_hash).order_by(AUDIT.c.seq.desc()).limit(1)
GENESIS = "0" * 64  # prev_hash of row 1
# pg_advisory_xact_lock's key for "the head of audit_log" (any constant no other lock uses).
CHAIN_LOCK = 0x12333_A0D17
# Takes the lock and says whether this transaction had written before (it has an id then).
_PG_LOCK = text("SELECT pg_current_xact_id_if_assigned() IS NOT NULL FROM pg_advisory_xact_lock(:key)")
# conn.info key: the transaction that holds the chain's lock on this connection.
_LOCKED_IN = "audit_chain_locked_in"
# The format's name goes into every hash: a later format can be told apart from this one.
FORMAT = "hotline-audit-v1"

CHANNELS = ("ivr", "screen_pop", "sms_reply", "work_order", "recording", "cli", "console")


def channel_of(actor: str, action: str) -> str:
    """The channel of an entry whose writer named none: what was looked at first (a screen
    pop, a work order, a recording or voice message), then who looked (the IVR, an SMS
    reply, the CLI, the console).

    >>> channel_of("ivr", "read:pension"), channel_of("console:1001", "view:screen_pop")
    ('ivr', 'screen_pop')
    >>> channel_of("sms", "read:medical"), channel_of("cli:root", "view:call_trail")
    ('sms_reply', 'cli')
    """
    _, _, subject = action.partition(":")
    subject = subject or action
    if "screen_pop" in subject:
        return "screen_pop"
    if "order" in subject:
        return "work_order"
    if "recording" in subject or "voice_message" in subject:
        return "recording"
    who = actor.split(":", 1)[0]
    if who in ("ivr", "twilio"):
        return "ivr"
    if who == "sms":
        return "sms_reply"
    if who == "console":
        return "console"
    return "cli"  # the CLI, and anything run on the host itself (a benchmark, a script)


def utc_text(at: dt.datetime) -> str:
    """The instant as both databases give it back: UTC, to the microsecond."""
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ChainLink:
    """The fields of an audit row that its hash covers, in the order the hash takes them.

    The writer builds one to insert (`values`), the verifier one from each row it reads
    back (`of`): both hash exactly these fields, so a field cannot be hashed by one and
    not the other. Adding a field changes every hash: change FORMAT with it.
    """

    seq: int
    at: dt.datetime
    actor: str
    action: str
    resident_id: int | None
    call_id: str | None
    detail: str
    channel: str
    prev_hash: str

    @classmethod
    def of(cls, row: Any) -> ChainLink:
        """The link a row read from audit_log (anything with these attributes) holds."""
        return cls(*(getattr(row, name) for name in LINK_FIELDS))

    def canonical(self) -> bytes:
        """The bytes the hash covers: a JSON array of FORMAT and the fields in order, no
        spaces, UTF-8 (one encoding of each value, whatever the database and driver).

        >>> at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        >>> ChainLink(1, at, "ivr", "read:pension", 7, "c-1", "", "ivr", GENESIS).canonical()[:60]
        b'["hotline-audit-v1",1,"2026-01-02T03:04:05.000000+00:00","iv'
        """
        values = [getattr(self, name) for name in LINK_FIELDS]
        encoded = [utc_text(v) if isinstance(v, dt.datetime) else v for v in values]
        return json.dumps([FORMAT, *encoded], ensure_ascii=False, separators=(",", ":")).encode()

    def row_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    def values(self) -> dict[str, object]:
        """The row to insert: the fields and their hash."""
        return {**{name: getattr(self, name) for name in LINK_FIELDS}, "row_hash": self.row_hash()}


LINK_FIELDS = tuple(f.name for f in fields(ChainLink))


def lock_chain(session: Session | Connection) -> None:
    """Take the chain's lock for the rest of this transaction: first, before the transaction
    writes anything, in every transaction that appends an entry.

    Always in that order, no transaction can hold the lock while waiting for a row another
    transaction wrote first and then waits for the lock with: on PostgreSQL that is a
    deadlock, one transaction aborted after `deadlock_timeout`. So a transaction that has
    written (it has a transaction id) before taking the lock is refused with AuditLockOrder.
    Taking it again in the same transaction costs nothing (`record` takes it if not yet taken).
    """
    conn = session.connection() if isinstance(session, Session) else session
    here = conn.get_transaction()
    if here is not None and conn.info.get(_LOCKED_IN) is here:
        return
    if conn.dialect.name == "postgresql":
        if conn.execute(_PG_LOCK, {"key": CHAIN_LOCK}).scalar_one():
            raise AuditLockOrder(
                "an audit entry in a transaction that wrote before taking the chain's lock"
                " (call core.audit.lock_chain first): refused, that order can deadlock"
            )
    elif conn.dialect.name == "sqlite":
        raw = conn.connection.driver_connection
        # pysqlite begins a transaction only before its first write: until then a read of the
        # head could be overtaken by another process's insert. BEGIN IMMEDIATE takes the write
        # lock now (SQLite's docs, "BEGIN TRANSACTION"); once written, the lock is held already
        # (one writer at a time: no order to keep).
        if raw is not None and not getattr(raw, "in_transaction", True):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    conn.info[_LOCKED_IN] = conn.get_transaction()  # begun by now, if it was not before (autobegin)


def _head(conn: Connection) -> tuple[int, str]:
    """The last row's seq and hash (read under the chain's lock)."""
    head = conn.execute(_HEAD).first()
    return (0, GENESIS) if head is None else (int(head.seq), str(head.row_hash))


def record(
    session: Session | Connection,
    *,
    actor: str,
    action: str,
    resident_id: int | None,
    call_id: str | None = None,
    detail: str = "",
    channel: str | None = None,
) -> None:
    """Add an audit entry to the caller's transaction (it commits with whatever else that
    transaction holds); `channel` defaults to `channel_of(actor, action)`. Before the
    transaction's first write: call it, or `lock_chain`, first (AuditLockOrder if not)."""
    conn = session.connection() if isinstance(session, Session) else session
    append(conn, [Entry.of(actor, action, resident_id, call_id, detail, channel)])


@dataclass(frozen=True)
class Entry:
    """An audit entry waiting for its place in the chain (the group writer's `Later`)."""

    actor: str
    action: str
    resident_id: int | None
    call_id: str | None
    detail: str
    channel: str

    @classmethod
    def of(
        cls, actor: str, action: str, resident_id: int | None, call_id: str | None, detail: str, channel: str | None
    ) -> Entry:
        """`channel` defaults to `channel_of(actor, action)`; ValueError if it is none of CHANNELS."""
        chosen = channel or channel_of(actor, action)
        if chosen not in CHANNELS:
            raise ValueError(f"audit channel {chosen!r} is not one of {', '.join(CHANNELS)}")
        return cls(actor, action, resident_id, call_id, detail, chosen)


def append(conn: Connection, entries: list[Entry]) -> None:
    """Add `entries` to the chain in order, in the caller's transaction, on one read of the
    head: the same rows, links and lock as `record` once per entry."""
    lock_chain(conn)
    last, prev = _head(conn)
    rows = []
    for e in entries:
        last += 1
        link = ChainLink(last, utcnow(), e.actor, e.action, e.resident_id, e.call_id, e.detail, e.channel, prev)
        row = link.values()
        prev = str(row["row_hash"])
        rows.append(row)
    insert_rows(conn, AUDIT, rows)


class Auditor:
    """Writes audit entries, through the process's group writer when there is one, and
    returns only once they are committed: data is handed out only after its audit entry."""

    def __init__(self, store: Store, writer: GroupWriter | None = None) -> None:
        self.store = store
        self.writer = writer

    def record(
        self,
        *,
        actor: str,
        action: str,
        resident_id: int | None,
        call_id: str | None,
        also: Sequence[Op] = (),
        wait: bool = True,
        detail: str = "",
        channel: str | None = None,
    ) -> None:
        """Commit the entry, with `also` in the same transaction; StoreUnavailable if it cannot be.

        `wait=False` (with a group writer) queues it without waiting: for entries that hand
        out no data. The writer commits in order, so the next entry waited for lands after it.
        """
        entry = Later(append, Entry.of(actor, action, resident_id, call_id, detail, channel))
        ops: list[Op] = [*also, entry]
        if self.writer is None:
            with self.store.transaction() as s:
                lock_chain(s)
                for op in ops:
                    op(s)
            return
        label = self._label(action, call_id)
        if not wait:
            self.writer.submit(ops, label, lock=lock_chain)
            return
        if not self.writer.write_blocking(ops, label, lock=lock_chain):
            raise StoreUnavailable(f"audit entry {action} for call {call_id} could not be stored")

    async def record_async(
        self, *, actor: str, action: str, resident_id: int | None, call_id: str | None, detail: str = ""
    ) -> None:
        """`record` (waited for) from the event loop, through the group writer."""
        if self.writer is None:
            raise ValueError("record_async needs the group writer")
        entry = Later(append, Entry.of(actor, action, resident_id, call_id, detail, None))
        if not await self.writer.write([entry], self._label(action, call_id), lock=lock_chain, waited=True):
            raise StoreUnavailable(f"audit entry {action} for call {call_id} could not be stored")

    @staticmethod
    def _label(action: str, call_id: str | None) -> str:
        return f"the audit entry {action} of call {call_id}"
