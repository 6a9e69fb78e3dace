"""Twilio as the transport: the dispatcher sends through the `twilio` client to a local
server that follows Twilio's documented Messages API (tests/twilio_fake.py), and Twilio's
status callbacks reach the console's /twilio/status, where X-Twilio-Signature is checked.
On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from bench.procs import free_port
from console.app import ConsoleDeps, make_app
from core.db import Store
from core.models import Resident, SmsSegment
from core.sample_port import SampleBusinessPort
from core.settings import Settings
from ivr.agents import AgentControl
from sms.dispatcher import Dispatcher
from sms.twilio import TwilioTransport, e164
from tests.conftest import PEPPER, load_sample, make_settings
from tests.store.sms_support import emit_pensions, messages_of, sample_port, until_final
from tests.twilio_fake import FakeTwilio, signature
from tests.waiting import until


@asynccontextmanager
async def twilio_stack(
    store: Store, tmp_path: Path, fake: FakeTwilio, **env: str
) -> AsyncIterator[tuple[Dispatcher, TwilioTransport, str]]:
    await fake.start()
    web_port = free_port()
    callback = f"http://127.0.0.1:{web_port}/twilio/status"
    settings: Settings = make_settings(
        tmp_path,
        store.url,
        HOTLINE_SMS_TRANSPORT="twilio",
        HOTLINE_SMS_POLL_S="0.05",
        HOTLINE_SMS_RETRY_BASE_S="0.1",
        HOTLINE_TWILIO_ACCOUNT_SID=fake.account_sid,
        HOTLINE_TWILIO_AUTH_TOKEN=fake.auth_token,
        HOTLINE_TWILIO_FROM_NUMBER="+8657212333",
        HOTLINE_TWILIO_STATUS_CALLBACK_URL=callback,
        HOTLINE_TWILIO_BASE_URL=fake.base_url,
        HOTLINE_TWILIO_TPS="200",
        HOTLINE_TWILIO_THROTTLE_PAUSE_S="0.2",
        **env,
    )
    settings = settings.model_copy(update={"sms": settings.sms.model_copy(update={"quiet_hours": {}})})
    deps = ConsoleDeps(settings, store, SampleBusinessPort(store, PEPPER), AgentControl(settings, store), None)
    server = TestServer(make_app(deps), host="127.0.0.1", port=web_port)
    await server.start_server()
    transport = TwilioTransport(settings.twilio)
    await transport.start()

    dispatcher = Dispatcher(settings, store, sample_port(store), transport, "twilio-test")
    stop = asyncio.Event()
    loop = asyncio.create_task(dispatcher.run(stop))
    try:
        yield dispatcher, transport, callback
    finally:
        stop.set()
        await asyncio.wait_for(loop, 20)
        await transport.stop()
        await server.close()
        await fake.stop()


async def test_messages_go_through_twilio_and_its_signed_callbacks_settle_them(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    load_sample(store)
    people = sample_data[1][:12]
    emit_pensions(store, people)
    fake = FakeTwilio(undelivered={e164(people[0].phone, "86")})
    async with twilio_stack(store, tmp_path, fake):
        messages = await until_final(store, 12)
    by_phone = {m.recipient: m for m in messages}
    assert by_phone[people[0].phone].status == "undelivered"
    assert {m.status for m in messages if m.recipient != people[0].phone} == {"delivered"}
    sent = {r["To"]: r for r in fake.requests}
    assert sorted(sent) == sorted(f"+86{p.phone}" for p in people)
    for m in messages:
        request = sent[f"+86{m.recipient}"]
        assert request["Body"] == m.text and request["From"] == "+8657212333"
        assert request["StatusCallback"].endswith("/twilio/status")
    with store.session() as s:
        ids = {seg.message_id: seg.smsc_id for seg in s.scalars(select(SmsSegment))}
    assert {ids[m.id] for m in messages} == {r["Sid"].lower() for r in fake.requests}
    assert all(code == 204 for _, _, code in fake.callbacks)


async def test_429_slows_down_503_retries_and_an_invalid_number_fails_with_twilios_reason(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    load_sample(store)
    people = sample_data[1][:10]
    emit_pensions(store, people)
    with store.transaction() as c:  # a number in a range Twilio knows to be unassigned
        c.execute(update(Resident).where(Resident.id_number == people[3].id_number).values(phone="14000000000"))
    fake = FakeTwilio(rate_limit_first=3, fail_every=5, invalid={"+8614000000000"})
    async with twilio_stack(store, tmp_path, fake) as (_d, transport, _url):
        messages = await until_final(store, 10)
    failed = [m for m in messages if m.status == "failed"]
    assert [m.recipient for m in failed] == ["14000000000"]
    assert "Twilio HTTP 400 error 21211" in (failed[0].last_error or "")
    assert {m.status for m in messages if m.recipient != "14000000000"} == {"delivered"}
    assert fake.answers[:3] == [429, 429, 429] and transport.throttle.count == 3
    assert 503 in fake.answers
    assert len(fake.requests) == 9  # each good message accepted once, whatever was refused before


async def test_a_callback_without_the_right_signature_is_refused_and_changes_nothing(
    store: Store, tmp_path: Path, sample_data: Any
) -> None:
    load_sample(store)
    emit_pensions(store, sample_data[1][:1])
    fake = FakeTwilio(callback_delay_s=30)  # no callbacks of its own within the test
    async with twilio_stack(store, tmp_path, fake) as (_d, _t, url):
        await until(
            lambda: fake.requests and messages_of(store)[0].status == "submitted", "the message submitted to Twilio", 10
        )
        form = fake.requests[0]
        sid = form["Sid"]
        assert await fake.callback(url, sid, "undelivered", form, sign_with="not-the-token") == 403
        params = {"MessageSid": sid, "MessageStatus": "undelivered"}
        async with ClientSession() as http:
            async with http.post(url, data=params) as unsigned:
                assert unsigned.status == 403
            # Signed for other content: the status changed after signing.
            signed = signature(fake.auth_token, url, {**params, "MessageStatus": "delivered"})
            async with http.post(url, data=params, headers={"X-Twilio-Signature": signed}) as tampered:
                assert tampered.status == 403
        assert messages_of(store)[0].status == "submitted"
        assert await fake.callback(url, sid, "delivered", form) == 204
        assert messages_of(store)[0].status == "delivered"
