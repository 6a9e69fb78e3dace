"""One notice as `hotline notices show` prints it: the notice, every attempt on every
channel (its SMS, its call, its WeChat message) and its history, with numbers, openids
and the ID number masked. Reading it is a view of a resident's data: audited in the same
transaction (core.audit)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from core import audit
from core.masking import mask_id, mask_numbers, mask_openid, mask_phone
from core.notices import NOTICES, history
from sms.channels import MESSAGES, VOICE, WECHAT


def _when(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _attempts(c: Connection, notice_id: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in c.execute(select(MESSAGES).where(MESSAGES.c.notice_id == notice_id).order_by(MESSAGES.c.id)):
        out.append(
            {
                "channel": "sms",
                "to": mask_phone(m.recipient),
                "status": m.status,
                "attempts": m.attempts,
                "detail": mask_numbers(m.last_error or ""),
                "final_at": _when(m.final_at),
            }
        )
    for v in c.execute(select(VOICE).where(VOICE.c.notice_id == notice_id)):
        out.append(
            {
                "channel": "voice",
                "to": mask_phone(v.number),
                "status": v.status,
                "attempts": v.attempts,
                "detail": v.last_result or "",
                "final_at": _when(v.final_at),
            }
        )
    for w in c.execute(select(WECHAT).where(WECHAT.c.notice_id == notice_id)):
        out.append(
            {
                "channel": "wechat",
                "to": mask_openid(w.openid),
                "status": w.status,
                "attempts": w.attempts,
                "detail": mask_numbers(w.last_error or ""),
                "final_at": _when(w.final_at),
            }
        )
    return out


def show_notice(c: Connection, notice_id: int, *, actor: str) -> dict[str, Any] | None:
    """The notice with its attempts and history (None: no such notice); audited as
    `read:notice` by `actor`."""
    n = c.execute(select(NOTICES).where(NOTICES.c.id == notice_id)).first()
    if n is None:
        return None
    subject = mask_id(n.subject_id) if n.subject_kind == "person" else n.subject_id
    audit.record(c, actor=actor, action="read:notice", resident_id=None, detail=f"notice {notice_id} of {subject}")
    return {
        "id": n.id,
        "event_id": n.event_id,
        "event_type": n.event_type,
        "category": n.category,
        "subject": f"{n.subject_kind} {subject}",
        "plan": n.plan.split(","),
        "channel": n.channel,
        "state": n.state,
        "fallbacks": n.fallbacks,
        "language": n.language,
        "reason": mask_numbers(n.reason or "") or None,
        "created_at": _when(n.created_at),
        "final_at": _when(n.final_at),
        "text": n.text,
        "attempts": _attempts(c, notice_id),
        "history": [
            {"at": _when(h.at), "channel": h.channel, "outcome": h.outcome, "detail": mask_numbers(h.detail)}
            for h in history(c, notice_id)
        ],
    }
