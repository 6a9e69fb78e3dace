"""In Debian's chromium: a resident opens the binding page from the official account's menu,
passes through WeChat's authorisation (the local stand-in, on another site), enters their ID
number and the code the SMS carries, and sees their account bound."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.db import Store
from core.masking import mask_id, mask_phone
from tests.browser import chromium
from tests.wechat_bind_support import sent_codes, wechat_console

OPENID = "oLk3s5y0uBrowserResident01"


async def test_in_chromium_a_resident_binds_from_the_menu_to_bound(
    sqlite_store: Store, tmp_path: Path, sample_data: Any
) -> None:
    resident = sample_data[1][0]
    # WeChat on 127.0.0.2: another site than the page's, as open.weixin.qq.com is.
    async with wechat_console(sqlite_store, tmp_path, wechat_host="127.0.0.2") as site:
        site.fake.browser_openid = OPENID
        async with chromium() as browser:
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            await page.goto(f"{site.base}/wechat/bind")
            await page.locator("#id-form").wait_for()
            assert "code=" not in page.url and OPENID not in page.url
            assert site.fake.oauth_requests == 1
            await page.fill("#id-number", resident.id_number)
            await page.click("#send-code")
            notice = page.locator("#bind-notice")
            await notice.wait_for()
            said = await notice.inner_text()
            assert "验证码已发送到登记的手机" in said and mask_phone(resident.phone) not in said
            [code] = sent_codes(sqlite_store, resident.id_number)  # what the SMS carries
            await page.fill("#code", code)
            await page.click("#confirm-code")
            bound = page.locator("#bound-to")
            await bound.wait_for()
            assert mask_id(resident.id_number) in await bound.inner_text()
            content = await page.content()
            assert resident.id_number not in content and OPENID not in content
            cookies = {c["name"]: c for c in await page.context.cookies()}
            assert cookies["hotline_wechat"]["httpOnly"] and cookies["hotline_wechat"]["sameSite"] == "Lax"
