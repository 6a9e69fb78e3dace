"""The audit trail: every view or change of a resident's data, by whom, through what."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.orm import Session

from core.db import Store
from core.errors import StoreUnavailable
from core.models import AuditEntry, utcnow
from core.writer import GroupWriter, Op

AUDIT = cast(Table, AuditEntry.__table__)  # Core inserts: no ORM bookkeeping on the hot path
_INSERT = insert(AUDIT)


def record(
    session: Session | Connection,
    *,
    actor: str,
    action: str,
    resident_id: int | None,
    call_id: str | None = None,
    detail: str = "",
) -> None:
    """Add an audit entry to the caller's transaction (it commits with whatever else that transaction holds)."""
    session.execute(
        _INSERT,
        {
            "at": utcnow(),
            "actor": actor,
            "action": action,
            "resident_id": resident_id,
            "call_id": call_id,
            "detail": detail,
        },
    )


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
    ) -> None:
        """Commit the entry, with `also` in the same transaction; StoreUnavailable if it cannot be.

        `wait=False` (with a group writer) queues it without waiting: for entries that hand
        out no data. The writer commits in order, so the next entry waited for lands after it.
        """
        entry = functools.partial(record, actor=actor, action=action, resident_id=resident_id, call_id=call_id)
        ops: list[Op] = [*also, entry]
        if self.writer is None:
            with self.store.transaction() as s:
                for op in ops:
                    op(s)
            return
        label = f"the audit entry {action} of call {call_id}"
        if not wait:
            self.writer.submit(ops, label)
            return
        if not self.writer.write_blocking(ops, label):
            raise StoreUnavailable(f"audit entry {action} for call {call_id} could not be stored")
