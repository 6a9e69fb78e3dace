"""The auditors' page over real HTTP: only auditors (and admins) open it, an auditor opens
nothing else, the resident filter takes an ID number by POST, CSV comes out masked, and
every search is itself audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from console import accounts
from core import audit
from core.db import Store
from core.masking import mask_id
from core.models import AuditEntry
from core.sample_port import SampleBusinessPort
from tests.browser import chromium, sign_in
from tests.conftest import PEPPER
from tests.protocol.test_console import SUP_PW, _client, _console, _sign_in

AUD_PW = "auditor-password-1"


async def test_auditor_sees_the_trail_and_nothing_else(store: Store, tmp_path: Path, sample_data: Any) -> None:
    async with _console(store, tmp_path) as (base, _, _):
        accounts.add_user(store, "aud", AUD_PW, "auditor", "审计员")
        person = sample_data[1][0]
        rid = SampleBusinessPort(store, PEPPER).resident_of(person.id_number)
        with store.transaction() as c:
            audit.record(c, actor="ivr", action="read:pension", resident_id=rid, call_id="call-1")
        async with _client() as http:
            csrf = await _sign_in(http, base, "aud", AUD_PW)
            for page in ("/agent", "/wallboard", "/reports"):
                assert (await http.get(f"{base}{page}")).status == 403, page
            assert (await http.get(f"{base}/audit")).status == 200
            form = {"csrf": csrf, "id_number": person.id_number, "user": "", "from": "", "to": "", "channel": ""}
            r = await http.post(f"{base}/audit", data=form)
            body = await r.text()
            assert r.status == 200 and 'data-action="read:pension"' in body
            assert mask_id(person.id_number) in body and person.id_number not in body
            r = await http.post(f"{base}/audit/csv", data=form)
            csv_text = (await r.read()).decode("utf-8-sig")
            assert r.status == 200 and csv_text.startswith("seq,at,actor")
            assert ",ivr,read:pension,ivr," in csv_text and person.id_number not in csv_text
            bad = await http.post(f"{base}/audit", data={**form, "id_number": "330523198001010012"})
            assert bad.status == 400
            no_csrf = await http.post(f"{base}/audit", data={k: v for k, v in form.items() if k != "csrf"})
            assert no_csrf.status == 403
        async with _client() as http:
            await _sign_in(http, base, "sup", SUP_PW)
            assert (await http.get(f"{base}/audit")).status == 403  # separation of duties
    with store.session() as s:
        mine = s.scalars(select(AuditEntry).where(AuditEntry.actor == "console:aud").order_by(AuditEntry.seq)).all()
    assert [(e.action, e.channel) for e in mine] == [
        ("lookup:resident", "console"),
        ("view:audit_log", "console"),
        ("lookup:resident", "console"),
        ("view:audit_log", "console"),
    ]
    assert all(e.resident_id == rid for e in mine)


async def test_in_chromium_the_auditor_finds_a_residents_ivr_balance_read(
    sqlite_store: Store, tmp_path: Path, sample_data: Any
) -> None:
    store = sqlite_store  # the page is the same on both databases: one browser run
    async with _console(store, tmp_path) as (base, _, _):
        accounts.add_user(store, "aud", AUD_PW, "auditor", "审计员")
        person = sample_data[1][0]
        rid = SampleBusinessPort(store, PEPPER).resident_of(person.id_number)
        with store.transaction() as c:
            audit.record(c, actor="ivr", action="read:pension", resident_id=rid, call_id="call-1")
        async with chromium() as browser:
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            await sign_in(page, base, "aud", AUD_PW, lands_on="audit")
            assert await page.locator("#nav-wallboard").count() == 0
            await page.fill("#audit-id-number", person.id_number)
            await page.select_option("#audit-channel", "ivr")
            await page.click("#audit-search")
            row = page.locator('tr.audit-row[data-action="read:pension"]')
            await row.wait_for()
            text = await row.inner_text()
            assert "语音自助" in text and mask_id(person.id_number) in text and "call-1" in text
            assert person.id_number not in await page.content()
