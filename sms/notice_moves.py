"""The gateway's chore over notices: SMS steps whose messages are all final end the notice
(delivered) or give up; notices whose channel gave up (`advance`) go to the next usable
channel of their plan, or end failed when none is left.

Each pass takes its notices `FOR UPDATE SKIP LOCKED` on PostgreSQL, so two gateways on one
store never move the same notice; on SQLite (one writer at a time) the move is an UPDATE
conditioned on the state and step the chore read, and a notice another process moved
meanwhile is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Table, exists, literal_column, select, update

from core.business import BusinessPort
from core.calls_out import refuse
from core.db import Store
from core.errors import StoreUnavailable
from core.models import BusinessEvent, utcnow
from core.notices import NOTICES, finish, voice_unavailable
from core.preferences import DEFAULT, Preference, choose, load
from core.settings import Settings
from core.states import IN_FLIGHT, Channel, MessageState, NoticeState
from sms.channels import MESSAGES, Channels, Opening, bindings, end_failed
from sms.intake import recipients

log = logging.getLogger(__name__)
EVENTS: Table = BusinessEvent.__table__  # type: ignore[assignment]
BATCH = 200  # notices a pass takes at most


@dataclass
class Moves:
    delivered: int = 0  # SMS steps that ended the notice delivered
    gave_up: int = 0  # SMS steps none of whose messages was delivered
    moved: int = 0  # notices put on their next channel
    failed: int = 0  # notices with no channel left


def _in_state(state: str) -> ColumnElement[bool]:
    # Written out, not bound: the planner then sees the partial index's condition hold.
    return NOTICES.c.state == literal_column(f"'{state}'")


def settle_sms(c: Connection, moves: Moves, now: dt.datetime, limit: int = BATCH) -> None:
    """Notices on SMS whose messages have all reached a final state: delivered if any was,
    else the step gives up (and the notice is `advance`d, moved on by `advance`)."""
    busy = exists().where(MESSAGES.c.notice_id == NOTICES.c.id, MESSAGES.c.status.in_(IN_FLIGHT))
    chosen = (
        select(NOTICES.c.id)
        .where(_in_state(NoticeState.PENDING), NOTICES.c.channel == Channel.SMS, ~busy)
        .order_by(NOTICES.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=NOTICES)
    )
    for notice_id in list(c.scalars(chosen)):
        states = Counter(c.scalars(select(MESSAGES.c.status).where(MESSAGES.c.notice_id == notice_id)))
        told = ", ".join(f"{state} {n}" for state, n in sorted(states.items())) or "no message"
        if states[MessageState.DELIVERED]:
            finish(c, notice_id, Channel.SMS, NoticeState.DELIVERED, "delivered", told, now)
            moves.delivered += 1
        else:
            finish(c, notice_id, Channel.SMS, None, "undelivered", told, now)
            moves.gave_up += 1


def advance(c: Connection, port: BusinessPort, channels: Channels, moves: Moves, now: dt.datetime) -> None:
    """Notices whose channel gave up onto the next usable channel of their plan (a history
    line for each channel skipped), or failed with none left."""
    rows = c.execute(
        select(NOTICES, EVENTS.c.batch_id)
        .join(EVENTS, EVENTS.c.id == NOTICES.c.event_id)
        .where(_in_state(NoticeState.ADVANCE))
        .order_by(NOTICES.c.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True, of=NOTICES)
    ).all()
    if not rows:
        return
    phones: dict[tuple[str, str], list[str]] = {}
    chosen: dict[tuple[str, str], dict[str, Preference | str]] = {}
    for kind in {r.subject_kind for r in rows}:
        subjects = sorted({r.subject_id for r in rows if r.subject_kind == kind})
        found = recipients(port, kind, subjects, channels.sms.country_code, channels.destinations, channels.refused)
        phones.update(((kind, s), numbers) for s, numbers in found.items())
        chosen.update(((kind, s), prefs) for s, prefs in load(c, kind, subjects).items())
    bound = bindings(c, [r.subject_id for r in rows if r.subject_kind == "person"])
    for r in rows:
        # Taken for this pass: the state and step read above must still hold (SQLite: no
        # row lock; another process may have moved it since).
        taken = c.execute(
            update(NOTICES)
            .where(NOTICES.c.id == r.id, NOTICES.c.state == NoticeState.ADVANCE, NOTICES.c.step == r.step)
            .values(state=NoticeState.PENDING)
        ).rowcount
        if not taken:
            continue
        choice = choose(chosen.get((r.subject_kind, r.subject_id)), r.category)
        o = Opening(
            r.id,
            r.event_id,
            r.event_type,
            r.category,
            r.subject_kind,
            r.subject_id,
            r.batch_id,
            r.text,
            r.language,
            tuple(r.plan.split(",")),
            DEFAULT if isinstance(choice, str) else choice,
            phones.get((r.subject_kind, r.subject_id), []),
            bound.get(r.subject_id) if r.subject_kind == "person" else None,
        )
        opened = channels.open_from(c, o, r.step + 1, now)
        if opened.step is None:
            end_failed(c, r.id, f"every channel of {r.plan} tried: {r.reason or 'none delivered'}", now)
            moves.failed += 1
            log.info("notice %d failed: no channel of its plan left", r.id)
        else:
            moves.moved += 1
            log.info("notice %d: %s gave up, now on %s", r.id, r.channel, opened.channel)


def move_notices(store: Store, port: BusinessPort, channels: Channels, now: dt.datetime | None = None) -> Moves:
    """One pass of the chore: SMS steps settled, then notices moved on (each in its own
    transaction)."""
    now = now or utcnow()
    moves = Moves()
    with store.transaction() as c:
        settle_sms(c, moves, now)
    with store.transaction() as c:
        channels.take_refused()  # of a transaction that did not commit: tried again now
        advance(c, port, channels, moves, now)
    for where, refused in channels.take_refused():
        refuse(store, refused, where=f"notice on its next channel, {where}", actor="sms")
    return moves


async def run_moves(settings: Settings, store: Store, port: BusinessPort, stop: asyncio.Event) -> None:
    """`hotline serve`'s notice chore: a pass every `notices.poll_s` until `stop`."""
    zone, wechat, voice_off = settings.queue.timezone, settings.wechat, voice_unavailable(settings)
    channels = Channels(settings.sms, zone, wechat, voice_off, settings.destinations)
    while not stop.is_set():
        try:
            moves = await asyncio.to_thread(move_notices, store, port, channels)
            if moves.moved or moves.failed:
                log.info("notices: %d moved to their next channel, %d failed", moves.moved, moves.failed)
        except StoreUnavailable as exc:
            log.error("notice chore: store unavailable (%s); retrying", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.notices.poll_s)
