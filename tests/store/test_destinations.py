"""Numbers abroad and premium ranges refused at every door, on record; the caps on calls out.

Each path a fraudster could use to make the hotline call or text a number of theirs is tried
with a satellite (+882) number in two spellings, a UK mobile and a 95 service number, where
the number enters (CLI, work orders, preferences, business events, MO senders) and where it
leaves (the SMS submit, the callback's originate). On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from cases import orders as o
from cases.errors import NoReplyNumber
from core.business import AuditedReader
from core.calls_out import DialCapped, dial_summary, take_dial
from core.db import Store
from core.destinations import DestinationRefused, DestinationSettings
from core.models import AuditEntry, BusinessEvent, Call, Callback, Resident, SmsMessage, SmsMoText, utcnow
from core.settings import Settings, SmsSettings
from hotline.cli import main
from ivr import outbound
from sms.intake import emit, intake
from sms.mo import MoHandler
from tests.conftest import load_sample
from tests.store.sms_support import dispatching, sample_port, until_final

REFUSED = ["+8821612345678", "008821612345678", "+447700900123", "95105555"]
NOW = dt.datetime(2026, 12, 7, 2, 0, tzinfo=dt.UTC)


def _refusals(store: Store) -> list[AuditEntry]:
    with store.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "refuse:destination")))


def _count(store: Store, table: Any) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture
def cli(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_work_order_typed_with_such_a_number_is_refused_naming_the_rule(cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    for number in REFUSED:
        order = ("--category", "how_to", "--summary", "请回电", "--department", "社保卡", "--number", number)
        code, out, err = cli("orders", "create", *order)
        assert code != 0 and out == "", number
        assert "may not be called or texted" in err and ("destinations.allow" in err or "not a" in err), err
        assert number.lstrip("+0") not in err  # masked
    assert _count(store, o.ORDERS) == 0
    refusals = _refusals(store)
    assert len(refusals) == len(REFUSED)
    assert all(e.actor.startswith("cli:") and e.channel == "cli" and "new work order" in e.detail for e in refusals)


@pytest.mark.parametrize("reply_via", ["callback", "sms"])
def test_an_order_from_such_a_caller_cannot_be_answered_by_callback_or_sms(
    store: Store, settings: Settings, reply_via: str
) -> None:
    for n, number in enumerate(REFUSED):
        # The call's caller id is whatever the carrier presented: a fraudster's, asking to be called back.
        with store.session() as s:
            s.add(Call(id=f"c-abroad-{n}", started_at=NOW, caller_number=number, disposition="agent"))
        order = o.order_from_call(
            store,
            settings,
            call_id=f"c-abroad-{n}",
            category="policy_question",
            summary="请回电",
            created_by="console:1",
        )
        with pytest.raises(NoReplyNumber, match="may not be called or texted") as refused:
            o.answer_order(store, settings, order.id, actor="console:yl", answer="已办理", reply_via=reply_via)
        assert refused.value.refused is not None
        assert o.get_order(store, order.id, actor="t").order.status == "open"  # the answer rolled back
        # Answered without a reply, it closes as any other order.
        done = o.answer_order(store, settings, order.id, actor="console:yl", answer="已办理", reply_via="none")
        assert done.status == "answered"
    assert _count(store, Callback) == 0 and _count(store, BusinessEvent) == 0
    refusals = _refusals(store)
    assert len(refusals) == len(REFUSED)
    assert all(e.actor == "console:yl" and f"answer by {reply_via}" in e.detail for e in refusals)


def test_a_voice_notice_number_is_refused_by_prefs_set(cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    load_sample(store)
    with store.session() as s:
        id_number = s.scalars(select(Resident.id_number).limit(1)).one()
    for number in REFUSED:
        code, _out, err = cli("prefs", "set", id_number, "--channels", "voice,sms", "--call", number)
        assert code != 0 and "the number to call" in err and "may not be called or texted" in err, err
    assert [e.detail.split(":")[0] for e in _refusals(store)] == ["prefs set --call"] * len(REFUSED)


def test_a_business_event_to_such_a_registered_number_fails_on_record(store: Store) -> None:
    load_sample(store)
    with store.transaction() as c:
        residents = c.execute(select(Resident).order_by(Resident.id).limit(len(REFUSED))).all()
        for resident, number in zip(residents, REFUSED, strict=True):
            c.execute(Resident.__table__.update().where(Resident.id == resident.id).values(phone=number))
    for r in residents:
        emit(
            store,
            "pension_credited",
            "person",
            r.id_number,
            {"name": "x", "period": "2026-11", "amount": 1},
            r.id_number,
        )
    report = intake(store, sample_port(store), SmsSettings(), "Asia/Shanghai", now=NOW)
    assert report.failed == len(REFUSED) and report.messages == 0
    with store.session() as s:
        events = s.scalars(select(BusinessEvent)).all()
    assert all(e.status == "failed" and "refused by the destination policy" in (e.reason or "") for e in events)
    assert _count(store, SmsMessage) == 0
    refusals = _refusals(store)
    assert len(refusals) == len(REFUSED)
    assert all(e.actor == "sms" and "business event intake" in e.detail for e in refusals)


def test_a_text_from_such_a_sender_is_kept_and_gets_no_reply(store: Store, settings: Settings) -> None:
    load_sample(store)
    mo = MoHandler(store, AuditedReader(store, sample_port(store)), settings=settings.sms)
    for number in REFUSED:
        assert mo.answer(number, "YE", now=NOW) is None
        assert mo.answer(number, "TD", now=NOW) is None  # not even the help text or a code
    with store.session() as s:
        assert [t.keyword for t in s.scalars(select(SmsMoText))] == ["ye", "td"] * len(REFUSED)
    assert _count(store, SmsMessage) == 0
    assert [e.actor for e in _refusals(store)] == ["sms", "sms"] * len(REFUSED)


async def test_a_message_to_such_a_number_is_never_submitted(store: Store, tmp_path: Path) -> None:
    # Written straight into the outbox (a path that skipped intake): the submit refuses it.
    rows = [
        {
            "event_type": "mo_reply:help",
            "category": "reply",
            "recipient": number,
            "text": "您好",
            "priority": 0,
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": utcnow(),
            "segments": 1,
            "created_at": utcnow(),
            "duplicate_suspect": False,
        }
        for number in [*REFUSED, "13812345678"]
    ]
    with store.transaction() as c:
        c.execute(insert(SmsMessage), rows)
    async with dispatching(store, tmp_path, {}) as (sim, _d, _t):
        messages = await until_final(store, len(rows))
    by_number = {m.recipient: m for m in messages}
    assert by_number["13812345678"].status == "delivered"
    for number in REFUSED:
        assert by_number[number].status == "failed"
        assert "destination refused" in (by_number[number].last_error or "")
    assert [s.destination.lstrip("+") for s in sim.submitted] in (["8613812345678"], ["13812345678"])
    assert len(_refusals(store)) == len(REFUSED)


async def test_a_callback_to_such_a_number_is_not_originated(store: Store, settings: Settings) -> None:
    # The AMI is nowhere: the refusal comes before anything is asked of Asterisk.
    trunk = {"name": "carrier", "match": ["10.1.1.1"], "host": "10.1.1.1", "outbound": True}
    sip = settings.sip.model_validate({"trunks": [trunk]})
    wired = settings.model_copy(update={"sip": sip, "ami": settings.ami.model_copy(update={"port": 9})})
    for number in REFUSED:
        with pytest.raises(DestinationRefused):
            await outbound.originate(wired, store, "PJSIP/1001", 7, number)
    assert dial_summary(store, wired.destinations).placed_last_hour == 0


def test_calls_out_are_capped_per_number_and_per_hour(store: Store) -> None:
    caps = DestinationSettings(calls_per_number_day=2, calls_per_hour=4)
    take_dial(store, caps, "13812345678", "callback", 1, NOW)
    take_dial(store, caps, "13812345678", "notice", 2, NOW + dt.timedelta(minutes=1))
    with pytest.raises(DialCapped, match="calls_per_number_day") as capped:
        take_dial(store, caps, "13812345678", "callback", 1, NOW + dt.timedelta(minutes=2))  # re-taken
    assert capped.value.cap == "number_day" and "138****5678" in str(capped.value)
    take_dial(store, caps, "13900001111", "callback", 3, NOW + dt.timedelta(minutes=3))
    take_dial(store, caps, "13900002222", "callback", 4, NOW + dt.timedelta(minutes=4))
    with pytest.raises(DialCapped, match="calls_per_hour") as capped:
        take_dial(store, caps, "13900003333", "notice", 5, NOW + dt.timedelta(minutes=5))
    assert capped.value.cap == "hotline_hour"
    summary = dial_summary(store, caps, NOW + dt.timedelta(minutes=6))
    assert (summary.placed_last_hour, summary.refused_last_hour, summary.capped) == (
        4,
        {"number_day": 1, "hotline_hour": 1},
        True,
    )
    # An hour on the hotline has room again; the number waits for its 24 hours.
    take_dial(store, caps, "13900003333", "notice", 5, NOW + dt.timedelta(minutes=62))
    with pytest.raises(DialCapped):
        take_dial(store, caps, "13812345678", "callback", 1, NOW + dt.timedelta(hours=23))
    take_dial(store, caps, "13812345678", "callback", 1, NOW + dt.timedelta(hours=24, minutes=2))
    assert not dial_summary(store, caps, NOW + dt.timedelta(hours=26)).capped


def test_eight_dials_at_once_to_one_number_place_only_the_cap(store: Store) -> None:
    caps = DestinationSettings(calls_per_number_day=3)
    stores = [Store(store.url) for _ in range(8)]
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def dial(i: int) -> None:
        start.wait(timeout=10)
        try:
            take_dial(stores[i], caps, "13812345678", "callback", i, NOW)
            outcomes.append("placed")
        except DialCapped:
            outcomes.append("capped")

    threads = [threading.Thread(target=dial, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for each in stores:
        each.dispose()
    assert sorted(outcomes) == ["capped"] * 5 + ["placed"] * 3


async def test_health_warns_when_a_cap_was_hit(store: Store) -> None:
    caps = DestinationSettings(calls_per_number_day=1)
    now = utcnow()
    take_dial(store, caps, "13812345678", "callback", 1, now)
    with pytest.raises(DialCapped):
        take_dial(store, caps, "13812345678", "callback", 1, now)
    summary = await asyncio.to_thread(dial_summary, store, caps)
    assert summary.as_json() == {
        "placed_last_hour": 1,
        "calls_per_hour": caps.calls_per_hour,
        "refused_last_hour": {"number_day": 1, "hotline_hour": 0},
        "capped": True,
    }
