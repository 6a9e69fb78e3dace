"""The audit trail: every view or change of a resident's data, by whom, through what."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.models import AuditEntry, utcnow


def record(
    session: Session, *, actor: str, action: str, resident_id: int | None, call_id: str | None = None, detail: str = ""
) -> None:
    """Add an audit entry in the caller's transaction, so the record and the read commit together."""
    session.add(
        AuditEntry(at=utcnow(), actor=actor, action=action, resident_id=resident_id, call_id=call_id, detail=detail)
    )
