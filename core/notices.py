"""One notice over the channels its subject chose: the moves every room makes the same way.

The gateway (sms/) makes a notice when it takes up an event whose subject has preferences,
opens its first channel (an SMS row, a `voice_notices` row for the IVR's dialler, a
`wechat_messages` row), and moves it along its plan when that channel gives up. The room
that works a channel appends what each attempt did to the notice's history
(`notice_steps`) and ends the step with `finish`: a delivery ends the notice, a channel
that gave up leaves it `advance` for the gateway to move on. Only the channel a notice is
on can end its step, so a late answer of a channel it has left changes nothing.

    pending(sms|voice|wechat) --finish(delivered|heard)--> delivered | heard
                              --finish(gave up)----------> advance --(gateway)--> pending(next) | failed
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.orm import Session

from core.models import Notice, NoticeStep, utcnow
from core.settings import Settings
from core.states import Channel, NoticeState

NOTICES: Table = Notice.__table__  # type: ignore[assignment]
STEPS: Table = NoticeStep.__table__  # type: ignore[assignment]


def _conn(session: Session | Connection) -> Connection:
    return session.connection() if isinstance(session, Session) else session


def add_step(
    session: Session | Connection,
    notice_id: int,
    channel: str,
    outcome: str,
    detail: str = "",
    at: dt.datetime | None = None,
) -> None:
    """Append one line to the notice's history (an attempt and how it ended)."""
    _conn(session).execute(
        insert(STEPS).values(
            notice_id=notice_id, at=at or utcnow(), channel=channel, outcome=outcome[:16], detail=detail[:500]
        )
    )


def finish(
    session: Session | Connection,
    notice_id: int,
    channel: Channel | str,
    ended: NoticeState | None,
    outcome: str,
    detail: str = "",
    now: dt.datetime | None = None,
) -> bool:
    """End the notice's step on `channel`: `ended` DELIVERED or HEARD ends the notice; None
    means the channel gave up (`detail` says why), and the gateway moves the notice on.
    The step is written to the history either way. False (and nothing changed but the
    history line) if the notice is no longer pending on that channel."""
    now = now or utcnow()
    values: dict[str, object]
    if ended in (NoticeState.DELIVERED, NoticeState.HEARD):
        values = {"state": ended, "final_at": now}
    elif ended is None:
        values = {"state": NoticeState.ADVANCE, "reason": f"{channel}: {detail or outcome}"[:500]}
    else:
        raise ValueError(f"a step ends delivered, heard or given up, not {ended}")
    conn = _conn(session)
    add_step(conn, notice_id, str(channel), outcome, detail, now)
    done = conn.execute(
        update(NOTICES)
        .where(NOTICES.c.id == notice_id, NOTICES.c.state == NoticeState.PENDING, NOTICES.c.channel == str(channel))
        .values(**values)
    ).rowcount
    return bool(done)


def voice_unavailable(settings: Settings) -> str:
    """Why no notice call can be placed ("" if they can): the gateway skips the voice
    channel then, with this as the history's reason, rather than queue calls nobody places."""
    if settings.notices.max_calls == 0:
        return "notice calls are off (notices.max_calls = 0)"
    if settings.sip.outbound_trunk() is None:
        return "no outbound trunk for notice calls ([[sip.trunks]] with outbound = true)"
    return ""


@dataclass(frozen=True)
class HistoryLine:
    at: dt.datetime
    channel: str
    outcome: str
    detail: str


def history(session: Session | Connection, notice_id: int) -> list[HistoryLine]:
    rows = _conn(session).execute(
        select(STEPS.c.at, STEPS.c.channel, STEPS.c.outcome, STEPS.c.detail)
        .where(STEPS.c.notice_id == notice_id)
        .order_by(STEPS.c.id)
    )
    return [HistoryLine(*r) for r in rows]
