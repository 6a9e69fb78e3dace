"""The console's recordings over real HTTP and in Chromium: who may play a recording, forged
ids and paths, Range requests for the <audio> element, the audit entry committed before the
first byte, voice messages (a department plays its own orders' only), and the quality-check
form feeding the per-agent report."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cases import orders as cases_orders
from cases.tasks import voice_messages_to_orders
from core.db import Store
from core.models import AuditEntry, QualityScore, Recording, VoiceMessage, utcnow
from ivr.recordings import sweep
from tests.browser import chromium, sign_in
from tests.conftest import make_settings
from tests.protocol.test_console import AGENT_PW, SUP_PW, _client, _console, _sign_in
from tests.protocol.test_console_orders_flow import DEPT_PW, add_department_users
from tests.recording_files import add_recording, add_voice_message, write_wav

Console = tuple[str, Store, Path]
RESIDENT = 4242


@pytest.fixture
async def console(store: Store, tmp_path: Path) -> AsyncIterator[Console]:
    base = tmp_path / "recordings"
    async with _console(store, tmp_path, HOTLINE_RECORDINGS_DIR=str(base)) as (url, _, _):
        yield url, store, base


def _plays(store: Store) -> list[AuditEntry]:
    with store.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action.like("play:%")).order_by(AuditEntry.id)).all()
        s.expunge_all()
        return list(rows)


async def test_only_supervisors_play_and_each_playback_is_audited(console: Console) -> None:
    url, store, base = console
    rid = add_recording(store, base, "c-play", at=utcnow(), resident_id=RESIDENT)
    with store.session() as s:
        rec = s.get(Recording, rid)
        assert rec is not None
        wav = (base / rec.path).read_bytes()
    async with _client() as http:
        r = await http.get(f"{url}/recordings/{rid}/audio", allow_redirects=False)
        assert r.status == 303  # signed out: to the sign-in page, no bytes
        await _sign_in(http, url, "a1001", AGENT_PW)
        assert (await http.get(f"{url}/recordings/{rid}/audio")).status == 403
        assert (await http.get(f"{url}/recordings")).status == 403
    assert _plays(store) == []
    async with _client() as http:
        await _sign_in(http, url, "sup", SUP_PW)
        async with http.get(f"{url}/recordings/{rid}/audio") as r:
            # The status line is here and the body not yet read: the audit entry is committed.
            assert [(p.actor, p.action, p.resident_id, p.call_id) for p in _plays(store)] == [
                ("console:sup", "play:recording", RESIDENT, "c-play")
            ]
            assert r.status == 200 and r.headers["Content-Type"] == "audio/wav"
            assert r.headers["Cache-Control"] == "no-store" and r.headers["Accept-Ranges"] == "bytes"
            assert await r.read() == wav
        # A seek: the <audio> element asks for a range; answered 206 with just those bytes.
        r = await http.get(f"{url}/recordings/{rid}/audio", headers={"Range": "bytes=1000-1999"})
        assert r.status == 206 and r.headers["Content-Range"] == f"bytes 1000-1999/{len(wav)}"
        assert await r.read() == wav[1000:2000]
        assert len(_plays(store)) == 2 and "bytes=1000-1999" in _plays(store)[1].detail
        page = await (await http.get(f"{url}/recordings")).text()
        assert f'href="/recordings/{rid}"' in page and "138****5678" in page and "13812345678" not in page


async def test_forged_ids_paths_and_deleted_files_get_nothing(console: Console) -> None:
    url, store, base = console
    kept = add_recording(store, base, "c-kept", at=utcnow())
    deleted = add_recording(store, base, "c-deleted", at=utcnow())
    forged = add_recording(store, base, "c-forged", at=utcnow(), seconds=None)
    (base.parent / "secret.wav").write_bytes(b"RIFF not yours")
    with store.session() as s:
        row = s.get(Recording, deleted)
        assert row is not None
        row.deleted_at, row.delete_reason = utcnow(), "retention: older than 180 days"
        bad = s.get(Recording, forged)
        assert bad is not None
        bad.path = "../secret.wav"  # a row naming a file outside recordings.dir
    async with _client() as http:
        await _sign_in(http, url, "sup", SUP_PW)
        for path in (
            f"/recordings/{deleted}/audio",
            f"/recordings/{forged}/audio",
            "/recordings/999999/audio",
            "/recordings/abc/audio",
            "/recordings/..%2F..%2Fsecret.wav/audio",
            "/recordings/%2e%2e/audio",
            f"/recordings/{kept}/../../secret.wav",
        ):
            r = await http.get(f"{url}{path}")
            assert r.status == 404, path
            assert b"not yours" not in await r.read()
        assert "已删除" in await (await http.get(f"{url}/recordings/{deleted}")).text()
    assert _plays(store) == []


async def test_voice_messages_are_served_to_supervisors_and_refused_to_agents(console: Console) -> None:
    url, store, base = console
    write_wav(base / "messages/2026-12-02/m1.wav", 1.0)
    with store.session() as s:
        msg = VoiceMessage(call_id="c-msg", recording="messages/2026-12-02/m1.wav", duration_s=1, resident_id=RESIDENT)
        s.add(msg)
        s.flush()
        mid = msg.id
    async with _client() as http:
        await _sign_in(http, url, "a1001", AGENT_PW)
        assert (await http.get(f"{url}/voice-messages/{mid}/audio")).status == 403
    async with _client() as http:
        await _sign_in(http, url, "sup", SUP_PW)
        r = await http.get(f"{url}/voice-messages/{mid}/audio")
        assert r.status == 200 and (await r.read())[:4] == b"RIFF"
        assert (await http.get(f"{url}/voice-messages/{mid + 1}/audio")).status == 404
    assert [(p.action, p.resident_id) for p in _plays(store)] == [("play:voice_message", RESIDENT)]


def _voice_order(store: Store, tmp_path: Path, base: Path, name: str, department: str | None) -> tuple[int, int]:
    """A voice message and the order the casework makes of it, for `department`: (message, order)."""
    mid = add_voice_message(store, base, name, at=utcnow(), resident_id=RESIDENT)
    settings = make_settings(tmp_path, store.url, HOTLINE_CASES_VOICE_MESSAGE_DEPARTMENT=department or "")
    [order] = voice_messages_to_orders(store, settings)
    return mid, order.id


async def test_a_department_plays_the_voice_messages_of_its_own_orders_only(console: Console, tmp_path: Path) -> None:
    url, store, base = console
    add_department_users(store)
    mid, order_id = _voice_order(store, tmp_path, base, "m-pension", "养老保险")
    loose, _ = _voice_order(store, tmp_path, base, "m-hotline", None)  # at the hotline, to assign
    wav = (base / f"messages/{utcnow().date().isoformat()}/m-pension.wav").read_bytes()
    async with _client() as medical:
        await _sign_in(medical, url, "medical", DEPT_PW)
        for message in (mid, loose, 999999):
            assert (await medical.get(f"{url}/voice-messages/{message}/audio")).status == 404, message
        assert (await medical.get(f"{url}/recordings")).status == 403  # call recordings stay supervisors'
    assert _plays(store) == []  # nothing was served, nothing is recorded as heard
    async with _client() as pension:
        await _sign_in(pension, url, "pension", DEPT_PW)
        page = await (await pension.get(f"{url}/orders/{order_id}")).text()
        assert f'<audio id="voice-player" controls preload="none" src="/voice-messages/{mid}/audio">' in page
        async with pension.get(f"{url}/voice-messages/{mid}/audio") as r:
            assert [(p.actor, p.action, p.channel, p.resident_id) for p in _plays(store)] == [
                ("console:pension", "play:voice_message", "recording", RESIDENT)
            ]  # committed before the first byte, as a supervisor's playback is
            assert r.status == 200 and r.headers["Content-Type"] == "audio/wav" and await r.read() == wav
        r = await pension.get(f"{url}/voice-messages/{mid}/audio", headers={"Range": "bytes=44-99"})
        assert r.status == 206 and await r.read() == wav[44:100]
        assert (await pension.get(f"{url}/voice-messages/{loose}/audio")).status == 404
    # Reassigned to 医疗保险: the message goes with the order.
    async with _client() as sup:
        csrf = await _sign_in(sup, url, "sup", SUP_PW)
        r = await sup.post(f"{url}/orders/{order_id}/reassign", data={"department": "医疗保险", "csrf": csrf})
        assert r.status == 200
        assert (await sup.get(f"{url}/voice-messages/{loose}/audio")).status == 200  # supervisors: all of them
    async with _client() as pension, _client() as medical:
        await _sign_in(pension, url, "pension", DEPT_PW)
        await _sign_in(medical, url, "medical", DEPT_PW)
        assert (await pension.get(f"{url}/voice-messages/{mid}/audio")).status == 404
        assert (await medical.get(f"{url}/voice-messages/{mid}/audio")).status == 200
    assert [(p.actor, p.channel) for p in _plays(store)][-3:] == [
        ("console:pension", "recording"),
        ("console:sup", "recording"),
        ("console:medical", "recording"),
    ]


async def test_a_department_user_plays_a_voice_message_in_chromium(console: Console, tmp_path: Path) -> None:
    url, store, base = console
    add_department_users(store)
    _, order_id = _voice_order(store, tmp_path, base, "m-ui", "养老保险")
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await sign_in(page, url, "pension", DEPT_PW)
        await page.click(f"#order-{order_id} a.open-order")
        await page.wait_for_url(f"{url}/orders/{order_id}")
        assert "语音留言 · 1 秒" in await page.locator("#voice-message-card h2").inner_text()
        # Opening the page fetches no audio (preload none): a view is not a playback.
        assert _plays(store) == []
        await page.evaluate("document.querySelector('#voice-player').muted = true")
        await page.evaluate("document.querySelector('#voice-player').play()")
        await _until(page, "document.querySelector('#voice-player').currentTime > 0")
        assert abs(await page.evaluate("document.querySelector('#voice-player').duration") - 1.0) < 0.1
    plays = _plays(store)
    assert plays and {(p.actor, p.action, p.call_id, p.resident_id) for p in plays} == {
        ("console:pension", "play:voice_message", "call-m-ui", RESIDENT)
    }


async def test_a_voice_message_deleted_by_retention_says_so_instead_of_a_player(
    console: Console, tmp_path: Path
) -> None:
    url, store, base = console
    add_department_users(store)
    mid, order_id = _voice_order(store, tmp_path, base, "m-old", "养老保险")
    with store.session() as s:  # left 200 days ago (the retention is 180)
        s.get_one(VoiceMessage, mid).created_at = utcnow() - dt.timedelta(days=200)
    file = base / f"messages/{utcnow().date().isoformat()}/m-old.wav"
    settings = make_settings(tmp_path, store.url)
    cases_orders.close_order(store, order_id, actor="console:sup", note="已电话答复")
    swept = dt.datetime(2026, 12, 1, 16, 30, tzinfo=dt.UTC)  # 2026-12-02 00:30 in Beijing
    assert sweep(store, base, settings.recordings.retention_days, now=swept).messages_deleted == 1
    assert not file.exists()
    for who, password in (("sup", SUP_PW), ("pension", DEPT_PW)):
        async with _client() as http:
            await _sign_in(http, url, who, password)
            page = await (await http.get(f"{url}/orders/{order_id}")).text()
            assert re.search(r'id="voice-deleted">录音已于 2026-12-02 00:30:\d\d 按保存期限删除<', page), who
            assert "<audio" not in page
            assert (await http.get(f"{url}/voice-messages/{mid}/audio")).status == 404
    assert _plays(store) == []


async def test_a_score_off_the_form_is_refused_and_an_agent_cannot_score(console: Console) -> None:
    url, store, base = console
    rid = add_recording(store, base, "c-score", at=utcnow())
    good = {"item_greeting": "20", "item_accuracy": "30", "item_attitude": "25", "item_resolution": "25"}
    async with _client() as http:
        csrf = await _sign_in(http, url, "a1001", AGENT_PW)
        r = await http.post(f"{url}/recordings/{rid}/score", data={"csrf": csrf, **good}, allow_redirects=False)
        assert r.status == 403
    async with _client() as http:
        csrf = await _sign_in(http, url, "sup", SUP_PW)
        r = await http.post(f"{url}/recordings/{rid}/score", data={"csrf": csrf, **good, "item_greeting": "99"})
        assert r.status == 400 and "greeting" in await r.text()
        r = await http.post(f"{url}/recordings/999999/score", data={"csrf": csrf, **good}, allow_redirects=False)
        assert r.status == 404
    with store.session() as s:
        assert s.scalars(select(QualityScore)).all() == []


async def _until(page: Any, expression: str, limit_s: float = 10.0) -> None:
    """Poll a page expression (wait_for_function evaluates strings, which the console's CSP forbids)."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not await page.evaluate(expression):
        assert asyncio.get_running_loop().time() < deadline, f"still false after {limit_s} s: {expression}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_supervisor_plays_scores_and_sees_it_in_the_report_in_chromium(console: Console) -> None:
    url, store, base = console
    rid = add_recording(store, base, "c-ui", at=utcnow(), agent="坐席1001", resident_id=RESIDENT)
    async with chromium() as browser:
        page = await browser.new_page()
        page.set_default_timeout(10_000)
        await sign_in(page, url, "sup", SUP_PW, lands_on="wallboard")
        await page.click("#nav-recordings")
        await page.wait_for_url(re.compile(r".*/recordings$"))
        await page.click(f'tr[data-recording="{rid}"] a.rec-open')
        await page.wait_for_url(f"{url}/recordings/{rid}")
        # Opening the page fetches no audio (preload none): a view is not a playback.
        assert not any(p.action == "play:recording" for p in _plays(store))
        await page.evaluate("document.querySelector('#player').muted = true")
        await page.evaluate("document.querySelector('#player').play()")
        await _until(page, "document.querySelector('#player').currentTime > 0")
        # The WAV played is the recording: its length as the element reads it.
        assert abs(await page.evaluate("document.querySelector('#player').duration") - 2.0) < 0.1
        assert any(p.action == "play:recording" and p.resident_id == RESIDENT for p in _plays(store))
        for key, points in (("greeting", "18"), ("accuracy", "27"), ("attitude", "25"), ("resolution", "20")):
            await page.fill(f"#item-{key}", points)
        await page.fill("#score-comment", "开头未报工号")
        await page.click("#score-save")
        await page.wait_for_url(f"{url}/recordings/{rid}")
        assert await page.locator(".score-total").first.inner_text() == "90/100"
        assert "开头未报工号" in await page.locator("#scores").inner_text()
        await page.click("#nav-reports")
        await page.wait_for_url(re.compile(r".*/reports$"))
        agents = await page.locator("#report").inner_text()
        assert "质检平均分" in agents and "90.0" in agents
