"""The CMPP gateway simulator over loopback TCP, driven by a client built on our codec:
two independent readings of the spec meeting on the wire. Both versions throughout."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sms import ismg_sim
from sms.cmpp_deliver import Deliver
from sms.cmpp_pdu import (
    ActiveTest,
    ActiveTestResp,
    ConnectResp,
    Submit,
    SubmitResp,
    TerminateResp,
    Version,
    check_connect_resp,
)
from sms.cmpp_text import part_text, split_text
from sms.errors import CmppConnectRefused
from sms.ismg_sim import IsmgConfig, IsmgSimulator
from tests.protocol.cmpp_client import CmppTestClient
from tests.waiting import until

ACCOUNT, SECRET = "901234", "s3cret"
VERSIONS = pytest.mark.parametrize("version", [Version.V20, Version.V30], ids=["2.0", "3.0"])


@asynccontextmanager
async def gateway(version: Version, **config: object) -> AsyncIterator[tuple[IsmgSimulator, CmppTestClient]]:
    sim = IsmgSimulator(IsmgConfig(port=0, version=version, accounts={ACCOUNT: SECRET}, **config))  # type: ignore[arg-type]
    await sim.start()
    client = CmppTestClient(sim.config.port, version)
    try:
        yield sim, client
    finally:
        await client.close()
        await sim.stop()


@asynccontextmanager
async def connected(version: Version, **config: object) -> AsyncIterator[tuple[IsmgSimulator, CmppTestClient]]:
    async with gateway(version, **config) as (sim, client):
        request, resp = await client.connect(ACCOUNT, SECRET)
        check_connect_resp(resp, request.authenticator, SECRET, version)
        yield sim, client


def _submit(text: str = "您的养老金已到账【安吉人社】", *dests: str) -> Submit:
    parts = split_text(text).parts
    assert len(parts) == 1
    return Submit(dests or ("13800000000",), parts[0].content, src_id="12333", msg_src=ACCOUNT)


async def _next(client: CmppTestClient) -> Deliver:
    async with asyncio.timeout(2):
        return await client.delivers.get()


def test_the_simulator_reads_the_wire_without_the_codec() -> None:
    tree = ast.parse(Path(ismg_sim.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("sms")}, imported


@VERSIONS
async def test_the_right_secret_connects_and_the_gateway_proves_it_knows_it(version: Version) -> None:
    async with gateway(version) as (sim, client):
        request, resp = await client.connect(ACCOUNT, SECRET)
        assert (resp.status, resp.version) == (0, version)
        check_connect_resp(resp, request.authenticator, SECRET, version)
    assert sim.counts["connect_status_0"] == 1


@VERSIONS
async def test_a_wrong_secret_is_status_3_and_the_link_closed(version: Version) -> None:
    async with gateway(version) as (_sim, client):
        request, resp = await client.connect(ACCOUNT, "not-the-secret")
        assert resp.status == 3
        with pytest.raises(CmppConnectRefused, match="Status 3"):
            check_connect_resp(resp, request.authenticator, "not-the-secret", version)
        async with asyncio.timeout(2):
            await client.closed.wait()


async def test_a_version_the_gateway_does_not_speak_is_status_4() -> None:
    async with gateway(Version.V30) as (_sim, client):
        _request, resp = await client.connect(ACCOUNT, SECRET, version=0x20)
    assert resp.status == 4


@VERSIONS
async def test_a_submit_gets_its_msg_id_and_then_a_report_quoting_it(version: Version) -> None:
    async with connected(version) as (sim, client):
        resp = await client.submit(_submit())
        deliver = await _next(client)
        report = deliver.report(version)
    assert resp.result == 0 and resp.msg_id.gateway == 12333
    assert (deliver.dest_id, deliver.src_terminal_id) == ("12333", "13800000000")  # our Src_Id, the handset
    assert (report.msg_id, report.stat, report.dest_terminal_id) == (resp.msg_id, "DELIVRD", "13800000000")
    assert sim.submitted[0].msg_fmt == 8 and sim.submitted[0].content.decode("utf-16-be").endswith("【安吉人社】")
    assert sim.deliver_results == [0]


@VERSIONS
async def test_two_destinations_each_get_a_report_with_the_configured_outcome(version: Version) -> None:
    async with connected(version, outcomes={"UNDELIV": 1.0}) as (sim, client):
        resp = await client.submit(_submit("hello", "13800000001", "13800000002"))
        reports = [(await _next(client)).report(version) for _ in range(2)]
    assert sim.submitted[0].destinations == ("13800000001", "13800000002")
    assert {(r.msg_id, r.stat, r.dest_terminal_id) for r in reports} == {
        (resp.msg_id, "UNDELIV", "13800000001"),
        (resp.msg_id, "UNDELIV", "13800000002"),
    }


@VERSIONS
async def test_content_beyond_140_octets_is_result_6_and_not_reported(version: Version) -> None:
    async with connected(version) as (sim, client):
        resp = await client.submit(Submit(("13800000000",), b"x" * 141, msg_fmt=0))
    assert resp.result == 6 and sim.counts["report_DELIVRD"] == 0


@VERSIONS
async def test_every_part_of_a_long_text_is_accepted_and_reported(version: Version) -> None:
    text = "您好，您的单位本月社保费尚未申报，请于15日前办理。" * 6  # 156 characters: 3 parts
    parts = split_text(text, reference=42).parts
    async with connected(version) as (sim, client):
        answers = []
        for p in parts:
            submit = Submit(("13800000000",), p.content, pk_total=p.pk_total, pk_number=p.pk_number, tp_udhi=p.tp_udhi)
            answers.append(await client.submit(submit))
        reports = [(await _next(client)).report(version) for _ in parts]
    assert [a.result for a in answers] == [0, 0, 0]
    assert {r.msg_id for r in reports} == {a.msg_id for a in answers} and len({a.msg_id for a in answers}) == 3
    assert [(s.pk_total, s.pk_number, s.tp_udhi, len(s.content)) for s in sim.submitted] == [
        (3, 1, 1, 140),
        (3, 2, 1, 140),
        (3, 3, 1, 6 + 2 * (156 - 134)),
    ]


@VERSIONS
async def test_a_long_mo_text_arrives_in_parts_that_join_back(version: Version) -> None:
    text = "我想查询我的养老保险缴费记录，还有医保卡余额，谢谢。" * 4
    async with connected(version) as (sim, client):
        assert await sim.inject_mo("13912345678", "12333", text) == 2
        delivers = [await _next(client), await _next(client)]
    assert all(d.registered_delivery == 0 and d.src_terminal_id == "13912345678" for d in delivers)
    assert all(d.dest_id == "12333" for d in delivers)
    pieces = sorted(part_text(d.msg_fmt, d.tp_udhi, d.content) for d in delivers)
    assert [key for key, _ in pieces] == [(1, 2, 1), (1, 2, 2)]
    assert "".join(t for _, t in pieces) == text
    assert sim.deliver_results == [0, 0]


@VERSIONS
async def test_active_test_both_ways(version: Version) -> None:
    async with connected(version) as (sim, client):
        assert await client.request(ActiveTest()) == ActiveTestResp(0)
        assert sim.active_test() == 1
        async with asyncio.timeout(2):
            await client.active_tests.get()  # answered; one more round trip and the gateway has read it
        await client.request(ActiveTest())
    assert (sim.counts["active_test"], sim.counts["active_test_resp"]) == (2, 1)


async def test_the_gateway_tests_the_link_on_its_own_when_told_to() -> None:
    async with connected(Version.V20, active_test_s=0.05) as (_sim, client):
        async with asyncio.timeout(2):
            first, second = await client.active_tests.get(), await client.active_tests.get()
    assert second > first  # each with a sequence of its own


async def test_terminate_is_answered_and_the_link_closed() -> None:
    async with connected(Version.V20) as (_sim, client):
        assert await client.terminate() == TerminateResp()
        async with asyncio.timeout(2):
            await client.closed.wait()


@VERSIONS
async def test_every_third_submit_is_flow_controlled(version: Version) -> None:
    async with connected(version, flow_every=3) as (_sim, client):
        results = [(await client.submit(_submit())).result for _ in range(7)]
    assert results == [0, 0, 8, 0, 0, 8, 0]


async def test_submits_beyond_the_window_are_flow_controlled() -> None:
    async with connected(Version.V30, flow_window=4) as (_sim, client):
        answers = await asyncio.gather(*(client.submit(_submit()) for _ in range(10)))
    assert sorted(a.result for a in answers) == [0] * 4 + [8] * 6


@VERSIONS
async def test_an_early_report_comes_before_its_submit_resp(version: Version) -> None:
    async with connected(version, early_reports=True) as (_sim, client):
        resp = await client.submit(_submit())
    kinds = [type(b) for b in client.arrived]
    assert kinds[1:3] == [Deliver, SubmitResp]  # after the CONNECT_RESP
    report = client.arrived[1]
    assert isinstance(report, Deliver) and report.report(version).msg_id == resp.msg_id


async def test_a_stalled_link_stays_open_and_answers_nothing() -> None:
    async with connected(Version.V30, stall_after=2) as (sim, client):
        assert (await client.submit(_submit())).result == 0  # the 2nd PDU: answered
        with pytest.raises(TimeoutError):
            await client.submit(_submit(), wait_s=0.3)
        assert not client.closed.is_set() and sim.counts["stalled"] == 1


async def test_a_drop_closes_the_links_and_connect_is_refused_until_the_gateway_is_back() -> None:
    async with connected(Version.V20, down_s=0.4) as (sim, client):
        assert sim.drop() == 1
        async with asyncio.timeout(2):
            await client.closed.wait()
        again = CmppTestClient(sim.config.port, Version.V20)
        _, refused = await again.connect(ACCOUNT, SECRET)
        await again.close()
        accepted = await until(_connect_accepted(sim.config.port), "the gateway back after its 0.4 s down", 10)
    assert (refused.status, accepted.status) == (5, 0)


def _connect_accepted(port: int) -> Callable[[], Awaitable[ConnectResp | None]]:
    """A connect to the gateway: its answer if it accepted, else None (asked again)."""

    async def attempt() -> ConnectResp | None:
        client = CmppTestClient(port, Version.V20)
        _, resp = await client.connect(ACCOUNT, SECRET)
        await client.close()
        return resp if resp.status == 0 else None

    return attempt


async def test_always_status_3_refuses_even_the_right_secret() -> None:
    async with gateway(Version.V30, always_status3=True) as (_sim, client):
        _, resp = await client.connect(ACCOUNT, SECRET)
    assert isinstance(resp, ConnectResp) and resp.status == 3


async def test_a_report_for_a_closed_link_waits_for_the_next_connect() -> None:
    async with connected(Version.V30, report_delay_s=0.2) as (sim, client):
        resp = await client.submit(_submit())
        await client.close()
        await until(lambda: sim.counts["reports_held"] == 1, "the report held for the closed link", 10)
        again = CmppTestClient(sim.config.port, Version.V30)
        await again.connect(ACCOUNT, SECRET)
        report = (await _next(again)).report(Version.V30)
        await again.close()
    assert report.msg_id == resp.msg_id
