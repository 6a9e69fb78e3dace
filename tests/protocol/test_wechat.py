"""The WeChat template-message transport against a local server that follows WeChat's
documented official-account API (tests/wechat_fake.py): tokens fetched once and again when
due or refused, each errcode's outcome, the channel's pause, network faults, and no private
data or secret in any log line."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import ClientSession, web

from bench.procs import free_port
from core.settings import WeChatSettings
from sms.wechat import Outcome, WeChatTransport
from tests.wechat_fake import FakeWeChat

TEMPLATE = "TPL-pension-credited-0001"
FOLLOWER = "oLk3s5y0uFollowsTheAccount01"
GONE = "oLk3s5y0uUnfollowedLastWeek2"
STRANGER = "oXyzNeverIssuedByThisAccount"
DATA = {"thing1": "养老金到账", "amount2": "3,215.60元", "time3": "2026年12月2日"}


class Clock:
    """The transport's wall clock, moved by the test (WeChat's day and the token's life)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


# 23:30 in Beijing: the next Beijing midnight is 30 minutes away.
START = dt.datetime(2026, 12, 2, 15, 30, tzinfo=dt.UTC)
BEIJING_MIDNIGHT = dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="sms.wechat")
    yield caplog


def settings_for(fake: FakeWeChat, **overrides: object) -> WeChatSettings:
    values: dict[str, object] = {
        "enabled": True,
        "app_id": fake.app_id,
        "app_secret": fake.app_secret,
        "token": "push-token",
        "api_base": fake.base_url,
        "timeout_s": 15.0,  # a loaded CI machine has stalled a local answer past 2 s
        "templates": {"pension_credited": TEMPLATE},
        **overrides,
    }
    return WeChatSettings.model_validate(values)


@asynccontextmanager
async def wechat(
    clock: Clock, fake: FakeWeChat | None = None, **overrides: object
) -> AsyncIterator[tuple[FakeWeChat, WeChatTransport]]:
    fake = fake or FakeWeChat(followers={FOLLOWER}, unfollowed={GONE}, templates={TEMPLATE})
    await fake.start()
    transport = WeChatTransport(settings_for(fake, **overrides), clock=clock)
    await transport.start()
    try:
        yield fake, transport
    finally:
        await transport.stop()
        await fake.stop()


def records(logs: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in logs.records if r.name == "sms.wechat" and r.levelno == level]


async def test_a_notice_goes_as_a_template_message(clock: Clock) -> None:
    async with wechat(clock) as (fake, transport):
        result = await transport.send(FOLLOWER, TEMPLATE, DATA, url="https://12333.example/notice/1")
    assert result.outcome is Outcome.SENT
    assert result.msgid is not None
    [message] = fake.messages
    assert message["msgid"] == result.msgid
    assert message["touser"] == FOLLOWER
    assert message["template_id"] == TEMPLATE
    assert message["url"] == "https://12333.example/notice/1"
    # Chinese arrived as written (WeChat refuses \uXXXX escapes with 40033).
    assert message["data"] == {key: {"value": value} for key, value in DATA.items()}
    assert transport.template_for("pension_credited") == TEMPLATE
    assert transport.template_for("policy") is None


async def test_fifty_sends_at_once_share_one_token_fetch(clock: Clock) -> None:
    openids = {f"oFollower{n:04d}abcdefghijk" for n in range(50)}
    fake = FakeWeChat(followers=openids, templates={TEMPLATE})
    async with wechat(clock, fake) as (fake, transport):
        results = await asyncio.gather(*(transport.send(o, TEMPLATE, DATA) for o in sorted(openids)))
    assert [r.outcome for r in results] == [Outcome.SENT] * 50
    assert fake.token_requests == 1
    assert {m["touser"] for m in fake.messages} == openids


@pytest.mark.parametrize(("fault", "errcode"), [("expire_tokens", 42001), ("revoke_tokens", 40001)])
async def test_a_refused_token_is_fetched_again_and_the_send_retried_once(
    clock: Clock, fault: str, errcode: int
) -> None:
    async with wechat(clock) as (fake, transport):
        assert (await transport.send(FOLLOWER, TEMPLATE, DATA)).outcome is Outcome.SENT
        getattr(fake, fault)()
        result = await transport.send(FOLLOWER, TEMPLATE, DATA)
    assert result.outcome is Outcome.SENT
    assert fake.token_requests == 2
    assert fake.send_errcodes == [0, errcode, 0]  # exactly one retry
    assert len(fake.messages) == 2


