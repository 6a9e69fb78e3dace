"""The audit trail: every view or change of a resident's data, by whom, through what."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from core.models import AuditEntry, utcnow


def record(
    session: Session, *, actor: str, action: str, resident_id: int | None, call_id: str | None = None, detail: str = ""
) -> None:
    """Add an audit entry to the caller's transaction (it commits with whatever else that transaction holds)."""
    session.execute(
        insert(AuditEntry).values(
            at=utcnow(), actor=actor, action=action, resident_id=resident_id, call_id=call_id, detail=detail
        )
    )
