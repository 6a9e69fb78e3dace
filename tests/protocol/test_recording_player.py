"""The console's recordings over real HTTP and in Chromium: who may play a recording, forged
ids and paths, Range requests for the <audio> element, the audit entry committed before the
first byte, voice messages, and the quality-check form feeding the per-agent report."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import Store
from core.models import AuditEntry, QualityScore, Recording, VoiceMessage, utcnow
from tests.browser import chromium
from tests.protocol.test_console import AGENT_PW, SUP_PW, _client, _console, _sign_in
from tests.recording_files import add_recording, write_wav

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
                ("sup", "play:recording", RESIDENT, "c-play")
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


async def test_voice_messages_are_served_to_supervisors_only(console: Console) -> None:
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
        await page.goto(f"{url}/login")
        await page.fill("#username", "sup")
        await page.fill("#password", SUP_PW)
        await page.click("#login-submit")
        await page.wait_for_url(f"{url}/wallboard")
        await page.click("#nav-recordings")
        await page.wait_for_url(re.compile(r".*/recordings$"))
        await page.click(f'tr[data-recording="{rid}"] a.rec-open')
        await page.wait_for_url(f"{url}/recordings/{rid}")
        # The element has loaded the WAV's header: it knows the length, and it plays.
        await _until(page, "document.querySelector('#player').readyState >= 1")
        assert abs(await page.evaluate("document.querySelector('#player').duration") - 2.0) < 0.1
        await page.evaluate("document.querySelector('#player').muted = true")
        await page.evaluate("document.querySelector('#player').play()")
        await _until(page, "document.querySelector('#player').currentTime > 0")
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