async def test_twenty_sends_refused_together_fetch_one_new_token(clock: Clock) -> None:
    openids = [f"oFollower{n:04d}abcdefghijk" for n in range(20)]
    fake = FakeWeChat(followers=set(openids), templates={TEMPLATE})
    async with wechat(clock, fake) as (fake, transport):
        assert (await transport.send(openids[0], TEMPLATE, DATA)).outcome is Outcome.SENT
        fake.expire_tokens()
        results = await asyncio.gather(*(transport.send(o, TEMPLATE, DATA) for o in openids))
    assert [r.outcome for r in results] == [Outcome.SENT] * 20
    assert fake.token_requests == 2
    assert fake.send_errcodes.count(42001) == 20  # each refused once, then retried with the one new token
    assert len(fake.messages) == 21


async def test_the_token_is_renewed_before_it_runs_out(clock: Clock) -> None:
    async with wechat(clock, token_margin_s=300) as (fake, transport):
        await transport.send(FOLLOWER, TEMPLATE, DATA)
        clock.advance(7200 - 300 - 1)
        await transport.send(FOLLOWER, TEMPLATE, DATA)
        assert fake.token_requests == 1  # still within expires_in minus the margin
        clock.advance(2)
        result = await transport.send(FOLLOWER, TEMPLATE, DATA)
    assert result.outcome is Outcome.SENT
    assert fake.token_requests == 2
    assert fake.send_errcodes == [0, 0, 0]  # fetched ahead: WeChat never had to refuse it


@pytest.mark.parametrize(
    ("openid", "outcome", "errcode"),
    [(GONE, Outcome.NOT_FOLLOWING, 43004), (STRANGER, Outcome.BAD_OPENID, 40003)],
)
async def test_a_resident_who_cannot_get_it_fails_at_once_without_pausing(
    clock: Clock, openid: str, outcome: Outcome, errcode: int
) -> None:
    async with wechat(clock) as (fake, transport):
        result = await transport.send(openid, TEMPLATE, DATA)
        assert transport.paused_until is None
        after = await transport.send(FOLLOWER, TEMPLATE, DATA)
    assert (result.outcome, result.errcode) == (outcome, errcode)
    assert fake.send_errcodes == [errcode, 0]  # no retry of the refused one
    assert after.outcome is Outcome.SENT


async def test_no_openid_is_refused_before_any_request(clock: Clock) -> None:
    async with wechat(clock) as (fake, transport):
        result = await transport.send("", TEMPLATE, DATA)
    assert result.outcome is Outcome.BAD_OPENID
    assert (fake.token_requests, fake.send_requests) == (0, 0)


