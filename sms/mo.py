"""Texts from residents (MO): `YE` balances, `CX` last contributions, `TD` opt out (`KT`
opts back in), `1`/`2`/`3` the answer to an open survey of that number (`sms_surveys`: a
work order's follow-up), else help.

The number is the only identification an SMS carries, and a sender's number is easy to
spoof, so:

- answers with data go only to a number registered to exactly one resident, and every
  one is audited like an IVR look-up (actor `sms`);
- `TD` takes effect only for a registered number (a resident's or an employer's), and
  only once confirmed: the first `TD` is answered with a six-digit code, and `TD` with
  that code within `CONFIRM_TTL` opts the number out; a spoofer never sees the code. The
  confirmation says how to undo it (`KT`);
- at most `sms.mo_replies_per_hour` replies go to one number in any rolling hour, counted
  in the store (`sms_mo_texts`, shared by every dispatcher): past that a text is stored
  and handled without a reply (an auto-responder answering our replies, or a spoofed
  `YE` flood aimed at someone's handset), and logged once.

Source numbers are put in the store's one form (`core.phones.store_form`) as they arrive,
and compared in it. Long texts arrive in parts (UDH, 8- or 16-bit reference); each part is
stored before its deliver_sm is answered (the transport answers once `on_text` returns),
so a dispatcher restarting between parts, or parts reaching different dispatchers, lose
nothing; the part that completes a text is answered once the reply is queued, in the same
transaction that takes the parts (so two dispatchers holding the last parts reply once).
Parts of a text that never completes are dropped after `PARTS_TTL_S`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import Connection, Table, func, select, update

from core.business import AuditedReader, PhoneOwners
from core.calls_out import refuse
from core.db import Store, pg_lock, upsert
from core.destinations import DestinationPolicy, DestinationSettings
from core.masking import mask_phone
from core.models import (
    SmsMessage,
    SmsMoPart,
    SmsMoText,
    SmsOptOut,
    SmsOptOutRequest,
    SmsSurvey,
    utcnow,
)
from core.phones import BadPhoneNumber, spellings, store_form
from core.settings import SmsSettings
from core.states import MessageState
from sms.encoding import decode, split_udh
from sms.pdu import Inbound
from sms.templates import SIGNATURE

log = logging.getLogger(__name__)
PARTS_TTL_S: Final = 3600.0
CONFIRM_TTL: Final = dt.timedelta(hours=24)
HOUR: Final = dt.timedelta(hours=1)
HELP: Final = "回复YE查询养老、医保个人账户余额，回复CX查询最近缴费，回复TD退订政策资讯和年度对账短信。详询12333。"
NOT_REGISTERED: Final = "本号码未登记为社保服务手机号，无法查询。请携身份证到社保经办窗口登记，或致电12333。"
NOT_REGISTERED_TD: Final = "本号码未登记为社保服务手机号，不会收到政策资讯和对账短信，无需退订。详询12333。"
CONFIRM_TD: Final = "您申请退订政策资讯和年度对账短信。确认退订请在24小时内回复TD{code}；如非本人操作，请忽略本短信。"
OPTED_OUT: Final = "您已退订政策资讯和年度对账短信，业务提醒仍会发送。如需恢复，请回复KT。"
ALREADY_OUT: Final = "本号码已退订政策资讯和年度对账短信。如需恢复，请回复KT。"
BAD_CODE: Final = "确认码不正确或已过期，退订未生效。如需退订，请重新回复TD。"
RESUMED: Final = "您已恢复接收政策资讯和年度对账短信。回复TD可退订。"
RATED: Final = "感谢您的评价！详询12333。"
KEYWORDS: Final = ("YE", "CX", "TD", "KT")
_TD_CODE: Final = re.compile(r"^TD\s*(\d{6})$")
# The answers to a survey sent by SMS (a work order's follow-up): 1 satisfied, 2 basically,
# 3 dissatisfied, as the IVR's survey counts them.
RATINGS: Final = ("1", "2", "3")
PARTS: Table = SmsMoPart.__table__  # type: ignore[assignment]
TEXTS: Table = SmsMoText.__table__  # type: ignore[assignment]
REQUESTS: Table = SmsOptOutRequest.__table__  # type: ignore[assignment]
OPTOUTS: Table = SmsOptOut.__table__  # type: ignore[assignment]
MESSAGES: Table = SmsMessage.__table__  # type: ignore[assignment]
SURVEYS: Table = SmsSurvey.__table__  # type: ignore[assignment]


def _yuan(fen: int) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}元"


def keyword_of(text: str) -> tuple[str, str | None]:
    """The keyword (`YE`, `CX`, `TD`, `KT`, `RATE` or `OTHER`) and a TD's confirmation code
    or the rating's digit."""
    word = text.strip().upper()
    if word in KEYWORDS:
        return word, None
    if word in RATINGS:
        return "RATE", word
    if match := _TD_CODE.match(word):
        return "TD", match.group(1)
    return "OTHER", None


