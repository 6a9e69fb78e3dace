"""The WeChat sender against the local server that follows WeChat's documented API
(tests/wechat_fake.py): a notice sent ends delivered; a resident who no longer follows
loses the binding and gets the SMS; busy answers are tried again, then fall back; a
daily limit sends every queued WeChat notice on to its next channel at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from core import notices
from core.db import Store
from core.models import Notice, SmsMessage, WeChatBinding, WeChatMessage
from core.preferences import parse, save
from core.settings import Settings, WeChatSettings
from core.states import NoticeState
from sms.channels import Channels
from sms.intake import emit, intake
from sms.notice_moves import move_notices
from sms.wechat import WeChatTransport
from sms.wechat_sender import TRIES, WeChatSender
from tests.conftest import load_sample, make_settings
from tests.store.sms_support import sample_port
from tests.wechat_fake import FakeWeChat

TEMPLATE = "TPL-resident-reminder-01"
DAY = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
OPENIDS = ["oLk3s5y0uFollowsTheAccount01", "oLk3s5y0uFollowsTheAccount02", "oLk3s5y0uFollowsTheAccount03"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeWeChat]:
    server = FakeWeChat(followers=set(OPENIDS), templates={TEMPLATE})
    await server.start()
    yield server
    await server.stop()


def _settings(tmp_path: Path, store: Store, fake: FakeWeChat) -> Settings:
    settings = make_settings(tmp_path, store.url)
    wechat = WeChatSettings(
        enabled=True,
        app_id=fake.app_id,
        app_secret=fake.app_secret,
        token="push-token",
        api_base=fake.base_url,
        timeout_s=15.0,
        templates={"resident_reminder": TEMPLATE},
    )
    return settings.model_copy(update={"wechat": wechat})


@pytest.fixture
async def sender(tmp_path: Path, store: Store, fake: FakeWeChat) -> AsyncIterator[WeChatSender]:
    settings = _settings(tmp_path, store, fake)
    transport = WeChatTransport(settings.wechat)
    await transport.start()
    yield WeChatSender(settings, store, transport, "test-1")
    await transport.stop()


def _notices_by_wechat(store: Store, sender: WeChatSender, residents: list[Any], first: int = 0) -> None:
    """Each resident prefers WeChat, is bound (OPENIDS from `first`), and has a pension
    reminder taken up."""
    with store.transaction() as c:
        for r, openid in zip(residents, OPENIDS[first:], strict=False):
            save(c, "person", r.id_number, "*", parse("wechat,sms"), now=DAY)
            c.execute(insert(WeChatBinding).values(subject_id=r.id_number, openid=openid, bound_at=DAY))
    for r in residents:
        payload = {"name": r.name, "period": "2026-11", "amount": 1000}
        emit(store, "pension_credited", "person", r.id_number, payload, f"p:{r.id_number}")
    intake(store, sample_port(store), sender.settings.sms, "Asia/Shanghai", now=DAY, wechat=sender.settings.wechat)


def _rows(store: Store, model: Any) -> list[Any]:
    with store.session() as s:
        key = model.subject_id if model is WeChatBinding else model.id
        return list(s.scalars(select(model).order_by(key)))


def _history(store: Store, notice_id: int) -> list[tuple[str, str]]:
    with store.transaction() as c:
        return [(line.channel, line.outcome) for line in notices.history(c, notice_id)]


def _move(store: Store, sender: WeChatSender) -> None:
    s = sender.settings
    move_notices(store, sample_port(store), Channels(s.sms, s.queue.timezone, s.wechat), DAY)


async def test_a_notice_sent_by_wechat_is_delivered(
    store: Store, sample_data: Any, fake: FakeWeChat, sender: WeChatSender
) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _notices_by_wechat(store, sender, [r])
    assert await sender.step(DAY) == 1
    (notice,) = _rows(store, Notice)
    (message,) = _rows(store, WeChatMessage)
    assert notice.state == NoticeState.DELIVERED and (message.status, message.attempts) == ("sent", 1)
    (sent,) = fake.messages
    assert (sent["touser"], sent["template_id"], sent["client_msg_id"]) == (OPENIDS[0], TEMPLATE, f"notice-{notice.id}")
    assert sent["data"]["content"]["value"] == notice.text and message.msgid == str(sent["msgid"])
    assert _rows(store, SmsMessage) == []
    assert _history(store, notice.id) == [("wechat", "queued"), ("wechat", "sent")]


async def test_a_resident_who_unfollowed_loses_the_binding_and_gets_the_sms(
    store: Store, sample_data: Any, fake: FakeWeChat, sender: WeChatSender
) -> None:
    load_sample(store)
    r = sample_data[1][0]
    _notices_by_wechat(store, sender, [r])
    fake.followers.discard(OPENIDS[0])
    fake.unfollowed.add(OPENIDS[0])
    await sender.step(DAY)
    assert _rows(store, WeChatBinding) == []
    (notice,) = _rows(store, Notice)
    assert notice.state == NoticeState.ADVANCE and "43004" in (notice.reason or "")
    _move(store, sender)
    (message,) = _rows(store, SmsMessage)
    assert (message.recipient, message.notice_id) == (r.phone, notice.id)
    assert _history(store, notice.id) == [("wechat", "queued"), ("wechat", "not_following"), ("sms", "queued")]


async def test_a_busy_wechat_is_tried_again_then_the_notice_falls_back(
    store: Store, sample_data: Any, fake: FakeWeChat, sender: WeChatSender
) -> None:
    load_sample(store)
    _notices_by_wechat(store, sender, [sample_data[1][0]])
    fake.busy_next = TRIES
    now = DAY
    assert await sender.step(now) == 1
    assert await sender.step(now) == 0  # not due yet: backing off
    for _ in range(TRIES - 1):
        now += dt.timedelta(hours=1)
        assert await sender.step(now) == 1
    (notice,) = _rows(store, Notice)
    (message,) = _rows(store, WeChatMessage)
    assert (message.status, message.attempts, fake.send_requests) == ("failed", TRIES, TRIES)
    assert notice.state == NoticeState.ADVANCE and f"gave up after {TRIES} tries" in (notice.reason or "")
    assert _history(store, notice.id) == [("wechat", "queued")] + [("wechat", "temporary")] * TRIES
    _move(store, sender)
    assert len(_rows(store, SmsMessage)) == 1


async def test_the_daily_limit_sends_every_queued_wechat_notice_to_its_next_channel(
    store: Store, sample_data: Any, fake: FakeWeChat, sender: WeChatSender
) -> None:
    load_sample(store)
    fake.daily_limit = 0
    residents = sample_data[1][:3]
    _notices_by_wechat(store, sender, residents[:2])
    await sender.step(DAY)
    assert sender.transport.paused_until is not None
    _notices_by_wechat(store, sender, residents[2:], first=2)  # queued while the channel is paused
    assert await sender.step(DAY) == 1
    assert fake.send_requests == 1  # the pause answered for the others
    assert all(n.state == NoticeState.ADVANCE for n in _rows(store, Notice))
    third = _rows(store, Notice)[2]
    with store.transaction() as c:
        lines = notices.history(c, third.id)
    assert lines[-1].outcome == "paused" and "WeChat paused until" in lines[-1].detail
    _move(store, sender)
    assert sorted(m.recipient for m in _rows(store, SmsMessage)) == sorted(r.phone for r in residents)
