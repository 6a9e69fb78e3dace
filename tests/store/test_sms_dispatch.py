"""The dispatcher end to end over TCP: events in the store, aiosmpplib to the SMSC
simulator, receipts back; with throttling, errors, early receipts and a dropped link.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import insert

from bench.sms_gateway import people, statement
from core import metrics
from core.db import Store
from core.models import BusinessEvent, Resident, SmsMessage, SmsReceipt, SmsSegment, utcnow
from core.settings import SmsSettings
from sms import outbox
from sms.dispatcher import Dispatcher
from sms.encoding import split_udh
from sms.errors import DispatcherFault
from sms.intake import emit, intake
from sms.simulator import user_data_octets
from sms.transport import SubmitResult
from tests.conftest import load_sample, make_settings
from tests.store.sms_support import Scripted, dispatching, emit_pensions, messages_of, sample_port, until_final
from tests.waiting import until


async def test_events_are_sent_and_delivered_once_each(store: Store, tmp_path: Path, sample_data: Any) -> None:
    metrics.start()  # the receipts' latency, as /metrics shows it
    counted = _receipts_counted()
    load_sample(store)
    people = sample_data[1][:20]
    emit_pensions(store, people[:15])
    emit_pensions(store, people[15:], long=True)
    async with dispatching(store, tmp_path, {}) as (sim, _d, _t):
        messages = await until_final(store, 20)
    assert {m.status for m in messages} == {"delivered"}
    long = [m for m in messages if m.event_type == "policy_news"]
    assert long and all(m.segments == 3 for m in long)  # 133 characters: 66 + 66 + 1
    assert sim.counts["accepted"] == 15 + 3 * 5
    destinations = sorted(s.destination for s in sim.submitted)
    assert len(destinations) == 30 and len(set(destinations)) == 20
    with store.session() as s:
        assert s.query(SmsSegment).filter(SmsSegment.state == "delivered").count() == 30
    assert _receipts_counted() - counted == 30  # one receipt per segment, each timed


def _receipts_counted() -> float:
    value = REGISTRY.get_sample_value("hotline_sms_receipt_seconds_count")
    return value or 0.0


async def test_long_texts_go_out_in_parts_the_smsc_takes(store: Store, tmp_path: Path, sample_data: Any) -> None:
    """Every part within GSM 03.40's 140 octets of user data, UDH included (the simulator
    refuses more with ESME_RINVMSGLEN, as an SMSC does), and no surrogate pair split."""
    load_sample(store)
    first, second = sample_data[1][:2]
    emit(store, "policy_news", "person", first.id_number, {"title": "通知", "body": "社保" * 150}, "long")
    emit(store, "policy_news", "person", second.id_number, {"title": "通知", "body": "医保😀" * 100}, "emoji")
    async with dispatching(store, tmp_path, {}) as (sim, _d, _t):
        messages = await until_final(store, 2)
    assert [(m.status, m.segments) for m in messages] == [("delivered", 5), ("delivered", 7)]
    parts = [s for s in sim.submitted if s.status == 0]
    assert len(parts) == 12 and sim.counts["rejected_0x01"] == 0
    assert max(user_data_octets(s.data_coding, s.esm_class, s.short_message) for s in parts) <= 140
    for part in parts:
        part_text = split_udh(part.short_message)[1].decode("utf-16-be")  # strict: no half of a pair
        assert part_text


async def test_throttling_and_temporary_errors_slow_down_and_retry(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    load_sample(store)
    emit_pensions(store, sample_data[1][:20])
    sim = {"tps": 8, "fail_every": {0x08: 5}}
    async with dispatching(store, tmp_path, sim, HOTLINE_SMPP_THROTTLE_PAUSE_S="0.5") as (simulator, _d, _t):
        messages = await until_final(store, 20)
    assert {m.status for m in messages} == {"delivered"}
    assert simulator.counts["rejected_0x58"] >= 1 and simulator.counts["rejected_0x08"] >= 1
    # A system error or a throttled answer refused the message for now: no attempt is
    # spent on either; each system error is counted as one refusal.
    assert {m.attempts for m in messages} == {1}
    assert sum(m.refusals for m in messages) == simulator.counts["rejected_0x08"]


async def test_permanent_errors_fail_at_once_and_endless_ones_become_dead_letters(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    load_sample(store)
    emit_pensions(store, sample_data[1][:6])
    async with dispatching(store, tmp_path, {"fail_every": {0x0B: 3, 0x08: 2}}, HOTLINE_SMS_MAX_REFUSALS="2"):
        messages = await until_final(store, 6)
    failed = [m for m in messages if m.status == "failed"]
    assert failed
    assert any("0x0B (permanent)" in (m.last_error or "") for m in failed)
    assert any((m.last_error or "").startswith("dead letter after 2 temporary refusals") for m in failed)


async def test_receipts_before_their_responses_and_ids_in_another_base(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    load_sample(store)
    emit_pensions(store, sample_data[1][:10])
    sim = {"early_receipts": True, "id_format": "hex", "receipt_id_format": "dec", "outcomes": {"DELIVRD": 1}}
    async with dispatching(store, tmp_path, sim):
        messages = await until_final(store, 10)
    assert {m.status for m in messages} == {"delivered"}


async def test_a_dropped_link_loses_nothing_and_flags_what_may_be_twice(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    load_sample(store)
    emit_pensions(store, sample_data[1][:30])
    sim = {"resp_delay_s": 0.3, "down_s": 0.3}
    async with dispatching(store, tmp_path, sim, HOTLINE_SMPP_WINDOW="5") as (simulator, _d, _t):
        # Dropped while some submissions are answered and others still wait for theirs.
        await until(
            lambda: simulator.counts["accepted"] >= 1 and simulator.outstanding >= 1,
            "an answered submission and one still unanswered",
        )
        await simulator.drop()
        simulator.config.resp_delay_s = 0.0
        messages = await until_final(store, 30, limit_s=60)
    assert {m.status for m in messages} == {"delivered"}
    suspects = [m for m in messages if m.duplicate_suspect]
    assert 1 <= len(suspects) <= 5  # at most the window was unanswered when the link dropped


def test_a_receipt_stranded_by_a_concurrent_submission_is_matched_later(store: Store, sample_data: Any) -> None:
    """Two transactions at once: the receipt found no segment, the submission found no
    receipt. rematch_receipts (run by every dispatcher step) puts them together."""
    load_sample(store)
    emit_pensions(store, sample_data[1][:1])
    now = utcnow()
    intake(store, sample_port(store), SmsSettings(quiet_hours={}), "Asia/Shanghai", now=now)
    (due,) = outbox.claim_due(store, "w", 10, dt.timedelta(minutes=5), now)
    with store.session() as s:  # as if the receipt had been written first, unseen by the submission
        s.add(SmsReceipt(smsc_id="77", stat="delivered", received_at=now))
    with store.transaction() as c:  # the submission, without looking for early receipts
        c.execute(SmsSegment.__table__.insert().values(message_id=due.id, seq=1, smsc_id="77", state="submitted"))
        c.execute(SmsMessage.__table__.update().values(status="submitted", submitted_at=now, segments=1))
    assert outbox.rematch_receipts(store, now) == 1
    (message,) = messages_of(store)
    assert message.status == "delivered"
    assert outbox.rematch_receipts(store, now) == 0


async def test_a_fault_in_sending_puts_the_messages_back_and_fails_loudly(
    store: Store, tmp_path: Path, sample_data: Any, caplog: Any
) -> None:
    """A bug or an unexpected error while sending must not leave messages claimed for ever."""
    load_sample(store)
    emit_pensions(store, sample_data[1][:3])
    settings = make_settings(tmp_path, store.url)
    settings = settings.model_copy(update={"sms": settings.sms.model_copy(update={"quiet_hours": {}})})

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("transport bug")

    dispatcher = Dispatcher(settings, store, sample_port(store), Scripted(broken), "faulty")
    # Claimed as they are taken up (3), and perhaps again by the step's second claim, if
    # the first sends have failed and put them back by then.
    assert await dispatcher.step() >= 3
    await asyncio.gather(*dispatcher.sending, return_exceptions=True)
    messages = messages_of(store)
    assert {(m.status, m.duplicate_suspect) for m in messages} == {("queued", True)}
    assert all("transport bug" in (m.last_error or "") for m in messages)
    assert "a send failed: RuntimeError('transport bug')" in caplog.text


async def test_an_answer_lost_with_the_link_is_an_attempt_and_a_refusal_is_not(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    """A refusal (never accepted) gives its attempt back; a segment that may have reached the
    SMSC, its answer lost with the link, spends one, and after `sms.max_attempts` of them
    the message is a dead letter rather than going round for ever."""
    load_sample(store)
    emit_pensions(store, sample_data[1][:1])
    settings = make_settings(tmp_path, store.url, HOTLINE_SMS_MAX_ATTEMPTS="2", HOTLINE_SMS_RETRY_BASE_S="0.001")
    settings = settings.model_copy(update={"sms": settings.sms.model_copy(update={"quiet_hours": {}})})
    answers = iter([SubmitResult(0x08), SubmitResult(None), SubmitResult(None)])

    async def submit(*_args: Any) -> SubmitResult:
        return next(answers)

    dispatcher = Dispatcher(settings, store, sample_port(store), Scripted(submit), "lossy")
    seen = []
    for _ in range(3):
        for _poll in range(1000):  # the refusal's short delay, then it is due again
            if await dispatcher.step():
                break
            await asyncio.sleep(0.01)
        await asyncio.gather(*dispatcher.sending)
        (message,) = messages_of(store)
        seen.append((message.status, message.attempts, message.refusals))
    assert seen == [("queued", 0, 1), ("queued", 1, 1), ("failed", 2, 1)]
    assert (message.last_error or "").startswith("dead letter after 2 attempts")


async def test_a_dispatcher_started_again_after_a_crash_runs_its_helpers_once(store: Store, tmp_path: Path) -> None:
    """Seen by reading: a supervised restart of a crashed `run` started a second group commit
    and a second batch intake beside the first ones, which had kept running."""
    settings = make_settings(tmp_path, store.url)

    async def never(*_args: Any) -> Any:
        raise AssertionError("nothing to send")

    dispatcher = Dispatcher(settings, store, sample_port(store), Scripted(never), "restarted")
    faults = iter([RuntimeError("a bug in step"), None])
    real_step = dispatcher.step
    steps = []

    async def step() -> int:
        steps.append(1)
        fault = next(faults, None)
        if fault is not None:
            raise fault
        return await real_step()

    dispatcher.step = step  # type: ignore[method-assign]
    stop = asyncio.Event()
    with pytest.raises(RuntimeError, match="a bug in step"):
        await dispatcher.run(stop)
    again = asyncio.create_task(dispatcher.run(stop))
    # The helpers start before the first step; two steps of the restarted run, and its loop
    # has gone round once with them running.
    await until(lambda: len(steps) >= 3, "two steps of the restarted run")
    names = [t.get_name() for t in asyncio.all_tasks() if not t.done()]
    assert names.count("sms-answers") == 1 and names.count("sms-batch-intake") == 1
    stop.set()
    await asyncio.wait_for(again, 20)


async def test_a_group_commit_that_fails_fails_the_dispatchers_run(store: Store, tmp_path: Path) -> None:
    """Found in review: the answers' group commit died on a fault of ours and the dispatcher
    went on claiming, its sends waiting for ever and /healthz saying all was well."""
    settings = make_settings(tmp_path, store.url)

    async def never(*_args: Any) -> Any:
        raise AssertionError("nothing to send")

    dispatcher = Dispatcher(settings, store, sample_port(store), Scripted(never), "faulty-commit")

    def refuse(_items: list[Any]) -> None:
        raise RuntimeError("a row refused")

    dispatcher.answers.write = refuse
    stop = asyncio.Event()
    waiter = asyncio.create_task(dispatcher.answers.put((None, None)))
    with pytest.raises(DispatcherFault, match="sms-answers stopped"):
        await asyncio.wait_for(dispatcher.run(stop), 20)
    with pytest.raises(RuntimeError, match="a row refused"):
        await waiter
    stop.set()
    await asyncio.gather(*dispatcher.helpers.values(), return_exceptions=True)


async def test_an_instant_reminder_overtakes_a_running_batch(store: Store, tmp_path: Path, sample_data: Any) -> None:
    """600 statements paced at 100/s: a pension reminder committed once the batch is under
    way goes out next, with most of the batch still behind it."""
    load_sample(store)
    batch = people(600)
    with store.transaction() as c:
        c.execute(insert(Resident), batch)
        c.execute(insert(BusinessEvent), [statement(p) for p in batch])
    async with dispatching(store, tmp_path, {}, HOTLINE_SMPP_TPS="100") as (sim, _d, _t):
        await until(lambda: sim.counts["accepted"] >= 50, "the batch under way: 50 sent")
        r = sample_data[1][0]
        emit(store, "pension_credited", "person", r.id_number, {"name": r.name, "period": "2026-11", "amount": 1}, "p")
        messages = await until_final(store, 601, limit_s=60)
    instant = next(m for m in messages if m.event_type == "pension_credited")
    assert instant.status == "delivered" and instant.submitted_at is not None
    behind = [
        m for m in messages if m.category == "statement" and m.submitted_at and m.submitted_at > instant.submitted_at
    ]
    assert len(behind) >= 400, f"only {len(behind)} of 600 batch messages went after the instant one"
    order = [s.destination for s in sim.submitted]
    assert order.index(r.phone) < 200
