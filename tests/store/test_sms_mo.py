"""Residents' texts: YE, CX and TD answered only to registered numbers, audited; long
texts reassembled from their parts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.business import AuditedReader
from core.db import Store
from core.models import AuditEntry, ResidentPhone, SmsMessage, SmsOptOut
from core.sample_port import SampleBusinessPort
from sms.encoding import encode
from sms.mo import HELP, NOT_REGISTERED, MoHandler, Reassembly
from sms.pdu import Inbound
from tests.conftest import PEPPER, load_sample


def _handler(store: Store) -> MoHandler:
    return MoHandler(store, AuditedReader(store, SampleBusinessPort(store, PEPPER)))


def test_ye_answers_the_balances_to_the_registered_number_and_is_audited(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][0]
    reply = _handler(store).answer(r.phone, " ye ")
    yuan = f"{r.pension_balance_fen // 100:,}.{r.pension_balance_fen % 100:02d}元"
    assert yuan in reply and f"累计缴费{r.pension_months}个月" in reply and reply.endswith("【安吉人社】")
    with store.session() as s:
        queued = s.scalars(select(SmsMessage)).one()
        audit = sorted((a.actor, a.action, a.resident_id) for a in s.scalars(select(AuditEntry)))
    assert (queued.recipient, queued.priority, queued.category, queued.event_id) == (r.phone, 0, "reply", None)
    assert audit == [("sms", "read:medical", r.id), ("sms", "read:pension", r.id)]


def test_cx_lists_the_last_contributions(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][1]
    reply = _handler(store).answer(r.phone, "CX")
    assert reply.startswith("最近缴费：") and r.contributions[0][0] in reply


def test_an_unregistered_number_gets_no_data_and_td_opts_out(store: Store, sample_data: Any) -> None:
    load_sample(store)
    handler = _handler(store)
    assert handler.answer("13000000000", "YE").startswith(NOT_REGISTERED)
    assert handler.answer("13000000000", "你好").startswith(HELP)
    r = sample_data[1][2]
    handler.answer(r.phone, "TD")
    handler.answer(r.phone, "td")  # twice is fine
    with store.session() as s:
        assert s.scalars(select(SmsOptOut.phone)).all() == [r.phone]
        assert s.scalars(select(AuditEntry)).all() == []  # no data was read


def _parts(text: str, reference: int, eight_bit: bool = False) -> list[Inbound]:
    enc = encode(text, reference)
    out = []
    for seg in enc.segments:
        udh = seg.udh
        if eight_bit:  # as many handsets send it: IEI 0x00, a one-byte reference
            udh = bytes((5, 0x00, 3, reference & 0xFF, udh[5], udh[6]))
        out.append(Inbound("13912345678", "12333", enc.esm_class, enc.data_coding, udh + seg.payload, None))
    return out


def test_parts_are_reassembled_in_any_order_and_stale_ones_dropped() -> None:
    text = "YE" + "，我想查询一下我的养老金账户余额" * 6
    r = Reassembly()
    first, second = _parts(text, 0x1234)
    assert r.add(second, 0.0) is None
    assert r.add(first, 1.0) == text
    a, b = _parts(text, 77, eight_bit=True)
    assert r.add(a, 2.0) is None
    assert r.add(b, 3.0) == text
    lone, _ = _parts(text, 5)
    r.add(lone, 10.0)
    assert r.parts and r.add(_parts("hi", 0)[0], 1000.0) == "hi" and not r.parts  # expired


def test_a_residents_second_registered_number_may_ask_too(store: Store, sample_data: Any) -> None:
    load_sample(store)
    r = sample_data[1][2]
    with store.session() as s:
        s.add(ResidentPhone(resident_id=r.id, phone="13700000002"))
    reply = _handler(store).answer("13700000002", "YE")
    assert f"累计缴费{r.pension_months}个月" in reply
    with store.session() as s:
        assert s.scalars(select(SmsMessage.recipient)).all() == ["13700000002"]
