"""Texts from residents (MO): `YE` balances, `CX` last contributions, `TD` opt out, else help.

Answers go only to a number registered to a resident, since the number is the only
identification an SMS carries; a text from any other number gets the help text without
data. Every answer with data is audited like an IVR look-up (actor `sms`). Long texts
arrive in parts (UDH, 8- or 16-bit reference) and are reassembled first; parts of a text
that never completes are dropped after `PARTS_TTL_S`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final, cast

from sqlalchemy import select

from core.business import AuditedReader
from core.db import Store, upsert
from core.masking import mask_phone
from core.models import Resident, ResidentPhone, SmsMessage, SmsOptOut, utcnow
from sms.encoding import decode, split_udh
from sms.pdu import Inbound
from sms.templates import SIGNATURE

log = logging.getLogger(__name__)
PARTS_TTL_S: Final = 300.0
HELP: Final = "回复YE查询养老、医保个人账户余额，回复CX查询最近缴费，回复TD退订政策资讯和年度对账短信。详询12333。"
NOT_REGISTERED: Final = "本号码未登记为社保服务手机号，无法查询。请携身份证到社保经办窗口登记，或致电12333。"


def _yuan(fen: int) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}元"


@dataclass
class Reassembly:
    """Parts of concatenated texts by (sender, reference, total)."""

    parts: dict[tuple[str, int, int], dict[int, bytes]] = field(default_factory=dict)
    seen: dict[tuple[str, int, int], float] = field(default_factory=dict)

    def add(self, inbound: Inbound, now: float) -> str | None:
        """The whole text once every part is in, else None."""
        for key in [k for k, t in self.seen.items() if now - t > PARTS_TTL_S]:
            self.parts.pop(key, None)
            self.seen.pop(key, None)
        if not inbound.esm_class & 0x40:
            return decode(inbound.data_coding, inbound.short_message)
        concat, body = split_udh(inbound.short_message)
        if concat is None:
            return decode(inbound.data_coding, body)
        key = (inbound.source, concat.reference, concat.total)
        got = self.parts.setdefault(key, {})
        got[concat.seq] = body
        self.seen[key] = now
        if len(got) < concat.total:
            return None
        self.parts.pop(key)
        self.seen.pop(key)
        return decode(inbound.data_coding, b"".join(got[i] for i in sorted(got)))


class MoHandler:
    def __init__(self, store: Store, reader: AuditedReader, wake: asyncio.Event | None = None) -> None:
        self.store = store
        self.reader = reader
        self.wake = wake
        self.reassembly = Reassembly()

    async def on_text(self, inbound: Inbound) -> None:
        text = self.reassembly.add(inbound, time.monotonic())
        if text is None:
            return
        await asyncio.to_thread(self.answer, inbound.source, text)
        if self.wake is not None:
            self.wake.set()  # the reply is due now

    def answer(self, phone: str, text: str) -> str:
        """Work out the reply, queue it as an instant message, and return it."""
        keyword = text.strip().upper()
        exchange = str(uuid.uuid4())  # ties the audit entries to this exchange
        with self.store.session() as s:
            resident_ids = sorted(
                set(s.scalars(select(Resident.id).where(Resident.phone == phone)))
                | set(s.scalars(select(ResidentPhone.resident_id).where(ResidentPhone.phone == phone)))
            )
        if keyword not in ("YE", "CX", "TD"):
            reply = HELP
        elif keyword == "TD":
            self._opt_out(phone)
            reply = "您已退订政策资讯和年度对账短信，业务提醒仍会发送。回复YE可查询余额。"
        elif len(resident_ids) != 1:
            # Unknown number, or one shared by several residents: no data by SMS.
            reply = NOT_REGISTERED
        elif keyword == "YE":
            rid, actor = resident_ids[0], "sms"
            pension = self.reader.read("pension", rid, actor=actor, call_id=exchange)
            medical = self.reader.read("medical", rid, actor=actor, call_id=exchange)
            reply = (
                f"您的养老保险个人账户余额{_yuan(int(str(pension['balance_fen'])))}，"
                f"累计缴费{pension['months']}个月；医保个人账户余额{_yuan(int(str(medical['balance_fen'])))}。"
            )
        else:
            data = self.reader.read("contributions", resident_ids[0], actor="sms", call_id=exchange)
            items = cast(list[dict[str, Any]], data["items"])
            rows = [f"{r['period']}养老{_yuan(r['pension_fen'])}、医保{_yuan(r['medical_fen'])}" for r in items]
            reply = "最近缴费：" + "；".join(rows) + "。" if rows else "暂无缴费记录。"
        self._queue(phone, reply + SIGNATURE, keyword)
        log.info("MO %s from %s answered", keyword if keyword in ("YE", "CX", "TD") else "other", mask_phone(phone))
        return reply + SIGNATURE

    def _opt_out(self, phone: str) -> None:
        with self.store.transaction() as c:
            c.execute(upsert(c, SmsOptOut).values(phone=phone, at=utcnow(), source="mo").on_conflict_do_nothing())

    def _queue(self, phone: str, text: str, keyword: str) -> None:
        with self.store.session() as s:
            s.add(
                SmsMessage(
                    event_id=None,
                    event_type=f"mo_reply:{keyword.lower()[:8] or 'help'}",
                    category="reply",
                    recipient=phone,
                    text=text,
                    priority=0,
                    status="queued",
                    next_attempt_at=utcnow(),
                )
            )
