"""Residents bind their WeChat account to their ID number over real HTTP, on SQLite and
PostgreSQL: from the menu through WeChat's authorisation, the code by SMS, bound; wrong and
expired codes, tries and hourly limits, unknown ID numbers, WeChat refusing the code,
unbinding, and the event pushes (signature, unsubscribe, bad bodies)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import ClientSession
from sqlalchemy import func, select, update

from core import idnumber, sample
from core.db import Store
from core.masking import mask_id, mask_openid, mask_phone
from core.models import (
    AuditEntry,
    BusinessEvent,
    Resident,
    WeChatBindCode,
    WeChatBinding,
    WeChatBindRequest,
    utcnow,
)
from core.sample_port import SampleBusinessPort
from core.settings import WeChatSettings
from sms.errors import TooManyCodes
from sms.templates import render
from sms.wechat_binding import Binder
from sms.wechat_push import signature
from tests.conftest import SAMPLE_RESIDENTS
from tests.wechat_bind_support import (
    PUSH_TOKEN,
    Site,
    browser,
    form_token,
    open_from_menu,
    sent_codes,
    wechat_console,
)

ALICE = "oLk3s5y0uAliceFollows000001"
BOB = "oMn4t6z1vBobFollows00000002"
CAROL = "oNo5u7a2wCarolFollows000003"
RESIDENTS = sample.generate(residents=SAMPLE_RESIDENTS)[1]
NOBODY = idnumber.complete("11010119900307123")


@pytest.fixture
async def site(store: Store, tmp_path: Path) -> Site:
    async with wechat_console(store, tmp_path) as s:
        yield s  # type: ignore[misc]


async def ask_code(http: ClientSession, site: Site, id_number: str) -> tuple[int, str]:
    page = await (await http.get(f"{site.base}/wechat/bind")).text()
    r = await http.post(f"{site.base}/wechat/bind/id", data={"token": form_token(page), "id_number": id_number})
    return r.status, await r.text()


async def enter_code(http: ClientSession, site: Site, code: str) -> tuple[int, str]:
    page = await (await http.get(f"{site.base}/wechat/bind")).text()
    r = await http.post(f"{site.base}/wechat/bind/code", data={"token": form_token(page), "code": code})
    return r.status, await r.text()


def bindings(store: Store) -> dict[str, str]:
    with store.session() as s:
        return {b.subject_id: b.openid for b in s.scalars(select(WeChatBinding))}


def audit_rows(store: Store, action: str) -> list[AuditEntry]:
    with store.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


async def bind(http: ClientSession, site: Site, openid: str, id_number: str) -> str:
    await open_from_menu(http, site, openid)
    status, _ = await ask_code(http, site, id_number)
    assert status == 200
    status, page = await enter_code(http, site, sent_codes(site.store, id_number)[-1])
    assert status == 200, page
    return page


async def test_the_menu_link_goes_through_wechat_and_leaves_the_openid_only_in_a_cookie(site: Site) -> None:
    async with browser() as http:
        first = await http.get(f"{site.base}/wechat/bind", allow_redirects=False)
        assert first.status == 303
        to_wechat = urlsplit(first.headers["Location"])
        query = {k: v[0] for k, v in parse_qs(to_wechat.query).items()}
        assert to_wechat.path == "/connect/oauth2/authorize" and to_wechat.fragment == "wechat_redirect"
        assert query["appid"] == site.fake.app_id and query["scope"] == "snsapi_base"
        assert query["redirect_uri"] == f"{site.base}/wechat/bind"
        site.fake.browser_openid = ALICE
        back = await http.get(first.headers["Location"], allow_redirects=False)
        assert back.status == 302 and "code=" in back.headers["Location"]
        landed = await http.get(back.headers["Location"], allow_redirects=False)
        assert landed.status == 303 and landed.headers["Location"] == "/wechat/bind"
        cookie = next(c for c in landed.headers.getall("Set-Cookie") if c.startswith("hotline_wechat="))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=1800" in cookie
        assert ALICE not in cookie.split(";")[0] and ALICE not in landed.headers["Location"]
        page = await http.get(f"{site.base}/wechat/bind")
        assert page.status == 200 and 'id="id-form"' in await page.text()
        assert ALICE not in await page.text()


async def test_a_resident_binds_with_the_code_sent_to_their_registered_phone(site: Site) -> None:
    resident = RESIDENTS[0]
    async with browser() as http:
        await open_from_menu(http, site, ALICE)
        status, page = await ask_code(http, site, resident.id_number.lower())
        assert status == 200
        assert "验证码已发送到登记的手机" in page and resident.phone not in page
        assert mask_phone(resident.phone) not in page  # nor whether, or which, phone it holds
        [code] = sent_codes(site.store, resident.id_number)
        with site.store.session() as s:
            event = s.scalars(select(BusinessEvent).where(BusinessEvent.event_type == "wechat_bind_code")).one()
            assert event.subject_kind == "person" and event.status == "pending"
            pending = s.get_one(WeChatBindCode, ALICE)
            assert code not in pending.code_hash and pending.subject_id == resident.id_number
        assert render("wechat_bind_code", event.payload) == (
            f"您正在绑定微信，验证码{code}，10分钟内有效。如非本人操作请忽略。【安吉人社】"
        )
        assert 'id="code-form"' in (await (await http.get(f"{site.base}/wechat/bind")).text())  # a reload
        status, page = await enter_code(http, site, code)
    assert status == 200 and 'id="bound-to"' in page and mask_id(resident.id_number) in page
    assert bindings(site.store) == {resident.id_number: ALICE}
    [entry] = audit_rows(site.store, "change:wechat_binding")
    assert entry.actor == f"wechat:{mask_openid(ALICE)}" and entry.resident_id == resident.id
    assert ALICE not in entry.detail and resident.id_number not in entry.detail
    with site.store.session() as s:
        assert s.get(WeChatBindCode, ALICE) is None  # spent


async def test_wrong_codes_count_and_the_fifth_ends_the_code(site: Site) -> None:
    resident = RESIDENTS[1]
    async with browser() as http:
        await open_from_menu(http, site, ALICE)
        await ask_code(http, site, resident.id_number)
        [code] = sent_codes(site.store, resident.id_number)
        wrong = f"{(int(code) + 1) % 10**6:06d}"
        for left in (4, 3, 2, 1):
            status, page = await enter_code(http, site, wrong)
            assert status == 400 and f"验证码不正确，还可以再试{left}次" in page
        status, page = await enter_code(http, site, wrong)
        assert status == 400 and "请重新获取验证码" in page and 'id="code-form"' not in page
        status, page = await enter_code(http, site, code)  # the right one, too late
        assert status == 400 and "请重新获取验证码" in page
    assert bindings(site.store) == {}


async def test_a_code_older_than_ten_minutes_is_refused(site: Site) -> None:
    resident = RESIDENTS[2]
    async with browser() as http:
        await open_from_menu(http, site, ALICE)
        await ask_code(http, site, resident.id_number)
        [code] = sent_codes(site.store, resident.id_number)
        with site.store.session() as s:
            pending = s.get_one(WeChatBindCode, ALICE)
            pending.requested_at = pending.requested_at - dt.timedelta(minutes=10)
        status, page = await enter_code(http, site, code)
    assert status == 400 and "验证码已失效" in page
    assert bindings(site.store) == {}


async def test_codes_per_account_and_per_id_number_are_limited_per_hour(site: Site) -> None:
    async with browser() as alice, browser() as bob:
        await open_from_menu(alice, site, ALICE)
        for resident in RESIDENTS[:5]:
            assert (await ask_code(alice, site, resident.id_number))[0] == 200
        status, page = await ask_code(alice, site, RESIDENTS[5].id_number)
        assert status == 429 and "请一小时后再试" in page
        assert sent_codes(site.store, RESIDENTS[5].id_number) == []
        # One ID number, from other accounts: three codes an hour reach that phone.
        await open_from_menu(bob, site, BOB)
        for _ in range(2):
            assert (await ask_code(bob, site, RESIDENTS[0].id_number))[0] == 200
        status, _ = await ask_code(bob, site, RESIDENTS[0].id_number)
        assert status == 429
    assert len(sent_codes(site.store, RESIDENTS[0].id_number)) == 3


def _without_token(page: str) -> str:
    return page.replace(form_token(page), "TOKEN")


async def test_registered_unknown_and_phoneless_id_numbers_get_the_same_answers(site: Site) -> None:
    """Whoever types an ID number learns nothing of who holds it: the same page (and status)
    for a number with a registered phone, one without a phone and one nobody holds, and the
    same answers to the codes entered after it; only the registered phone gets a code."""
    registered, phoneless = RESIDENTS[4], RESIDENTS[3]
    assert NOBODY not in {r.id_number for r in RESIDENTS}
    with site.store.session() as s:
        s.execute(update(Resident).where(Resident.id == phoneless.id).values(phone=""))
    answers = []
    for openid, id_number in ((ALICE, registered.id_number), (BOB, phoneless.id_number), (CAROL, NOBODY)):
        async with browser() as http:
            await open_from_menu(http, site, openid)
            status, page = await ask_code(http, site, id_number)
            reload = await (await http.get(f"{site.base}/wechat/bind")).text()
            tries = [await enter_code(http, site, "000000") for _ in range(2)]
            answers.append(
                (status, _without_token(page), _without_token(reload), [(st, _without_token(pg)) for st, pg in tries])
            )
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 200 and "还可以再试3次" in answers[0][3][1][1]
    assert len(sent_codes(site.store, registered.id_number)) == 1
    assert sent_codes(site.store, NOBODY) == sent_codes(site.store, phoneless.id_number) == []
    async with browser() as http:
        await open_from_menu(http, site, ALICE)
        bad_check = await ask_code(http, site, NOBODY[:17] + ("0" if NOBODY[17] != "0" else "1"))
    assert bad_check[0] == 400 and "身份证号码有误" in bad_check[1]


async def test_codes_across_the_hotline_are_capped_per_hour(store: Store, tmp_path: Path) -> None:
    async with wechat_console(store, tmp_path, HOTLINE_WECHAT_BIND_CODES_PER_HOUR="3") as site:
        for n, openid in enumerate((ALICE, BOB, CAROL)):
            async with browser() as http:
                await open_from_menu(http, site, openid)
                assert (await ask_code(http, site, RESIDENTS[n].id_number))[0] == 200
        async with browser() as http:
            await open_from_menu(http, site, "oPq7r8s9tDaveFollows0000004")
            status, page = await ask_code(http, site, RESIDENTS[5].id_number)
    assert status == 429 and "现在获取验证码的人太多" in page
    assert sent_codes(store, RESIDENTS[5].id_number) == []


async def test_a_code_wechat_refuses_or_a_foreign_state_gets_a_page_saying_to_reopen(site: Site) -> None:
    async with browser() as http:
        first = await http.get(f"{site.base}/wechat/bind", allow_redirects=False)
        state = parse_qs(urlsplit(first.headers["Location"]).query)["state"][0]
        r = await http.get(f"{site.base}/wechat/bind", params={"code": "never-issued", "state": state})
        assert r.status == 400 and "微信授权已失效" in await r.text()
        used = site.fake.issue_code(ALICE)
        assert (await http.get(f"{site.base}/wechat/bind", params={"code": used, "state": state})).status == 200
        # The same code again (WeChat: 40163), in a browser that went through its own round.
        async with browser() as other:
            first = await other.get(f"{site.base}/wechat/bind", allow_redirects=False)
            state = parse_qs(urlsplit(first.headers["Location"]).query)["state"][0]
            r = await other.get(f"{site.base}/wechat/bind", params={"code": used, "state": state})
            assert r.status == 400 and "微信授权已失效" in await r.text()
    async with browser() as victim:  # a link carrying someone else's code: no state of its own
        code = site.fake.issue_code(BOB)
        r = await victim.get(f"{site.base}/wechat/bind", params={"code": code, "state": "abc"})
        assert r.status == 400 and "请从公众号菜单重新打开" in await r.text()
        assert not any(c.key == "hotline_wechat" for c in victim.cookie_jar)


async def test_binding_moves_an_account_and_replaces_an_id_numbers_account_and_unbinds(site: Site) -> None:
    first, second = RESIDENTS[4].id_number, RESIDENTS[5].id_number
    async with browser() as alice, browser() as bob:
        await bind(alice, site, ALICE, first)
        await bind(alice, site, ALICE, second)  # Alice's account moves to the second number
        assert bindings(site.store) == {second: ALICE}
        await bind(bob, site, BOB, second)  # the second number's account is now Bob's
        assert bindings(site.store) == {second: BOB}
        page = await (await bob.get(f"{site.base}/wechat/bind")).text()
        assert 'id="bound-to"' in page
        r = await bob.post(f"{site.base}/wechat/unbind", data={"token": form_token(page)})
        assert r.status == 200 and "已解除绑定" in await r.text()
    assert bindings(site.store) == {}
    details = [e.detail for e in audit_rows(site.store, "change:wechat_binding")]
    assert len(details) == 4 and "replaced" in details[1] and "replaced" in details[2]
    assert "unbound" in details[3]


async def test_forms_need_the_session_and_its_token(site: Site) -> None:
    async with browser() as http:
        r = await http.post(f"{site.base}/wechat/bind/id", data={"token": "x", "id_number": RESIDENTS[0].id_number})
        assert r.status == 403 and "页面已过期" in await r.text()
        await open_from_menu(http, site, ALICE)
        r = await http.post(f"{site.base}/wechat/bind/id", data={"token": "x", "id_number": RESIDENTS[0].id_number})
        assert r.status == 403
        page = await (await http.get(f"{site.base}/wechat/bind")).text()
        headers = {"Origin": "https://elsewhere.example"}
        data = {"token": form_token(page), "id_number": RESIDENTS[0].id_number}
        assert (await http.post(f"{site.base}/wechat/bind/id", data=data, headers=headers)).status == 403
    assert sent_codes(site.store, RESIDENTS[0].id_number) == []


def signed_query(timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    """As WeChat signs a request: now, with a nonce of its own."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**9))
    return {"timestamp": timestamp, "nonce": nonce, "signature": signature(PUSH_TOKEN, timestamp, nonce)}


