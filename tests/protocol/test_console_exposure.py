"""The console as an outsider meets it over real HTTP: the language switch sends a browser
back only to a path of this site, cookies carry Secure and the page HSTS once the console is
reached over HTTPS (a TLS proxy named in `web.trusted_proxies`). /healthz naming no host:
tests/protocol/test_supervise.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from yarl import URL

from core.db import Store
from tests.protocol.test_console import SUP_PW, _client, _console


@pytest.fixture
async def console(store: Store, tmp_path: Path) -> AsyncIterator[tuple[str, Store, Any]]:
    async with _console(store, tmp_path) as c:
        yield c


OFF_SITE = [
    "//evil.example/",
    "/\\evil.example",
    "/\\/evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/ /evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "evil.example",
    "\\\\evil.example",
    "",
]


async def test_the_language_switch_never_sends_a_browser_off_site(console: Any) -> None:
    base, _, _ = console
    async with _client() as http:
        for target in OFF_SITE:
            # Percent-encoded whole (`%2F%2Fevil`) and as a link leaves it (`/%09/evil`, `/\\evil`).
            for raw in (quote(target, safe=""), quote(target, safe="/:\\")):
                url = URL(f"{base}/lang?to=en&next={raw}", encoded=True)
                r = await http.get(url, allow_redirects=False)
                assert r.status == 400, (raw, r.headers.get("Location"))
                assert "Location" not in r.headers


async def test_a_double_encoded_path_stays_a_path_of_this_site(console: Any) -> None:
    base, _, _ = console
    async with _client() as http:
        url = URL(f"{base}/lang?to=en&next=/%252F%252Fevil.example", encoded=True)
        r = await http.get(url, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/%2F%2Fevil.example"
        assert URL(base).join(URL(r.headers["Location"], encoded=True)).host == "127.0.0.1"


async def test_the_language_switch_goes_back_to_the_page_it_came_from(console: Any) -> None:
    base, _, _ = console
    async with _client() as http:
        r = await http.get(f"{base}/lang", params={"to": "en", "next": "/orders?page=2"}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/orders?page=2"
        assert "hotline_lang=en" in r.headers["Set-Cookie"]


def _cookies(r: Any) -> list[str]:
    return list(r.headers.getall("Set-Cookie", []))


async def test_over_plain_http_no_secure_cookie_and_no_hsts(console: Any) -> None:
    base, _, _ = console
    async with _client() as http:
        r = await http.get(f"{base}/login")
        assert "Strict-Transport-Security" not in r.headers
        assert [c for c in _cookies(r) if c.startswith("hotline_login_csrf=")]
        assert not [c for c in _cookies(r) if "Secure" in c]


async def test_behind_a_tls_proxy_cookies_are_secure_and_hsts_is_sent(store: Store, tmp_path: Path) -> None:
    env = {"HOTLINE_WEB_TRUSTED_PROXIES": "127.0.0.1"}
    async with _console(store, tmp_path, **env) as (base, _, _), _client() as http:
        proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.5"}
        r = await http.get(f"{base}/login", headers=proxied)
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        [csrf] = [c for c in _cookies(r) if c.startswith("hotline_login_csrf=")]
        assert "Secure" in csrf and "HttpOnly" in csrf
        # The proxy's own hop decides, not what the client claimed before it.
        spoofed = await http.get(f"{base}/login", headers={"X-Forwarded-Proto": "https, http"})
        assert "Strict-Transport-Security" not in spoofed.headers


async def test_a_client_claiming_https_itself_is_not_believed(console: Any) -> None:
    base, _, _ = console
    async with _client() as http:
        r = await http.get(f"{base}/login", headers={"X-Forwarded-Proto": "https"})
        assert "Strict-Transport-Security" not in r.headers
        assert not [c for c in _cookies(r) if "Secure" in c]


async def test_secure_cookies_setting_forces_secure_and_hsts(store: Store, tmp_path: Path) -> None:
    env = {"HOTLINE_WEB_SECURE_COOKIES": "true"}
    async with _console(store, tmp_path, **env) as (base, _, _), _client() as http:
        r = await http.get(f"{base}/login")
        assert "Strict-Transport-Security" in r.headers
        assert _cookies(r) and all("Secure" in c for c in _cookies(r))


async def test_the_session_cookie_set_through_the_tls_proxy_is_secure(store: Store, tmp_path: Path) -> None:
    """Signed in as the browser does behind the proxy (a Secure cookie is not sent back over
    this test's plain hop by a cookie jar, so the cookie goes by hand)."""
    env = {"HOTLINE_WEB_TRUSTED_PROXIES": "127.0.0.0/8"}
    proxied = {"X-Forwarded-Proto": "https"}
    async with _console(store, tmp_path, **env) as (base, _, _), _client() as http:
        r = await http.get(f"{base}/login", headers=proxied)
        token = re.search(r'name="csrf" value="([^"]+)"', await r.text())
        assert token is not None
        cookie = f"hotline_login_csrf={token.group(1)}"
        form = {"csrf": token.group(1), "username": "sup", "password": SUP_PW}
        r = await http.post(f"{base}/login", data=form, headers={**proxied, "Cookie": cookie}, allow_redirects=False)
        assert r.status == 303
        [session] = [c for c in _cookies(r) if c.startswith("hotline_session=")]
        assert "Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
