"""The CMPP transport against the gateway simulator over loopback TCP, CMPP 2.0 and 3.0:
CONNECT, the window, SUBMIT and its report, long texts, MO, ACTIVE_TEST and TERMINATE
both ways, and the faults: Result 8, other Results, early reports, a link that stops
answering, a gateway that drops every link and refuses CONNECT, Status 3."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from core.settings import CmppSettings
from sms.bind_health import LinkState
from sms.cmpp import CmppPart, CmppTransport
from sms.cmpp_pdu import MSG_FMT_UCS2
from sms.cmpp_text import Part
from sms.encoding import decode, split_udh
from sms.ismg_sim import IsmgConfig, IsmgSimulator
from sms.pdu import Inbound
from sms.receipts import canonical, parse_receipt
from sms.status import ESME_RSUBMITFAIL, ESME_RSYSERR, ESME_RTHROTTLED
from sms.transport import SubmitResult

ACCOUNT, SECRET, SERVICE_CODE = "901234", "s3cret", "10657123"
VERSIONS = pytest.mark.parametrize("version", ["2.0", "3.0"])
NOTICE = "您的养老金已到账，请注意查收【安吉人社】"


@dataclass
class Inbox:
    messages: list[Inbound] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.messages) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def until(condition: Callable[[], bool], limit_s: float = 10.0) -> None:
    async with asyncio.timeout(limit_s):
        while not condition():  # noqa: ASYNC110  (polling the simulator's counters)
            await asyncio.sleep(0.01)


@asynccontextmanager
async def linked(
    version: str, sim: dict[str, object] | None = None, **cmpp: object
) -> AsyncIterator[tuple[IsmgSimulator, CmppTransport, Inbox]]:
    config = IsmgConfig(port=0, version=0x20 if version == "2.0" else 0x30, accounts={ACCOUNT: SECRET}, **(sim or {}))  # type: ignore[arg-type]
    gateway = IsmgSimulator(config)
    await gateway.start()
    inbox = Inbox()

    async def on_deliver(message: Inbound) -> None:
        inbox.messages.append(message)
        inbox.arrived.set()

    values: dict[str, object] = {"reconnect_first_s": 0.05, "reconnect_most_s": 0.2, **cmpp}
    settings = CmppSettings(
        port=config.port,
        sp_id=ACCOUNT,
        secret=SECRET,
        src_id=SERVICE_CODE,
        version=version,
        **values,  # type: ignore[arg-type]
    )
    transport = CmppTransport(settings, on_deliver)
    await transport.start()
    try:
        if not sim or not sim.get("always_status3"):
            await until(lambda: all(link.up for link in transport.links))
        yield gateway, transport, inbox
    finally:
        await transport.stop()
        await gateway.stop()


async def send(
    transport: CmppTransport, text: str, number: str = "13800000000", urgent: bool = False
) -> list[SubmitResult]:
    return [await transport.submit(number, part, urgent) for part in transport.parts(text, 7, "pension")]


@VERSIONS
async def test_parts_are_submitted_and_their_reports_name_the_msg_id(version: str) -> None:
    async with linked(version, src_extensions={"pension": "01"}) as (gateway, transport, inbox):
        sends = [
            transport.submit(f"1380000{i:04d}", transport.parts(NOTICE, i, "pension")[0], False) for i in range(20)
        ]
        results = await asyncio.gather(*sends)
        await inbox.wait_for(20)
    assert all(r.status == 0 and r.smsc_id for r in results)
    assert len({r.smsc_id for r in results}) == 20
    receipts = [parse_receipt(m.short_message.decode(), m.receipted_id) for m in inbox.messages]
    assert all(m.is_receipt for m in inbox.messages)
    assert {canonical(r.message_id, 0) for r in receipts} == {canonical(r.smsc_id or "", 0) for r in results}
    assert {r.stat for r in receipts} == {"DELIVRD"}
    assert {m.source for m in inbox.messages} == {f"1380000{i:04d}" for i in range(20)}
    assert {s.msg_fmt for s in gateway.submitted} == {MSG_FMT_UCS2}
    assert gateway.deliver_results == [0] * 20  # every report answered, Result 0


@VERSIONS
async def test_a_long_text_goes_in_parts_of_140_octets_with_the_6_octet_header(version: str) -> None:
    text = "城乡居民医保集中缴费期为9月1日至12月31日，请及时缴纳。" * 8  # 240 characters, 67 a part
    async with linked(version) as (gateway, transport, inbox):
        results = await send(transport, text)
        await inbox.wait_for(len(results))
    assert len(results) == 4 and all(r.status == 0 for r in results)
    parts = gateway.submitted
    assert [(p.pk_total, p.pk_number, p.tp_udhi) for p in parts] == [(4, n, 1) for n in range(1, 5)]
    assert max(len(p.content) for p in parts) == 140
    assert {p.content[:5] for p in parts} == {bytes((5, 0, 3, 7, 4))}
    assert "".join(p.content[6:].decode("utf-16-be") for p in parts) == text


@VERSIONS
async def test_the_window_is_kept_per_link_and_a_silent_link_is_closed_and_connected_again(version: str) -> None:
    """A gateway that takes the CONNECT and then reads nothing: `window` SUBMITs go out
    (urgent ones: batch ones keep to their share of it),
    the rest wait; after T the link is closed, those on the wire are lost (the dispatcher
    requeues them as possible duplicates), and the link connects again."""
    sim = {"stall_after": 1}
    async with linked(version, sim, window=3, response_timeout_s=0.3, active_test_s=5) as (gateway, transport, _):
        (link,) = transport.links
        sends = [
            asyncio.create_task(transport.submit(f"1390000{i:04d}", transport.parts("hi", i)[0], urgent=True))
            for i in range(5)
        ]
        await until(lambda: link.submits == 3)
        assert len(link.inflight) == 3 and link.reserved == 3
        await until(lambda: gateway.counts["connect_status_0"] >= 2)
        lost = [t for t in sends if t.done()]
        assert len(lost) == 3 and all(t.result().lost and t.result().sent for t in lost)
        assert "a SUBMIT unanswered" in (transport.report().detail or "")
    results = await asyncio.gather(*sends)
    assert all(r.lost for r in results)  # the last two: on the stalled new link, or unsent at stop


@VERSIONS
async def test_active_test_unanswered_retries_times_closes_the_link(version: str) -> None:
    async with linked(version, {"stall_after": 1}, active_test_s=0.1, response_timeout_s=0.1, retries=2) as (
        gateway,
        transport,
        _,
    ):
        await until(lambda: gateway.counts["connect_status_0"] >= 2)
        assert transport.links[0].drops >= 1
        assert transport.report().sick_binds >= 1


@VERSIONS
async def test_active_test_and_terminate_both_ways(version: str) -> None:
    async with linked(version, active_test_s=0.1, response_timeout_s=1.0) as (gateway, transport, _):
        assert gateway.active_test() == 1
        await until(lambda: gateway.counts["active_test_resp"] >= 1)  # ours answered by the gateway
        await until(lambda: gateway.counts["active_test"] >= 1)  # the gateway's, answered by us
        assert gateway.terminate() == 1
        await until(lambda: gateway.counts["terminate_resp"] == 1)
        await until(lambda: gateway.counts["connect_status_0"] == 2)  # and connected again
        await until(lambda: transport.links[0].up)
        assert (await send(transport, NOTICE))[0].status == 0
    assert gateway.counts["terminate"] == 1  # ours, on stop, answered


@VERSIONS
async def test_result_8_pauses_the_link_and_is_a_slow_down(version: str) -> None:
    async with linked(version, {"flow_every": 2}, flow_pause_s=0.2) as (_gateway, transport, _):
        first, second = await send(transport, NOTICE), await send(transport, NOTICE)
        assert first[0].status == 0
        assert second[0].status == ESME_RTHROTTLED and second[0].detail == "CMPP Result 8 (flow control error)"
        assert transport.report().state is LinkState.THROTTLED
        again = await send(transport, NOTICE)  # after the pause
        assert again[0].status == 0
        assert transport.report().state is LinkState.BOUND


@VERSIONS
async def test_other_results_are_temporary_or_permanent_and_named(version: str) -> None:
    async with linked(version, {"refuse_every": {3: 2}}) as (_gateway, transport, _):
        ok, refused = (await send(transport, NOTICE))[0], (await send(transport, NOTICE))[0]
        too_long = await transport.submit("13800000000", CmppPart(MSG_FMT_UCS2, Part(1, 1, 0, bytes(150)), "106"))
        assert "CMPP Result 6 (over max message length)" in (transport.report().detail or "")
    assert ok.status == 0
    assert (refused.status, refused.detail) == (ESME_RSYSERR, "CMPP Result 3 (duplicate message sequence)")
    assert (too_long.status, too_long.detail) == (ESME_RSUBMITFAIL, "CMPP Result 6 (over max message length)")


@VERSIONS
async def test_a_report_before_its_submit_resp_is_handed_on(version: str) -> None:
    async with linked(version, {"early_reports": True}) as (_gateway, transport, inbox):
        (result,) = await send(transport, NOTICE)
        assert len(inbox.messages) == 1  # already there when the SUBMIT_RESP came
    assert canonical(inbox.messages[0].receipted_id or "", 0) == canonical(result.smsc_id or "", 0)


@VERSIONS
async def test_a_gateway_that_drops_every_link_and_refuses_connect_for_a_while(version: str) -> None:
    async with linked(version, {"down_s": 0.3, "report_delay_s": 5.0}, links=2) as (gateway, transport, _):
        sends = [
            asyncio.create_task(transport.submit(f"1370000{i:04d}", transport.parts("hi", i)[0])) for i in range(4)
        ]
        await until(lambda: len(gateway.submitted) == 4)
        await until(lambda: all(t.done() for t in sends))
        assert {link.submits for link in transport.links} == {2}  # spread over both links
        assert gateway.drop() == 2
        await until(lambda: gateway.counts["connect_status_5"] >= 1)  # refused while down
        await until(lambda: gateway.counts["connect_status_0"] >= 4)  # both back
        await until(lambda: all(link.up for link in transport.links))
        assert (await send(transport, NOTICE))[0].status == 0
    assert all(t.result().status == 0 for t in sends)


@VERSIONS
async def test_status_3_stops_the_link_with_a_clear_error_and_no_retry(version: str) -> None:
    async with linked(version, {"always_status3": True}, links=2) as (gateway, transport, _):
        await until(lambda: all(task.done() for task in transport._tasks))
        assert gateway.counts["connect_status_3"] == 2  # once per link, never again
        report = transport.report()
        assert report.state is LinkState.STOPPED and "Status 3" in (report.detail or "")
        assert transport.failed is not None


async def test_a_gateway_of_the_other_version_is_named_and_retried() -> None:
    gateway = IsmgSimulator(IsmgConfig(port=0, version=0x20, accounts={ACCOUNT: SECRET}))
    await gateway.start()
    settings = CmppSettings(
        port=gateway.config.port, sp_id=ACCOUNT, secret=SECRET, src_id=SERVICE_CODE, reconnect_first_s=0.05
    )

    async def nothing(_message: Inbound) -> None:
        raise AssertionError("nothing is delivered")

    transport = CmppTransport(settings, nothing)
    await transport.start()
    try:
        await until(lambda: gateway.counts["connect_status_4"] >= 2)
        assert "Status 4 (version too high)" in (transport.report().detail or "")
    finally:
        await transport.stop()
        await gateway.stop()


@VERSIONS
async def test_a_residents_long_text_arrives_in_parts_with_their_header(version: str) -> None:
    text = "YE 我想查询一下我的养老金账户余额，谢谢" * 4
    async with linked(version) as (gateway, _transport, inbox):
        sent = await gateway.inject_mo("13912345678", SERVICE_CODE, text)
        await inbox.wait_for(sent)
        await until(lambda: len(gateway.deliver_results) == sent)
    assert sent == 2 and gateway.deliver_results == [0, 0]
    assert all(m.esm_class & 0x40 and not m.is_receipt for m in inbox.messages)
    assert {(m.source, m.destination) for m in inbox.messages} == {("13912345678", SERVICE_CODE)}
    pieces = sorted((split_udh(m.short_message) for m in inbox.messages), key=lambda cp: cp[0].seq if cp[0] else 0)
    assert "".join(decode(m.data_coding, body) for m, (_, body) in zip(inbox.messages, pieces, strict=True)) == text


@VERSIONS
async def test_a_deliver_not_stored_is_answered_for_the_gateway_to_send_again(version: str) -> None:
    async with linked(version) as (gateway, transport, _):

        async def broken(_message: Inbound) -> None:
            raise RuntimeError("the store is away")

        transport.on_deliver = broken
        await gateway.inject_mo("13912345678", SERVICE_CODE, "YE")
        await until(lambda: len(gateway.deliver_results) == 1)
    assert gateway.deliver_results == [8]
