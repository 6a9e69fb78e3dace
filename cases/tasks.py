"""The periodic casework `hotline serve` runs: voice messages become orders, overdue
orders are escalated (督办), follow-ups go out and their answers are taken in.

Each step is safe with several processes at once: a voice message is claimed by a
conditional UPDATE (`order_id IS NULL`), an escalation by one (`escalated_at IS NULL`); on
PostgreSQL the second of two concurrent UPDATEs of a row waits for the first to commit and
then finds its condition false (READ COMMITTED re-checks the row), on SQLite writers take
turns. The loser adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select, update

from cases.events import add_event, moment
from cases.followup import collect_followup_replies, send_due_followups
from cases.orders import MESSAGES, ORDERS, WAITING, Order, insert_order, order_of, order_values
from core.db import Store
from core.errors import StoreUnavailable
from core.settings import Settings

log = logging.getLogger(__name__)
CLAIM_BATCH: Final = 100
ACTOR: Final = "cases"  # the periodic task, in histories
VOICE_SUMMARY: Final = "语音留言（{seconds}秒）：请收听录音后处理。"


@dataclass
class CaseworkReport:
    voice_orders: list[Order] = field(default_factory=list)
    escalated: list[Order] = field(default_factory=list)
    followups: list[Order] = field(default_factory=list)
    replies: list[Order] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.voice_orders or self.escalated or self.followups or self.replies)


def voice_messages_to_orders(store: Store, settings: Settings, now: dt.datetime | None = None) -> list[Order]:
    """An order of kind `voice_message` for each message not yet one (oldest first), due
    by the time the message was left, for `cases.voice_message_department` (or the hotline)."""
    now = moment(now)
    made: list[Order] = []
    with store.transaction() as c:
        pending = c.execute(
            select(MESSAGES).where(MESSAGES.c.order_id.is_(None)).order_by(MESSAGES.c.id).limit(CLAIM_BATCH)
        ).all()
    for message in pending:
        with store.transaction() as c:
            # Claimed first (0: being made; no one outside this transaction ever sees it),
            # then the order, then its id: the loser of a race stops at the claim.
            claim = update(MESSAGES).where(MESSAGES.c.id == message.id, MESSAGES.c.order_id.is_(None))
            result = c.execute(claim.values(order_id=0))
            if result.rowcount != 1:
                continue  # another process made it an order
            order = _order_for(c, settings, message._mapping, now)
            c.execute(update(MESSAGES).where(MESSAGES.c.id == message.id).values(order_id=order.id))
        log.info("voice message %d is work order %d, due %s", message.id, order.id, order.due_at.isoformat())
        made.append(order)
    return made


def _order_for(c: Any, settings: Settings, message: Any, now: dt.datetime) -> Order:
    cases = settings.cases
    values = order_values(
        settings,
        "voice_message",
        cases.voice_message_category,
        VOICE_SUMMARY.format(seconds=message["duration_s"]),
        "ivr",
        cases.voice_message_department or None,
        moment(message["created_at"]),  # the caller's request counts from when they left it
    )
    values |= {
        "caller_number": message["caller_number"],
        "resident_id": message["resident_id"],
        "id_number_masked": message["id_number_masked"],
        "call_id": message["call_id"],
        "voice_message_id": message["id"],
    }
    return insert_order(c, values, now)


def escalate_overdue(store: Store, settings: Settings, now: dt.datetime | None = None) -> list[Order]:
    """Mark every waiting order past due and not yet escalated as escalated (once per order,
    with an `escalated` event): the supervisors' list (orders_for status='overdue')."""
    now = moment(now)
    if not settings.cases.escalate_overdue:
        return []
    condition = ORDERS.c.status.in_(WAITING) & (ORDERS.c.due_at < now) & ORDERS.c.escalated_at.is_(None)
    with store.transaction() as c:
        rows = c.execute(update(ORDERS).where(condition).values(escalated_at=now).returning(*ORDERS.c)).all()
        orders = sorted((order_of(r) for r in rows), key=lambda o: o.id)
        for order in orders:
            overdue_h = round((now - order.due_at).total_seconds() / 3600, 1)
            detail = {"due_at": order.due_at.isoformat(), "overdue_hours": overdue_h, "department": order.department}
            add_event(c, order.id, ACTOR, "escalated", detail, now)
    for order in orders:
        log.warning(
            "work order %d (%s) is overdue since %s: escalated", order.id, order.department or "hotline", order.due_at
        )
    return orders


def run_once(store: Store, settings: Settings, now: dt.datetime | None = None) -> CaseworkReport:
    """One round of the periodic casework, in this order: a voice message's order can be
    escalated in the same round if it is overdue already (left long ago, `hotline serve` down)."""
    now = moment(now)
    report = CaseworkReport()
    report.voice_orders = voice_messages_to_orders(store, settings, now)
    report.escalated = escalate_overdue(store, settings, now)
    report.followups = send_due_followups(store, settings, now)
    report.replies = collect_followup_replies(store, now)
    return report


async def casework_loop(store: Store, settings: Settings, stop: asyncio.Event) -> None:
    """`run_once` every `cases.task_interval_s` until `stop`. The store out of reach is
    logged and tried again next round; anything else ends the task, for `hotline serve`'s
    supervisor to log with its traceback and start again."""
    interval = settings.cases.task_interval_s
    while not stop.is_set():
        try:
            report = await asyncio.to_thread(run_once, store, settings)
        except StoreUnavailable as exc:
            log.warning("casework: not done now (%s); next try in %.0f s", exc, interval)
        else:
            if report:
                log.info(
                    "casework: %d voice messages made orders, %d escalated, %d follow-ups sent, %d answers stored",
                    len(report.voice_orders),
                    len(report.escalated),
                    len(report.followups),
                    len(report.replies),
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