class _TakenElsewhere(Exception):
    """The parts of a text were taken by another dispatcher between reading and taking."""


@dataclass(frozen=True)
class PartsOf:
    """The parts of one concatenated text: sender, reference and how many."""

    phone: str
    reference: int
    total: int

    def where(self) -> Any:
        return (PARTS.c.phone == self.phone) & (PARTS.c.reference == self.reference) & (PARTS.c.total == self.total)


class MoHandler:
    def __init__(
        self,
        store: Store,
        reader: AuditedReader,
        wake: asyncio.Event | None = None,
        settings: SmsSettings | None = None,
        destinations: DestinationSettings | None = None,
    ) -> None:
        self.store = store
        self.reader = reader
        self.wake = wake
        self.settings = settings if settings is not None else SmsSettings()
        # A reply goes only to a number the platform may text (core.destinations): a text
        # from abroad, or a spoofed premium sender, is stored and handled without one.
        self.destinations = DestinationPolicy(destinations or DestinationSettings(), self.settings.country_code)

    async def on_text(self, inbound: Inbound) -> None:
        """Store the text (or its part) and queue its reply; the deliver_sm may be answered
        once this returns."""
        replied = await asyncio.to_thread(self.receive, inbound)
        if replied is not None and self.wake is not None:
            self.wake.set()  # the reply is due now

    def receive(self, inbound: Inbound, *, now: dt.datetime | None = None) -> str | None:
        """The reply queued for `inbound` (None: none), at `now` (the present by default)."""
        now = now or utcnow()
        try:
            phone = store_form(inbound.source, self.settings.country_code)
        except BadPhoneNumber as exc:
            log.warning("MO from %s dropped, no reply: %s", mask_phone(inbound.source), exc)
            return None
        whole = self._whole(inbound, phone, now)
        if whole is None:
            return None
        return self.answer(phone, *whole, now=now)

    def _whole(self, inbound: Inbound, phone: str, now: dt.datetime) -> tuple[str, PartsOf | None] | None:
        """The whole text (and its stored parts, to take), or None while parts are missing."""
        if not inbound.esm_class & 0x40:
            return decode(inbound.data_coding, inbound.short_message), None
        concat, body = split_udh(inbound.short_message)
        if concat is None:
            return decode(inbound.data_coding, body), None
        if not 1 <= concat.seq <= concat.total:  # GSM 03.40 §9.2.3.24.1: parts count from 1
            log.warning(
                "MO from %s: part %d of %d, not a part of any text: dropped",
                mask_phone(phone),
                concat.seq,
                concat.total,
            )
            return None
        parts = PartsOf(phone, concat.reference, concat.total)
        with self.store.transaction() as c:
            c.execute(PARTS.delete().where(PARTS.c.received_at < now - dt.timedelta(seconds=PARTS_TTL_S)))
            row = {"phone": phone, "reference": concat.reference, "total": concat.total, "seq": concat.seq}
            row |= {"data_coding": inbound.data_coding, "body": body, "received_at": now}
            c.execute(upsert(c, SmsMoPart).values(**row).on_conflict_do_nothing())
        # Read after the commit: of two dispatchers storing the last two parts at once, the
        # later to commit then sees both (each statement sees what was committed before it).
        with self.store.transaction() as c:
            got = c.execute(select(PARTS.c.seq, PARTS.c.body).where(parts.where()).order_by(PARTS.c.seq)).all()
        if [seq for seq, _ in got] != list(range(1, concat.total + 1)):
            return None
        return decode(inbound.data_coding, b"".join(b for _, b in got)), parts

    def answer(
        self, phone: str, text: str, parts: PartsOf | None = None, *, now: dt.datetime | None = None
    ) -> str | None:
        """Store the text, do what it asks, queue the reply and return it (None: no reply).
        `now` (the present by default) decides which survey is open and which code expired."""
        phone = store_form(phone, self.settings.country_code)
        keyword, code = keyword_of(text)
        now = now or utcnow()
        owners = self._owners(phone)
        replied, silent = self._recent(phone, now)
        refused = self.destinations.refusal(phone)
        capped = replied >= self.settings.mo_replies_per_hour or refused is not None
        data = None if capped else self._data_reply(keyword, owners)
        try:
            with self.store.transaction() as c:
                if parts is not None:
                    taken = c.execute(PARTS.delete().where(parts.where()).returning(PARTS.c.seq)).all()
                    if len(taken) < parts.total:
                        raise _TakenElsewhere  # rolls back: another dispatcher answers the text
                text_id = self._store_text(c, phone, text, keyword, now)
                # Counted again in the transaction that replies, one number at a time (the
                # count before it is only there to spare reading data for a capped number):
                # texts arriving together, or at two dispatchers, cannot all get a reply.
                capped = capped or self._replied_within_hour(c, phone, now) >= self.settings.mo_replies_per_hour
                reply = (None if capped else data) or self._keyword(
                    c, phone, keyword, code, owners, now, send=not capped
                )
                if reply is not None:
                    c.execute(update(TEXTS).where(TEXTS.c.id == text_id).values(replied=True))
                    c.execute(MESSAGES.insert().values(**self._reply_row(phone, reply + SIGNATURE, keyword, now)))
        except _TakenElsewhere:
            return None
        if refused is not None:
            refuse(self.store, refused, where=f"MO {keyword.lower()} reply", actor="sms")
        elif capped and not silent:
            log.warning(
                "MO from %s: replies capped at %d an hour; its texts are stored and handled without a reply",
                mask_phone(phone),
                self.settings.mo_replies_per_hour,
            )
        log.info("MO %s from %s %s", keyword.lower(), mask_phone(phone), "answered" if reply else "not answered")
        return None if reply is None else reply + SIGNATURE

    @staticmethod
    def _store_text(c: Connection, phone: str, text: str, keyword: str, now: dt.datetime) -> int:
        """The text, stored first: on SQLite this write takes the database's write lock, on
        PostgreSQL a lock per number is taken before it, so the count that follows sees
        every reply to this number committed before."""
        pg_lock(c, "mo:" + phone)
        row = {"phone": phone, "text": text[:1000], "keyword": keyword.lower(), "received_at": now}
        return int(c.execute(TEXTS.insert().values(**row, replied=False).returning(TEXTS.c.id)).scalar_one())

    @staticmethod
    def _replied_within_hour(c: Connection, phone: str, now: dt.datetime) -> int:
        query = select(func.count()).where(
            TEXTS.c.phone == phone, TEXTS.c.received_at > now - HOUR, TEXTS.c.replied.is_(True)
        )
        return int(c.scalar(query) or 0)

    def _owners(self, phone: str) -> PhoneOwners:
        """Through the business port: the registrations are the business system's."""
        return self.reader.port.phone_owners(spellings(phone, self.settings.country_code))

    def _recent(self, phone: str, now: dt.datetime) -> tuple[int, int]:
        """Texts from `phone` in the last hour: answered, and not."""
        since = now - HOUR
        query = (
            select(TEXTS.c.replied, func.count())
            .where(TEXTS.c.phone == phone, TEXTS.c.received_at > since)
            .group_by(TEXTS.c.replied)
        )
        with self.store.transaction() as c:
            counts = {bool(replied): int(n) for replied, n in c.execute(query)}
        return counts.get(True, 0), counts.get(False, 0)

    def _data_reply(self, keyword: str, owners: PhoneOwners) -> str | None:
        """The reply to YE or CX (None for the other keywords)."""
        if keyword not in ("YE", "CX"):
            return None
        if len(owners.residents) != 1:
            return NOT_REGISTERED  # unknown, or shared by several residents: no data by SMS
        rid, actor, exchange = owners.residents[0], "sms", str(uuid.uuid4())  # ties the audit entries
        if keyword == "YE":
            pension = self.reader.read("pension", rid, actor=actor, call_id=exchange)
            medical = self.reader.read("medical", rid, actor=actor, call_id=exchange)
            return (
                f"您的养老保险个人账户余额{_yuan(int(str(pension['balance_fen'])))}，"
                f"累计缴费{pension['months']}个月；医保个人账户余额{_yuan(int(str(medical['balance_fen'])))}。"
            )
        data = self.reader.read("contributions", rid, actor=actor, call_id=exchange)
        items = cast(list[dict[str, Any]], data["items"])
        rows = [f"{r['period']}养老{_yuan(r['pension_fen'])}、医保{_yuan(r['medical_fen'])}" for r in items]
        return "最近缴费：" + "；".join(rows) + "。" if rows else "暂无缴费记录。"

    def _keyword(
        self,
        c: Connection,
        phone: str,
        keyword: str,
        code: str | None,
        owners: PhoneOwners,
        now: dt.datetime,
        *,
        send: bool,
    ) -> str | None:
        """Do what TD and KT ask (even without a reply: `send` False); the reply to send."""
        if keyword in ("YE", "CX"):
            return None  # capped: no data read, no reply
        if keyword == "RATE" and code is not None:
            rated = self._rate(c, phone, int(code), now)
            return (RATED if rated else HELP) if send else None
        if keyword in ("OTHER", "RATE"):
            return HELP if send else None
        if not owners.registered:
            return NOT_REGISTERED_TD if send else None  # nothing changes for a number nobody registered
        if keyword == "KT":
            c.execute(OPTOUTS.delete().where(OPTOUTS.c.phone == phone))
            return RESUMED if send else None
        if code is None:
            return self._request_opt_out(c, phone, now) if send else None  # a code nobody receives is no use
        request = c.execute(select(REQUESTS.c.code, REQUESTS.c.requested_at).where(REQUESTS.c.phone == phone)).first()
        # One guess per code: a wrong one voids the request (else a spoofer could try the
        # million codes while the resident's replies are capped); a new TD sends a new code.
        c.execute(REQUESTS.delete().where(REQUESTS.c.phone == phone))
        if (
            request is None
            or not secrets.compare_digest(request.code, code)
            or now - request.requested_at > CONFIRM_TTL
        ):
            return BAD_CODE if send else None
        c.execute(upsert(c, SmsOptOut).values(phone=phone, at=now, source="mo").on_conflict_do_nothing())
        log.info("MO td from %s: opted out, confirmed with its code", mask_phone(phone))
        return OPTED_OUT if send else None

    @staticmethod
    def _rate(c: Connection, phone: str, answer: int, now: dt.datetime) -> bool:
        """Record the digit as the answer to the number's latest open survey (`sms_surveys`,
        written by whoever asked: a work order's follow-up); False if none is open. The
        gateway knows nothing of what asked: the survey's key tells the asker."""
        latest = (
            select(SURVEYS.c.key)
            .where(SURVEYS.c.phone == phone, SURVEYS.c.answer.is_(None), SURVEYS.c.open_until > now)
            # The key breaks a tie: the asker opens one survey per number at a time
            # (cases.followup), yet the choice stays the same whatever the rows' order.
            .order_by(SURVEYS.c.asked_at.desc(), SURVEYS.c.key.desc())
            .limit(1)
        )
        key = c.scalar(latest)
        if key is None:
            return False
        done = c.execute(
            update(SURVEYS)
            .where(SURVEYS.c.key == key, SURVEYS.c.answer.is_(None))
            .values(answer=answer, answered_at=now)
            .returning(SURVEYS.c.key)
        ).first()
        if done is not None:
            log.info("MO rating %d from %s recorded for survey %s", answer, mask_phone(phone), key)
        return done is not None

    def _request_opt_out(self, c: Connection, phone: str, now: dt.datetime) -> str:
        if c.scalar(select(OPTOUTS.c.phone).where(OPTOUTS.c.phone == phone)) is not None:
            return ALREADY_OUT
        code = f"{secrets.randbelow(10**6):06d}"
        statement = upsert(c, SmsOptOutRequest).values(phone=phone, code=code, requested_at=now)
        c.execute(statement.on_conflict_do_update(index_elements=["phone"], set_={"code": code, "requested_at": now}))
        return CONFIRM_TD.format(code=code)

    @staticmethod
    def _reply_row(phone: str, text: str, keyword: str, now: dt.datetime) -> dict[str, Any]:
        return {
            "event_id": None,
            "event_type": f"mo_reply:{keyword.lower() if keyword != 'OTHER' else 'help'}",
            "category": "reply",
            "recipient": phone,
            "text": text,
            "priority": 0,
            "status": MessageState.QUEUED,
            "attempts": 0,
            "next_attempt_at": now,
            "segments": 1,
            "created_at": now,
            "duplicate_suspect": False,
        }
