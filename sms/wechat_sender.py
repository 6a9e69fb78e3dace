"""Sends the queued `wechat_messages` through the official account (sms/wechat.py), each try
a line of its notice's history.

- SENT: the notice is delivered (WeChat gives no receipt of its own; its acceptance is it).
- NOT_FOLLOWING (43004) or BAD_OPENID: the binding is wrong or gone, so it is dropped (the
  resident binds again to get WeChat notices) and the notice falls back to its next channel.
- TEMPORARY: tried again after `sms.retry_base_s`, doubled each time, `TRIES` tries in all,
  then it falls back. `client_msg_id` is the notice's, so a try whose answer was lost is
  not shown twice.
- REJECTED: this message's data was refused: it falls back.
- LIMIT_REACHED or CONFIG_ERROR pause the whole channel (until Beijing midnight, or
  `wechat.config_error_pause_s`): the notice that met it, and every notice queued for WeChat
  while the pause lasts, fall back at once rather than wait for hours; the history says so.

Claims are `FOR UPDATE SKIP LOCKED` on PostgreSQL (two gateways never send one message) and
an UPDATE conditioned on `queued` on SQLite; a claim left `sending` by a sender that died is
queued again after RECLAIM_AFTER.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from sqlalchemy import ColumnElement, bindparam, delete, literal_column, select, update

from core.db import Store
from core.errors import StoreUnavailable
from core.masking import mask_openid
from core.models import WeChatBinding, utcnow
from core.notices import add_step, finish
from core.settings import Settings
from core.states import Channel, NoticeState, WeChatState
from sms.channels import WECHAT
from sms.outbox import LockAndUpdate
from sms.wechat import Outcome, WeChatResult, WeChatTransport

log = logging.getLogger(__name__)
TRIES: Final = 3
BATCH: Final = 50
RECLAIM_AFTER: Final = dt.timedelta(minutes=10)
# The one field of the template every notice fills: the template in the account's library
# must show {{content.DATA}} (docs/sms-and-notices.md, "Notice channels").
FIELD: Final = "content"
_QUEUED: ColumnElement[str] = literal_column(f"'{WeChatState.QUEUED}'")
_RETURNED = (WECHAT.c.id, WECHAT.c.notice_id, WECHAT.c.openid, WECHAT.c.category, WECHAT.c.text, WECHAT.c.attempts)


def _statement(values: dict[str, Any], *, due_only: bool) -> LockAndUpdate:
    condition = WECHAT.c.status == _QUEUED
    chosen = select(WECHAT.c.id).where(condition)
    if due_only:
        chosen = chosen.where(WECHAT.c.next_attempt_at <= bindparam("now"))
    chosen = chosen.order_by(WECHAT.c.next_attempt_at, WECHAT.c.id).limit(bindparam("limit"))
    return LockAndUpdate(WECHAT, chosen.with_for_update(skip_locked=True), condition, values, _RETURNED)


CLAIM = _statement(
    {
        "status": WeChatState.SENDING,
        "claimed_by": bindparam("p_worker"),
        "claimed_at": bindparam("p_now"),
        "attempts": WECHAT.c.attempts + 1,
    },
    due_only=True,
)
# While the channel is paused: every queued message, due or not, gives up at once.
WITHDRAW = _statement(
    {"status": WeChatState.FAILED, "last_error": bindparam("p_error"), "final_at": bindparam("p_now")}, due_only=False
)


@dataclass(frozen=True)
class Claimed:
    id: int
    notice_id: int
    openid: str
    category: str
    text: str
    attempts: int


def claim(store: Store, worker: str, limit: int, now: dt.datetime) -> list[Claimed]:
    with store.transaction() as c:
        rows = CLAIM.run(c, {"limit": limit, "now": now, "p_now": now, "p_worker": worker})
    return sorted((Claimed(*r) for r in map(tuple, rows)), key=lambda m: m.id)


def reclaim_stale(store: Store, now: dt.datetime) -> int:
    """Claims of a sender that died (left `sending`) back to the queue."""
    with store.transaction() as c:
        return int(
            c.execute(
                update(WECHAT)
                .where(WECHAT.c.status == WeChatState.SENDING, WECHAT.c.claimed_at < now - RECLAIM_AFTER)
                .values(status=WeChatState.QUEUED, last_error="reclaimed: its sender stopped")
            ).rowcount
        )


def withdraw_paused(store: Store, detail: str, now: dt.datetime, limit: int = 500) -> int:
    """The channel is paused: queued messages give up now, and their notices fall back."""
    with store.transaction() as c:
        rows = WITHDRAW.run(c, {"limit": limit, "p_now": now, "p_error": detail[:500]})
        for r in rows:
            finish(c, r.notice_id, Channel.WECHAT, None, "paused", detail, now)
    return len(rows)


def _give_up(c: Any, m: Claimed, outcome: str, detail: str, now: dt.datetime) -> None:
    c.execute(
        update(WECHAT)
        .where(WECHAT.c.id == m.id)
        .values(status=WeChatState.FAILED, last_error=detail[:500], final_at=now, claimed_by=None)
    )
    finish(c, m.notice_id, Channel.WECHAT, None, outcome, detail, now)


def record(store: Store, m: Claimed, result: WeChatResult, now: dt.datetime, retry_base_s: float) -> str:
    """Write what one send did; returns the history's word for it."""
    o = result.outcome
    with store.transaction() as c:
        if o is Outcome.SENT:
            c.execute(
                update(WECHAT)
                .where(WECHAT.c.id == m.id)
                .values(status=WeChatState.SENT, msgid=str(result.msgid or ""), final_at=now, last_error=None)
            )
            finish(c, m.notice_id, Channel.WECHAT, NoticeState.DELIVERED, "sent", f"msgid {result.msgid}", now)
        elif o in (Outcome.NOT_FOLLOWING, Outcome.BAD_OPENID):
            c.execute(delete(WeChatBinding).where(WeChatBinding.openid == m.openid))
            _give_up(c, m, o.value, f"{result.reason}; the WeChat binding was dropped", now)
        elif o is Outcome.TEMPORARY and m.attempts < TRIES:
            delay = retry_base_s * 2 ** (m.attempts - 1)
            detail = f"{result.reason}; try {m.attempts} of {TRIES}, again in {delay:g} s"
            c.execute(
                update(WECHAT)
                .where(WECHAT.c.id == m.id)
                .values(
                    status=WeChatState.QUEUED,
                    next_attempt_at=now + dt.timedelta(seconds=delay),
                    last_error=detail[:500],
                    claimed_by=None,
                )
            )
            add_step(c, m.notice_id, Channel.WECHAT, "temporary", detail, now)
        elif o is Outcome.TEMPORARY:
            _give_up(c, m, "temporary", f"gave up after {m.attempts} tries: {result.reason}", now)
        else:
            _give_up(c, m, o.value, _paused(result), now)
    return o.value


