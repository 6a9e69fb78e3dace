"""The store side of sending: claim due messages, record each segment's answer, apply
receipts, retry or bury. Synchronous functions over Core statements, run in threads by
the dispatcher; every state change is one short transaction.

States of a message: queued -> sending -> submitted -> delivered | undelivered | expired |
rejected | deleted | unknown; or back to queued (throttled, temporary error, lost link);
or failed (permanent SMSC error, or the dead letter after `max_attempts`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    Table,
    bindparam,
    delete,
    exists,
    func,
    literal_column,
    select,
    update,
)

from core import metrics
from core.db import Store, among, among_param, chunks, insert_rows, upsert
from core.models import BusinessEvent, SmsBatch, SmsMessage, SmsReceipt, SmsSegment
from core.states import EventState, MessageState
from sms.receipts import FinalState

MESSAGES: Table = SmsMessage.__table__  # type: ignore[assignment]
SEGMENTS: Table = SmsSegment.__table__  # type: ignore[assignment]
RECEIPTS: Table = SmsReceipt.__table__  # type: ignore[assignment]
BATCHES: Table = SmsBatch.__table__  # type: ignore[assignment]
FINAL = tuple(s.value for s in FinalState)
# States written out in statements that should read a partial index by state, not bound
# parameters: only then can the planner see that the index's condition holds.
QUEUED: ColumnElement[str] = literal_column(f"'{MessageState.QUEUED}'")
SENDING: ColumnElement[str] = literal_column(f"'{MessageState.SENDING}'")
SUBMITTED: ColumnElement[str] = literal_column(f"'{MessageState.SUBMITTED}'")


@dataclass(frozen=True)
class Due:
    """A claimed message: what to send, and which segments the SMSC has taken already."""

    id: int
    recipient: str
    text: str
    attempts: int
    accepted: frozenset[int]
    priority: int = 1  # 0: instant
    refusals: int = 0  # temporary refusals so far (not attempts: nothing was accepted)
    category: str | None = None  # the template's category (CMPP: its Src_Id extension)


class LockAndUpdate:
    """UPDATE the rows a `SELECT id ... FOR UPDATE SKIP LOCKED` chooses; returns `returned`.
    Built once, run with bind parameters: a claim builds no statement, so SQLAlchemy finds
    its compiled form without walking a new statement's tree for a cache key (a tenth of a
    dispatcher's CPU when it built them afresh on every claim).

    PostgreSQL: two statements, the rows chosen and locked in index order, then updated by
    primary key. As one UPDATE ... WHERE id IN (that SELECT), with statistics older than a
    bulk load (they say the table is nearly empty) it joined every pending row to the chosen
    ones in a nested loop: 3.6 s for one claim of 500 events out of 20,000, 100 ms for
    200 messages; and once it re-ran the SELECT for every row.
    SQLite: one statement, the SELECT as a subquery and `still` re-checked: a transaction
    that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT) if another connection
    wrote in between. `ordered`: read the SELECT's index in its ORDER BY (in_index_order).
    """

    def __init__(
        self,
        table: Table,
        chosen: Select[Any],
        still: ColumnElement[bool],
        values: dict[str, Any],
        returned: tuple[Any, ...],
        *,
        ordered: bool = True,
    ) -> None:
        key = table.c.id
        self.chosen = chosen
        self.ordered = ordered
        by_id = among_param("postgresql", key, "ids")
        self.update_by_id = update(table).where(by_id).values(**values).returning(*returned)
        self.update_chosen = (
            update(table).where(key.in_(chosen.scalar_subquery()), still).values(**values).returning(*returned)
        )

    def run(self, c: Connection, params: dict[str, Any]) -> list[Row[Any]]:
        if c.dialect.name == "postgresql":
            if self.ordered:
                in_index_order(c)
            ids = list(c.scalars(self.chosen, params))
            if not ids:
                return []
            return list(c.execute(self.update_by_id, {**params, "ids": ids}).all())
        return list(c.execute(self.update_chosen, params).all())


def _claim_statement(instant_only: bool) -> LockAndUpdate:
    # Per candidate, a probe of the small partial index of numbers being sent to
    # (ix_sms_messages_sending), not a scan of every row that passed through `sending`.
    other = MESSAGES.alias("other")
    busy = exists().where(other.c.recipient == MESSAGES.c.recipient, other.c.status == SENDING)
    paused = select(BATCHES.c.id).where(BATCHES.c.status == "paused").scalar_subquery()
    due = (
        select(MESSAGES.c.id)
        .where(
            MESSAGES.c.status == QUEUED,
            MESSAGES.c.next_attempt_at <= bindparam("now"),
            ~busy,
            MESSAGES.c.batch_id.is_(None) | MESSAGES.c.batch_id.not_in(paused),
            *([MESSAGES.c.priority == 0] if instant_only else []),
        )
        .order_by(MESSAGES.c.priority, MESSAGES.c.next_attempt_at, MESSAGES.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    claim = {
        "status": MessageState.SENDING,
        "claimed_by": bindparam("p_worker"),
        "claimed_at": bindparam("p_now"),
        "attempts": MESSAGES.c.attempts + 1,
    }
    returned = (
        MESSAGES.c.id,
        MESSAGES.c.recipient,
        MESSAGES.c.text,
        MESSAGES.c.attempts,
        MESSAGES.c.last_error,
        MESSAGES.c.priority,
        MESSAGES.c.refusals,
        MESSAGES.c.category,
    )
    return LockAndUpdate(MESSAGES, due, MESSAGES.c.status == QUEUED, claim, returned)


CLAIM = {instant_only: _claim_statement(instant_only) for instant_only in (False, True)}


def claim_due(
    store: Store,
    worker: str,
    limit: int,
    reclaim_after: dt.timedelta,
    now: dt.datetime,
    *,
    reclaim: bool = True,
    instant_only: bool = False,
) -> list[Due]:
    """Take up to `limit` due messages: instant before batch, oldest first, skipping rows
    another dispatcher holds (SKIP LOCKED on PostgreSQL) and recipients already being sent to.
    `reclaim`: first requeue the messages of dispatchers that died mid-send (a dispatcher
    does that once a second, not on every claim). `instant_only`: instant ones only."""
    if reclaim:
        reclaim_stale(store, reclaim_after, now)
    with store.transaction() as c:
        rows = CLAIM[instant_only].run(c, {"now": now, "limit": limit, "p_worker": worker, "p_now": now})
        # Only a message that went out before can have segments the SMSC took: every way
        # back to the queue (requeue, release, reclaim) leaves a last_error.
        again = [r.id for r in rows if r.last_error is not None or r.attempts > 1]
        taken: dict[int, set[int]] = {}
        if again:
            for message_id, seq in c.execute(
                select(SEGMENTS.c.message_id, SEGMENTS.c.seq).where(
                    among(c, SEGMENTS.c.message_id, again), SEGMENTS.c.smsc_id.is_not(None)
                )
            ):
                taken.setdefault(message_id, set()).add(seq)
    return sorted(
        (
            Due(
                r.id,
                r.recipient,
                r.text,
                r.attempts,
                frozenset(taken.get(r.id, ())),
                r.priority,
                r.refusals,
                r.category,
            )
            for r in rows
        ),
        key=lambda d: d.id,
    )


def reclaim_stale(store: Store, reclaim_after: dt.timedelta, now: dt.datetime) -> int:
    """Messages whose dispatcher died mid-send: queued again, marked as possible duplicates."""
    with store.transaction() as c:
        result = c.execute(
            update(MESSAGES)
            .where(MESSAGES.c.status == SENDING, MESSAGES.c.claimed_at < now - reclaim_after)
            .values(status=MessageState.QUEUED, duplicate_suspect=True, last_error="reclaimed: its dispatcher stopped")
        )
        return int(result.rowcount)


def in_index_order(c: Connection) -> None:
    """For this transaction, have PostgreSQL read claims in index order up to their LIMIT.

    Right after a bulk load its statistics still say a few rows are queued, and it plans to
    fetch every queued row and sort them (26 ms with 18,000 queued, 80 ms under load, per
    claim, until autovacuum's next ANALYZE): a claim is cheap only in index order."""
    if c.dialect.name == "postgresql":
        c.exec_driver_sql("SET LOCAL enable_sort = off")


def heartbeat(store: Store, worker: str, now: dt.datetime) -> int:
    """This dispatcher is alive: its claims are not stale (only a dead one's are reclaimed)."""
    with store.transaction() as c:
        result = c.execute(
            update(MESSAGES).where(MESSAGES.c.status == SENDING, MESSAGES.c.claimed_by == worker).values(claimed_at=now)
        )
        return int(result.rowcount)


def _resubmitted(insert: Any) -> Any:
    """A segment sent again (its message was requeued after a lost link) takes the new id."""
    return insert.on_conflict_do_update(
        index_elements=["message_id", "seq"], set_={"smsc_id": insert.excluded.smsc_id, "state": MessageState.SUBMITTED}
    )


def _record_segments(c: Connection, messages: list[tuple[int, list[tuple[int, str]]]], now: dt.datetime) -> set[int]:
    """Keep the SMSC's id of each accepted segment; apply receipts that arrived first, and
    return their messages. Set-based: one INSERT for all the segments and one DELETE for the
    early receipts."""
    # By (message, seq), the last one standing: one statement may not update a row twice.
    rows = list(
        {
            (message_id, seq): {
                "message_id": message_id,
                "seq": seq,
                "smsc_id": smsc_id,
                "state": MessageState.SUBMITTED,
                "submitted_at": now,
            }
            for message_id, accepted in messages
            for seq, smsc_id in accepted
        }.values()
    )
    if not rows:
        return set()
    insert_rows(c, SEGMENTS, rows, _resubmitted)
    early: dict[str, list[str]] = defaultdict(list)  # state -> SMSC ids
    built = _built(c.dialect.name)
    for ids in chunks([row["smsc_id"] for row in rows]):
        for smsc_id, state in c.execute(built.take_early, {"ids": list(ids)}):
            early[state].append(smsc_id)
    receipted: set[int] = set()
    for state, smsc_ids in early.items():
        for row in c.execute(built.receipted, {"ids": smsc_ids, "p_state": state, "p_now": now}):
            receipted.add(row.message_id)
            metrics.sms_receipt(0.0)  # the receipt came before its submission was recorded
    return receipted


class _Built:
    """The statements of the group commit, built once per dialect and run with parameters:
    none is built, nor walked for its cache key, per write (see LockAndUpdate)."""

    def __init__(self, dialect: str) -> None:
        smsc_ids = among_param(dialect, SEGMENTS.c.smsc_id, "ids")
        # Receipts kept because they came before their segment was known.
        self.take_early = (
            delete(RECEIPTS)
            .where(among_param(dialect, RECEIPTS.c.smsc_id, "ids"))
            .returning(RECEIPTS.c.smsc_id, RECEIPTS.c.stat)
        )
        # A final state for segments, by SMSC id.
        self.receipted = (
            update(SEGMENTS)
            .where(smsc_ids)
            .values(state=bindparam("p_state"), receipt_at=bindparam("p_now"))
            .returning(SEGMENTS.c.message_id, SEGMENTS.c.smsc_id, SEGMENTS.c.submitted_at)
        )
        messages = among_param(dialect, MESSAGES.c.id, "ids")
        self.submitted = (
            update(MESSAGES)
            .where(messages)
            .values(
                status=MessageState.SUBMITTED,
                submitted_at=bindparam("p_now"),
                segments=bindparam("p_segments"),
                claimed_by=None,
                last_error=None,
            )
        )
        # A message of one segment takes its receipt's state at once.
        self.settled_one = (
            update(MESSAGES)
            .where(messages, MESSAGES.c.status == MessageState.SUBMITTED, MESSAGES.c.segments == 1)
            .values(status=bindparam("p_state"), final_at=bindparam("p_now"))
            .returning(MESSAGES.c.id)
        )


_built = cache(_Built)


Submitted = tuple[int, list[tuple[int, str]], int]  # message id, accepted segments, segment count
Receipt = tuple[str, str]  # canonical SMSC id, final state


def record(store: Store, submitted: list[Submitted], receipts: list[Receipt], now: dt.datetime) -> int:
    """What the SMSC answered since the last call, in one transaction (the dispatcher's group
    commit): submissions first, so that receipts of the same moment find their segments.
    Returns how many receipts matched a segment now."""
    with store.transaction() as c:
        if submitted:
            _submitted(c, submitted, now)
        return _receipts(c, receipts, now) if receipts else 0


def _submitted(c: Connection, batch: list[Submitted], now: dt.datetime) -> None:
    """Messages whose every segment was taken: their segments' ids and their new state."""
    by_count: dict[int, list[int]] = defaultdict(list)
    for message_id, _, segments in batch:
        by_count[segments].append(message_id)
    receipted = _record_segments(c, [(message_id, accepted) for message_id, accepted, _ in batch], now)
    submitted = _built(c.dialect.name).submitted
    for segments, message_ids in by_count.items():
        for ids in chunks(message_ids):
            c.execute(submitted, {"ids": list(ids), "p_now": now, "p_segments": segments})
    # Final already: those with an early receipt, and those with segments taken on an
    # earlier attempt (their receipts may all be in). The rest wait for theirs.
    resumed = {message_id for message_id, accepted, segments in batch if len(accepted) < segments}
    _settle(c, sorted(receipted | resumed), now)


def requeue(
    store: Store,
    message_id: int,
    at: dt.datetime,
    error: str,
    *,
    suspect: bool = False,
    refund: bool = False,
    accepted: list[tuple[int, str]] | None = None,
) -> None:
    """Back to the queue for `at`. `refund` gives back the attempt and counts a refusal
    instead (the SMSC refused it for now: not the message's fault); `suspect` marks a
    segment that may have reached the SMSC unanswered."""
    values: dict[str, object] = {
        "status": MessageState.QUEUED,
        "next_attempt_at": at,
        "last_error": error,
        "claimed_by": None,
    }
    if suspect:
        values["duplicate_suspect"] = True
    if refund:
        values["attempts"] = MESSAGES.c.attempts - 1
        values["refusals"] = MESSAGES.c.refusals + 1
    with store.transaction() as c:
        _record_segments(c, [(message_id, accepted or [])], at)  # not sent again on the retry
        c.execute(update(MESSAGES).where(MESSAGES.c.id == message_id).values(**values))


def release(store: Store, message_ids: list[int], error: str) -> None:
    """Messages still `sending` go back to the queue, flagged: a segment may be out already."""
    if not message_ids:
        return
    with store.transaction() as c:
        c.execute(
            update(MESSAGES)
            .where(among(c, MESSAGES.c.id, message_ids), MESSAGES.c.status == MessageState.SENDING)
            .values(status=MessageState.QUEUED, duplicate_suspect=True, last_error=error[:500], claimed_by=None)
        )


def fail(
    store: Store, message_id: int, error: str, now: dt.datetime, accepted: list[tuple[int, str]] | None = None
) -> None:
    with store.transaction() as c:
        _record_segments(c, [(message_id, accepted or [])], now)
        c.execute(
            update(MESSAGES)
            .where(MESSAGES.c.id == message_id)
            .values(status=MessageState.FAILED, last_error=error, final_at=now, claimed_by=None)
        )


def apply_receipts(store: Store, receipts: list[Receipt], now: dt.datetime) -> int:
    """Record final receipts (canonical SMSC id, state) in one transaction; keep those whose
    segment is not known yet for when it is. Returns how many matched a segment now."""
    with store.transaction() as c:
        return _receipts(c, receipts, now)


def _receipts(c: Connection, receipts: list[Receipt], now: dt.datetime) -> int:
    latest = dict(receipts)  # the same id twice: the later state stands
    by_state: dict[str, list[str]] = defaultdict(list)
    for smsc_id, state in latest.items():
        by_state[state].append(smsc_id)
    matched_ids: set[str] = set()
    messages: set[int] = set()
    built = _built(c.dialect.name)
    for state, smsc_ids in by_state.items():
        for ids in chunks(smsc_ids):
            found: set[int] = set()
            for row in c.execute(built.receipted, {"ids": list(ids), "p_state": state, "p_now": now}).all():
                matched_ids.add(row.smsc_id)
                found.add(row.message_id)
                metrics.sms_receipt((now - row.submitted_at).total_seconds())
            # A message of one segment takes its receipt's state at once (most of them);
            # the others are settled below once all their segments are final.
            if not found:
                continue
            params = {"ids": sorted(found), "p_state": state, "p_now": now}
            settled = c.scalars(built.settled_one, params)
            messages |= found - set(settled)
    early = [
        {"smsc_id": smsc_id, "stat": state, "received_at": now}
        for smsc_id, state in latest.items()
        if smsc_id not in matched_ids
    ]
    if early:
        insert = upsert(c, RECEIPTS)
        c.execute(
            insert.on_conflict_do_update(
                index_elements=["smsc_id"],
                set_={"stat": insert.excluded.stat, "received_at": insert.excluded.received_at},
            ),
            early,
        )
    _settle(c, sorted(messages), now)
    return len(matched_ids)


def rematch_receipts(store: Store, now: dt.datetime, limit: int = 500) -> int:
    """Receipts kept because their segment was unknown, whose segment is known by now (a
    receipt and its submission recorded at the same moment by two transactions)."""
    with store.transaction() as c:
        found = c.execute(
            select(RECEIPTS.c.smsc_id, RECEIPTS.c.stat, RECEIPTS.c.received_at, SEGMENTS.c.submitted_at)
            .join(SEGMENTS, SEGMENTS.c.smsc_id == RECEIPTS.c.smsc_id)
            .limit(limit)
        ).all()
        if not found:
            return 0
        messages: set[int] = set()
        for row in found:
            updated = c.execute(
                update(SEGMENTS)
                .where(SEGMENTS.c.smsc_id == row.smsc_id)
                .values(state=row.stat, receipt_at=now)
                .returning(SEGMENTS.c.message_id)
            ).all()
            messages.update(r.message_id for r in updated)
            metrics.sms_receipt((row.received_at - row.submitted_at).total_seconds())
        c.execute(delete(RECEIPTS).where(among(c, RECEIPTS.c.smsc_id, [row.smsc_id for row in found])))
        _settle(c, sorted(messages), now)
    return len(found)


def _settle(c: Connection, message_ids: list[int], now: dt.datetime) -> None:
    """A submitted message whose every segment has a final state takes the worst of them."""
    states: dict[int, list[str]] = defaultdict(list)
    totals: dict[int, int] = {}
    for ids in chunks(message_ids):
        for message_id, state in c.execute(
            select(SEGMENTS.c.message_id, SEGMENTS.c.state).where(among(c, SEGMENTS.c.message_id, ids))
        ):
            states[message_id].append(state)
        for message_id, segments in c.execute(
            select(MESSAGES.c.id, MESSAGES.c.segments).where(
                among(c, MESSAGES.c.id, ids), MESSAGES.c.status == MessageState.SUBMITTED
            )
        ):
            totals[message_id] = segments
    settled: dict[str, list[int]] = defaultdict(list)
    for message_id, total in totals.items():
        seen = states.get(message_id, [])
        if len(seen) < total or not all(s in FINAL for s in seen):
            continue
        settled[next((s for s in seen if s != FinalState.DELIVERED), FinalState.DELIVERED.value)].append(message_id)
    for worst, settled_ids in settled.items():
        for ids in chunks(settled_ids):
            c.execute(
                update(MESSAGES)
                .where(among(c, MESSAGES.c.id, ids), MESSAGES.c.status == MessageState.SUBMITTED)
                .values(status=worst, final_at=now)
            )


def expire_unreceipted(store: Store, timeout: dt.timedelta, now: dt.datetime) -> int:
    """Submitted messages with no final receipt after `timeout` end `unknown`."""
    with store.transaction() as c:
        result = c.execute(
            update(MESSAGES)
            .where(MESSAGES.c.status == SUBMITTED, MESSAGES.c.submitted_at < now - timeout)
            .values(status=FinalState.UNKNOWN.value, final_at=now, last_error="no receipt in time")
        )
        return int(result.rowcount)


def counts(store: Store) -> dict[str, dict[str, int]]:
    """Messages by category and state (for `hotline sms status`)."""
    with store.transaction() as c:
        rows = c.execute(
            select(MESSAGES.c.category, MESSAGES.c.status, func.count()).group_by(
                MESSAGES.c.category, MESSAGES.c.status
            )
        ).all()
        suspects = c.scalar(select(func.count()).select_from(MESSAGES).where(MESSAGES.c.duplicate_suspect.is_(True)))
    out: dict[str, dict[str, int]] = {}
    for category, status, n in rows:
        out.setdefault(category, {})[status] = int(n)
    out["_all"] = {"duplicate_suspect": int(suspects or 0)}
    return out


def event_counts(store: Store) -> dict[str, int]:
    """Business events by the gateway's state (pending, queued, failed)."""
    events = BusinessEvent.__table__
    with store.transaction() as c:
        rows = c.execute(select(events.c.status, func.count()).group_by(events.c.status)).all()
    return {status: int(n) for status, n in rows}


def failure_reasons(store: Store, limit: int = 10) -> list[tuple[str, int]]:
    """The commonest reasons business events failed for, most frequent first: what an
    operator asks the business system's team to fix."""
    events = BusinessEvent.__table__
    n = func.count().label("n")
    query = (
        select(events.c.reason, n)
        .where(events.c.status == EventState.FAILED)
        .group_by(events.c.reason)
        .order_by(n.desc())
        .limit(limit)
    )
    with store.transaction() as c:
        return [(str(reason or "-")[:200], int(count)) for reason, count in c.execute(query)]
