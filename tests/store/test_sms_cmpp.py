"""The whole SMS gateway over CMPP 2.0 and 3.0 (`sms.transport = "cmpp"`), as `hotline
serve` runs it, against the gateway simulator over TCP: reminders and batches, long texts,
reports, residents' keywords, and the gateway's faults. Nothing lost, nothing stuck."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import Store
from core.errors import SettingsError
from core.models import SmsMoText, SmsSegment
from core.sample_port import SampleBusinessPort
from sms import link_status
from sms.cmpp import CmppTransport
from sms.ismg_sim import IsmgConfig, IsmgSimulator
from sms.mo import HELP
from sms.service import SmsService
from tests.conftest import PEPPER, load_sample, make_settings
from tests.store.sms_support import emit_pensions, until_final

ACCOUNT, SECRET, SERVICE_CODE = "901234", "s3cret", "10657123"
VERSIONS = pytest.mark.parametrize("version", ["2.0", "3.0"])


@asynccontextmanager
async def gateway(
    store: Store, tmp_path: Path, version: str, sim: dict[str, Any] | None = None, **env: str
) -> AsyncIterator[tuple[IsmgSimulator, SmsService]]:
    config = IsmgConfig(port=0, version=0x20 if version == "2.0" else 0x30, accounts={ACCOUNT: SECRET}, **(sim or {}))
    ismg = IsmgSimulator(config)
    await ismg.start()
    settings = make_settings(
        tmp_path,
        store.url,
        HOTLINE_SMS_TRANSPORT="cmpp",
        HOTLINE_CMPP_PORT=str(config.port),
        HOTLINE_CMPP_SP_ID=ACCOUNT,
        HOTLINE_CMPP_SECRET=SECRET,
        HOTLINE_CMPP_SRC_ID=SERVICE_CODE,
        HOTLINE_CMPP_VERSION=version,
        HOTLINE_CMPP_RECONNECT_FIRST_S="0.05",
        HOTLINE_CMPP_RECONNECT_MOST_S="0.2",
        HOTLINE_CMPP_FLOW_PAUSE_S="0.05",
        HOTLINE_SMS_POLL_S="0.05",
        HOTLINE_SMS_RETRY_BASE_S="0.1",
        **env,
    )
    settings = settings.model_copy(update={"sms": settings.sms.model_copy(update={"quiet_hours": {}})})
    service = SmsService(settings, store, SampleBusinessPort(store, PEPPER))
    await service.start()
    try:
        cmpp = service.transport
        assert isinstance(cmpp, CmppTransport)
        await until(lambda: all(link.up for link in cmpp.links))  # connected: MO reaches us
        yield ismg, service
    finally:
        await service.stop()
        await ismg.stop()


def _segments(store: Store) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    with store.session() as s:
        for seg in s.scalars(select(SmsSegment).order_by(SmsSegment.seq)):
            out.setdefault(seg.message_id, []).append(seg.state)
    return out


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110  (the simulator's counters)
            await asyncio.sleep(0.01)


@VERSIONS
async def test_reminders_and_long_notices_are_sent_and_delivered_once_each(
    store: Store, tmp_path: Path, sample_data: Any, version: str
) -> None:
    load_sample(store)
    people = sample_data[1][:20]
    emit_pensions(store, people[:15])
    emit_pensions(store, people[15:], long=True)
    async with gateway(store, tmp_path, version, HOTLINE_CMPP_LINKS="2") as (ismg, service):
        messages = await until_final(store, 20)
        rows = link_status.links(store, dt.datetime.now(dt.UTC))
    assert {m.status for m in messages} == {"delivered"}
    long = [m for m in messages if m.event_type == "policy_news"]
    assert long and {m.segments for m in long} == {2}  # 133 characters: 67 + 66, in 6-octet-header parts
    assert len(ismg.submitted) == 15 + 2 * 5 and {s.result for s in ismg.submitted} == {0}
    assert {s.source_addr for s in ismg.submitted} == {ACCOUNT}
    assert all(set(states) == {"delivered"} for states in _segments(store).values())
    assert rows[0]["state"] == "bound" and rows[0]["address"].startswith(f"cmpp {version} ")
    assert link_status.as_text(rows)[0].startswith(f"cmpp link {service.worker}: bound since ")
    assert rows[0]["detail"] == "2 of 2 links up"
    assert service.dispatcher.sent_segments == 25


@VERSIONS
async def test_a_long_text_is_delivered_only_when_every_part_is(
    store: Store, tmp_path: Path, sample_data: Any, version: str
) -> None:
    load_sample(store)
    emit_pensions(store, sample_data[1][:12], long=True)
    sim = {"outcomes": {"DELIVRD": 0.7, "UNDELIV": 0.3}, "seed": 7}
    async with gateway(store, tmp_path, version, sim) as (_ismg, _service):
        messages = await until_final(store, 12)
    segments = _segments(store)
    for m in messages:
        states = segments[m.id]
        assert len(states) == 2
        assert (m.status == "delivered") == (states == ["delivered", "delivered"]), (m.status, states)
    assert {m.status for m in messages} == {"delivered", "undelivered"}  # both happened with this seed


@VERSIONS
async def test_flow_control_refusals_and_early_reports_lose_nothing(
    store: Store, tmp_path: Path, sample_data: Any, version: str
) -> None:
    load_sample(store)
    emit_pensions(store, sample_data[1][:30])
    sim = {"flow_every": 4, "refuse_every": {3: 7}, "early_reports": True}
    async with gateway(store, tmp_path, version, sim) as (ismg, _service):
        messages = await until_final(store, 30)
    assert {m.status for m in messages} == {"delivered"}
    assert ismg.counts["result_8"] >= 5 and ismg.counts["result_3"] >= 3
    accepted = [s for s in ismg.submitted if s.result == 0]
    assert len(accepted) == 30  # each sent again until taken, and never once more
    assert not any(m.duplicate_suspect for m in messages)


@VERSIONS
async def test_a_gateway_that_drops_every_link_mid_batch_loses_nothing(
    store: Store, tmp_path: Path, sample_data: Any, version: str
) -> None:
    load_sample(store)
    emit_pensions(store, sample_data[1][:40])
    sim = {"down_s": 0.3, "flow_window": 20}  # 20 a second: the drop comes mid-batch
    async with gateway(store, tmp_path, version, sim, HOTLINE_CMPP_LINKS="2") as (ismg, _service):
        await until(lambda: len([s for s in ismg.submitted if s.result == 0]) >= 10)
        ismg.drop()
        messages = await until_final(store, 40)
    assert {m.status for m in messages} == {"delivered"}
    assert ismg.counts["drops"] == 1 and ismg.counts["connect_status_0"] >= 4
    assert len({s.destinations for s in ismg.submitted if s.result == 0}) == 40


@VERSIONS
async def test_residents_keywords_over_cmpp_are_answered_over_cmpp(
    store: Store, tmp_path: Path, sample_data: Any, version: str
) -> None:
    """`YE` answered with the balances; a long text (two parts) reassembled whole, and as it
    is no keyword, answered with the help text; every DELIVER answered Result 0."""
    load_sample(store)
    short, long = sample_data[1][0], sample_data[1][1]
    question = "你好，我想查询一下我的养老金账户余额和医保账户余额" * 3
    async with gateway(store, tmp_path, version) as (ismg, _service):
        await ismg.inject_mo(short.phone, SERVICE_CODE, "YE")
        assert await ismg.inject_mo(long.phone, SERVICE_CODE, question) == 2
        replies = {m.recipient: m for m in await until_final(store, 2)}
        await until(lambda: len(ismg.deliver_results) == 2 + 1 + 2)  # the texts' parts, the replies' reports
    assert replies[short.phone].text.startswith("您的养老保险个人账户余额")
    assert replies[long.phone].text.startswith(HELP)
    assert {r.status for r in replies.values()} == {"delivered"}
    assert set(ismg.deliver_results) == {0}
    assert {s.destinations for s in ismg.submitted} == {(short.phone,), (long.phone,)}
    with store.session() as s:
        texts = {t.phone: t.text for t in s.scalars(select(SmsMoText))}
    assert texts == {short.phone: "YE", long.phone: question}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HOTLINE_CMPP_SECRET": ""}, r"cmpp.secret \(or HOTLINE_CMPP_SECRET\)"),
        ({"HOTLINE_CMPP_SP_ID": ""}, r"cmpp.sp_id \(or HOTLINE_CMPP_SP_ID\)"),
        ({"HOTLINE_CMPP_SRC_ID": ""}, r"set cmpp.src_id"),
    ],
)
def test_serve_refuses_cmpp_without_its_account(store: Store, tmp_path: Path, env: dict[str, str], named: str) -> None:
    account = {
        "HOTLINE_SMS_TRANSPORT": "cmpp",
        "HOTLINE_CMPP_SP_ID": ACCOUNT,
        "HOTLINE_CMPP_SECRET": SECRET,
        "HOTLINE_CMPP_SRC_ID": SERVICE_CODE,
    }
    settings = make_settings(tmp_path, store.url, **(account | env))
    with pytest.raises(SettingsError, match=named):
        SmsService(settings, store, SampleBusinessPort(store, PEPPER))