def _paused(result: WeChatResult) -> str:
    if result.until is None:
        return result.reason
    return f"{result.reason}; WeChat paused until {result.until:%Y-%m-%d %H:%M} UTC, so the next channel now"


class WeChatSender:
    """The supervised task of `hotline serve` that sends WeChat notices (wechat.enabled)."""

    def __init__(self, settings: Settings, store: Store, transport: WeChatTransport, worker: str) -> None:
        self.settings = settings
        self.store = store
        self.transport = transport
        self.worker = worker
        self.pause_reason = ""

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(reclaim_stale, self.store, utcnow())
        while not stop.is_set():
            try:
                busy = await self.step()
            except StoreUnavailable as exc:
                log.error("WeChat sender %s: store unavailable (%s); retrying", self.worker, exc)
                busy = 0
            if busy < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.notices.poll_s)

    async def step(self, now: dt.datetime | None = None) -> int:
        """One pass: withdraw everything queued while the channel is paused, else send what
        is due; returns how many messages it handled."""
        now = now or utcnow()
        until = self.transport.paused_until
        if until is not None:
            why = self.pause_reason or "the account"
            detail = f"WeChat paused until {until:%Y-%m-%d %H:%M} UTC ({why}): next channel now"
            return await asyncio.to_thread(withdraw_paused, self.store, detail, now)
        due = await asyncio.to_thread(claim, self.store, self.worker, BATCH, now)
        for m in due:
            await asyncio.shield(self._send(m, now))  # a claimed message's outcome is always written
        return len(due)

    async def _send(self, m: Claimed, now: dt.datetime) -> None:
        template = self.transport.template_for(m.category)
        if template is None:
            result = WeChatResult(Outcome.REJECTED, reason=f"no WeChat template for {m.category} (wechat.templates)")
        else:
            result = await self.transport.send(
                m.openid, template, {FIELD: m.text}, client_msg_id=f"notice-{m.notice_id}"
            )
        if result.outcome in (Outcome.LIMIT_REACHED, Outcome.CONFIG_ERROR):
            self.pause_reason = result.reason
        word = await asyncio.to_thread(
            partial(record, retry_base_s=self.settings.sms.retry_base_s), self.store, m, result, now
        )
        log.info("WeChat notice %d to %s: %s", m.notice_id, mask_openid(m.openid), word)