async def test_the_daily_limit_pauses_the_channel_until_beijing_midnight(
    clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    fake = FakeWeChat(followers={FOLLOWER}, templates={TEMPLATE}, daily_limit=1)
    async with wechat(clock, fake) as (fake, transport):
        assert (await transport.send(FOLLOWER, TEMPLATE, DATA)).outcome is Outcome.SENT
        limited = await transport.send(FOLLOWER, TEMPLATE, DATA)
        assert (limited.outcome, limited.errcode, limited.until) == (Outcome.LIMIT_REACHED, 45009, BEIJING_MIDNIGHT)
        assert transport.paused_until == BEIJING_MIDNIGHT
        calls = fake.send_requests
        later = await asyncio.gather(*(transport.send(FOLLOWER, TEMPLATE, DATA) for _ in range(5)))
        assert {(r.outcome, r.until) for r in later} == {(Outcome.LIMIT_REACHED, BEIJING_MIDNIGHT)}
        assert fake.send_requests == calls  # paused: WeChat was not asked
        clock.now = BEIJING_MIDNIGHT
        fake.new_day()
        assert transport.paused_until is None
        resumed = await transport.send(FOLLOWER, TEMPLATE, DATA)
    assert resumed.outcome is Outcome.SENT
    assert len(records(logs, logging.WARNING)) == 1  # the pause is said once, not per notice


async def test_an_unknown_template_id_pauses_the_channel_and_is_logged_once(
    clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    async with wechat(clock, config_error_pause_s=600) as (fake, transport):
        results = await asyncio.gather(*(transport.send(FOLLOWER, "TPL-deleted", DATA) for _ in range(10)))
        assert {(r.outcome, r.errcode) for r in results} == {(Outcome.CONFIG_ERROR, 40037)}
        assert transport.paused_until == START + dt.timedelta(seconds=600)
        calls = fake.send_requests
        paused = await transport.send(FOLLOWER, TEMPLATE, DATA)
        assert paused.outcome is Outcome.CONFIG_ERROR
        assert fake.send_requests == calls
        clock.advance(601)  # the pause is over: one notice tries again
        assert (await transport.send(FOLLOWER, TEMPLATE, DATA)).outcome is Outcome.SENT
    errors = records(logs, logging.ERROR)
    assert len(errors) == 1
    assert "40037" in errors[0].getMessage()


@pytest.mark.parametrize(("field", "errcode"), [("app_secret", 40125), ("app_id", 40013)])
async def test_bad_credentials_are_a_config_error_and_pause_the_channel(
    clock: Clock, logs: pytest.LogCaptureFixture, field: str, errcode: int
) -> None:
    async with wechat(clock, **{field: "not-the-right-one-0000"}) as (fake, transport):
        results = await asyncio.gather(*(transport.send(FOLLOWER, TEMPLATE, DATA) for _ in range(5)))
        assert {(r.outcome, r.errcode) for r in results} == {(Outcome.CONFIG_ERROR, errcode)}
        assert transport.paused_until is not None
        assert fake.token_requests == 1  # one fetch, shared by all five; then the pause
        assert fake.send_requests == 0
    assert len(records(logs, logging.ERROR)) == 1


async def test_system_busy_is_temporary(clock: Clock) -> None:
    fake = FakeWeChat(followers={FOLLOWER}, templates={TEMPLATE}, busy_next=1)
    async with wechat(clock, fake) as (fake, transport):
        busy = await transport.send(FOLLOWER, TEMPLATE, DATA)
        assert transport.paused_until is None
        again = await transport.send(FOLLOWER, TEMPLATE, DATA)
    assert (busy.outcome, busy.errcode) == (Outcome.TEMPORARY, -1)
    assert again.outcome is Outcome.SENT


async def test_wechat_unreachable_is_temporary_and_nothing_was_sent(clock: Clock) -> None:
    fake = FakeWeChat()
    fake.port = free_port()  # nothing listens there
    transport = WeChatTransport(settings_for(fake), clock=clock)
    await transport.start()
    try:
        result = await transport.send(FOLLOWER, TEMPLATE, DATA)
    finally:
        await transport.stop()
    assert result.outcome is Outcome.TEMPORARY
    assert not result.maybe_sent
    assert transport.paused_until is None


async def test_a_dropped_connection_is_temporary_and_may_have_been_sent(clock: Clock) -> None:
    fake = FakeWeChat(followers={FOLLOWER}, templates={TEMPLATE}, drop_next=1)
    async with wechat(clock, fake) as (fake, transport):
        dropped = await transport.send(FOLLOWER, TEMPLATE, DATA, client_msg_id="notice-41")
        again = await transport.send(FOLLOWER, TEMPLATE, DATA, client_msg_id="notice-41")
    assert (dropped.outcome, dropped.maybe_sent) == (Outcome.TEMPORARY, True)
    assert again.outcome is Outcome.SENT
    assert len(fake.messages) == 1


async def test_an_answer_slower_than_the_timeout_is_temporary(clock: Clock) -> None:
    fake = FakeWeChat(followers={FOLLOWER}, templates={TEMPLATE}, delay_s=5.0)
    async with wechat(clock, fake, timeout_s=0.2) as (fake, transport):
        result = await transport.send(FOLLOWER, TEMPLATE, DATA)
    assert (result.outcome, result.maybe_sent) == (Outcome.TEMPORARY, True)
    assert "TimeoutError" in result.reason


async def test_client_msg_id_keeps_a_resent_notice_single(clock: Clock) -> None:
    async with wechat(clock) as (fake, transport):
        first = await transport.send(FOLLOWER, TEMPLATE, DATA, client_msg_id="notice-7")
        second = await transport.send(FOLLOWER, TEMPLATE, DATA, client_msg_id="notice-7")
    assert first.msgid == second.msgid
    assert len(fake.messages) == 1


async def test_the_fake_checks_the_request_as_the_docs_describe(clock: Clock) -> None:
    """The peer itself: what WeChat documents for a malformed send (no client involved)."""
    async with wechat(clock) as (fake, _), ClientSession() as http:
        async with http.post(
            f"{fake.base_url}/cgi-bin/stable_token",
            data=json.dumps({"grant_type": "client_credential", "appid": fake.app_id, "secret": fake.app_secret}),
        ) as response:
            token = (await response.json())["access_token"]
        send = f"{fake.base_url}/cgi-bin/message/template/send"
        good = {"touser": FOLLOWER, "template_id": TEMPLATE, "data": {"k": {"value": "养老金"}}}
        cases: list[tuple[dict[str, str], bytes, int]] = [
            ({"access_token": token}, json.dumps({**good, "touser": ""}, ensure_ascii=False).encode(), 41009),
            (
                {"access_token": token},
                json.dumps({k: v for k, v in good.items() if k != "template_id"}, ensure_ascii=False).encode(),
                40036,
            ),
            (
                {"access_token": token},
                json.dumps({**good, "data": {"k": "养老金"}}, ensure_ascii=False).encode(),
                47001,
            ),
            ({"access_token": token}, json.dumps(good).encode(), 40033),  # \uXXXX escapes
            ({"access_token": token}, b"", 44002),
            ({}, json.dumps(good, ensure_ascii=False).encode(), 41001),
            ({"access_token": "made-up"}, json.dumps(good, ensure_ascii=False).encode(), 40001),
            ({"access_token": token}, json.dumps(good, ensure_ascii=False).encode(), 0),
        ]
        answers = []
        for params, body, _ in cases:
            async with http.post(send, params=params, data=body) as response:
                answers.append((await response.json(content_type=None))["errcode"])
        async with http.get(send, params={"access_token": token}) as response:
            answers.append((await response.json(content_type=None))["errcode"])
    assert answers == [errcode for _, _, errcode in cases] + [43002]


@asynccontextmanager
async def stranger(status: int, text: str) -> AsyncIterator[str]:
    """Not WeChat: a proxy's error page where the API should be."""

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/cgi-bin/stable_token":
            return web.json_response({"access_token": "proxy-passed-token-0123456789", "expires_in": 7200})
        return web.Response(status=status, text=text, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status", [200, 502])
async def test_a_reply_that_is_not_wechat_json_is_temporary_and_logged_masked(
    clock: Clock, logs: pytest.LogCaptureFixture, status: int
) -> None:
    page = f"<html><body>upstream error for {FOLLOWER} phone 13912345678 {'x' * 400}</body></html>"
    async with stranger(status, page) as base:
        transport = WeChatTransport(
            WeChatSettings(enabled=True, app_id="wx1", app_secret="s3cret-value", token="t", api_base=base), clock=clock
        )
        await transport.start()
        try:
            result = await transport.send(FOLLOWER, TEMPLATE, DATA)
        finally:
            await transport.stop()
    assert result.outcome is Outcome.TEMPORARY
    assert f"HTTP {status}" in result.reason
    [warning] = records(logs, logging.WARNING)
    said = warning.getMessage()
    assert "upstream error for oLk3***" in said
    assert FOLLOWER not in said
    assert "13912345678" not in said
    assert len(said) < 400  # the body's first 200 characters, not all of it


async def test_no_openid_secret_or_token_in_any_log_line(clock: Clock, logs: pytest.LogCaptureFixture) -> None:
    openids = [FOLLOWER, GONE, STRANGER]
    fake = FakeWeChat(followers={FOLLOWER}, unfollowed={GONE}, templates={TEMPLATE}, busy_next=1, drop_next=1)
    async with wechat(clock, fake) as (fake, transport):
        for openid in [*openids, *openids]:
            await transport.send(openid, TEMPLATE, DATA, client_msg_id="n-1")
        fake.expire_tokens()
        await transport.send(FOLLOWER, TEMPLATE, DATA)
        await transport.send(FOLLOWER, "TPL-deleted", DATA)
        tokens = list(fake._tokens)
    async with wechat(clock, app_secret="a-wrong-secret-abcdef") as (_, transport):
        await transport.send(FOLLOWER, TEMPLATE, DATA)
    lines = [r.getMessage() + (r.exc_text or "") for r in logs.records]
    assert len(lines) >= 6
    for secret in [*openids, fake.app_secret, "a-wrong-secret-abcdef", *tokens]:
        assert not [line for line in lines if secret in line], secret