def push_xml(openid: str, event: str) -> bytes:
    return (
        f"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
        f"</FromUserName><CreateTime>1733150000</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    ).encode()


async def test_wechat_checks_the_server_with_the_token_signature(site: Site) -> None:
    async with browser() as http:
        r = await http.get(f"{site.base}/wechat/events", params={**signed_query(), "echostr": "5837397520335"})
        assert r.status == 200 and await r.text() == "5837397520335"
        bad = {**signed_query(), "signature": "0" * 40, "echostr": "1"}
        assert (await http.get(f"{site.base}/wechat/events", params=bad)).status == 403
        assert (await http.get(f"{site.base}/wechat/events", params={"echostr": "1"})).status == 403


async def test_an_unsubscribe_push_drops_the_binding_and_bad_pushes_are_refused(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    resident = RESIDENTS[6]
    url = f"{site.base}/wechat/events"
    async with browser() as http:
        await bind(http, site, ALICE, resident.id_number)
        signed = signed_query()
        forged = {**signed, "signature": signature("not-our-token", signed["timestamp"], signed["nonce"])}
        r = await http.post(url, params=forged, data=push_xml(ALICE, "unsubscribe"))
        assert r.status == 403 and bindings(site.store) == {resident.id_number: ALICE}
        for body in (b"<xml><FromUserName>", b'<!DOCTYPE x [<!ENTITY a "b">]><xml/>', b"<html></html>", b""):
            r = await http.post(url, params=signed_query(), data=body)
            assert r.status == 400, body
            assert "Traceback" not in await r.text()
        r = await http.post(url, params=signed_query(), data=b"<xml>" + b" " * 20_000 + b"</xml>")
        assert r.status == 413
        r = await http.post(url, params=signed_query(), data=push_xml(ALICE, "subscribe"))
        assert r.status == 200 and await r.text() == "success"
        assert bindings(site.store) == {resident.id_number: ALICE}
        # A signed query seen once (the signature does not cover the body) or an old one
        # cannot be used to post a push of someone else's making.
        once = signed_query()
        assert (await http.post(url, params=once, data=push_xml(ALICE, "subscribe"))).status == 200
        replayed = await http.post(url, params=once, data=push_xml(ALICE, "unsubscribe"))
        assert replayed.status == 403 and "used before" in await replayed.text()
        stale = signed_query(timestamp=str(int(time.time()) - 3600))
        assert (await http.post(url, params=stale, data=push_xml(ALICE, "unsubscribe"))).status == 403
        assert bindings(site.store) == {resident.id_number: ALICE}
        r = await http.post(url, params=signed_query(), data=push_xml(ALICE, "unsubscribe"))
        assert r.status == 200 and await r.text() == "success"
    assert bindings(site.store) == {}
    last = audit_rows(site.store, "change:wechat_binding")[-1]
    assert "unfollowed" in last.detail and last.resident_id == resident.id
    said = caplog.text
    for private in (ALICE, resident.id_number, resident.phone, *sent_codes(site.store, resident.id_number)):
        assert private not in said


def test_requests_at_the_same_moment_cannot_both_take_the_last_place(store: Store) -> None:
    """Eight code requests for one ID number at once, from eight accounts, with room for
    three an hour: exactly three are counted, on either database."""
    sample.load(store, "pepper", residents=SAMPLE_RESIDENTS)
    settings = WeChatSettings(enabled=True, app_id="wx1", app_secret="s", token="t", bind_codes_per_id_per_hour=3)
    binder = Binder(store, SampleBusinessPort(store, "pepper"), settings, "pepper")
    now = utcnow()
    target = RESIDENTS[1].id_number

    def ask(i: int) -> bool:
        try:
            binder._count_request(f"o-race-{i:02d}-account-0123456789", target, now)
        except TooManyCodes:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        passed = list(pool.map(ask, range(8)))
    assert sum(passed) == 3
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(WeChatBindRequest)) == 3


def test_requests_at_the_same_moment_cannot_pass_the_hotline_wide_cap(store: Store) -> None:
    """Eight code requests at once, for eight ID numbers from eight accounts, with room for
    three an hour across the hotline: exactly three are counted, on either database."""
    sample.load(store, "pepper", residents=SAMPLE_RESIDENTS)
    settings = WeChatSettings(enabled=True, app_id="wx1", app_secret="s", token="t", bind_codes_per_hour=3)
    binder = Binder(store, SampleBusinessPort(store, "pepper"), settings, "pepper")
    now = utcnow()

    def ask(i: int) -> bool:
        try:
            binder._count_request(f"o-race-{i:02d}-account-0123456789", RESIDENTS[i].id_number, now)
        except TooManyCodes:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        passed = list(pool.map(ask, range(8)))
    assert sum(passed) == 3
