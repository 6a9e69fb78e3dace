"""The console behind the nginx site `hotline install` renders (hotline/nginx_config.py),
with a real nginx and a real `hotline serve`: plain HTTP is sent to HTTPS, the cookies are
Secure, and the per-address sign-in limit counts the real client even when it forges
X-Forwarded-For (nginx appends, the console reads the rightmost address it did not add)."""

from __future__ import annotations

import datetime as dt
import http.client
import re
import shutil
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.procs import free_port
from core.db import Store
from hotline.nginx_config import render_nginx
from tests.conftest import make_settings
from tests.store.test_doctor import _certificate
from tests.store.test_serve_processes import _end, _env, _serve

ROOT = Path(__file__).resolve().parents[2]
CLIENT = "127.0.0.5"  # the browser: an address of its own, not the proxy's


@pytest.fixture
def proxied(sqlite_store: Store, tmp_path: Path) -> Iterator[tuple[int, int]]:
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (make test installs nginx-light)")
    web, https, plain = free_port(), free_port(), free_port()
    env = _env(
        sqlite_store.url,
        HOTLINE_WEB_PORT=str(web),
        HOTLINE_WEB_SECURE_COOKIES="true",
        HOTLINE_WEB_TRUSTED_PROXIES="127.0.0.1",
        HOTLINE_WEB_SIGN_IN_FAILURES_PER_ADDRESS="2",
        HOTLINE_SECURITY_AUDIT_KEY="test-audit-key-0123456789abcdef-0123",
    )
    serve = _serve(tmp_path, env, "web")
    cert = tmp_path / "console.pem"
    _certificate(cert, dt.datetime.now(dt.UTC) + dt.timedelta(days=90))
    settings = make_settings(tmp_path, sqlite_store.url, HOTLINE_WEB_PORT=str(web))
    site = render_nginx(
        settings,
        cert=cert,
        key=cert.with_suffix(".key"),
        https_listen=f"127.0.0.1:{https}",
        http_listen=f"127.0.0.1:{plain}",
    )
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n access_log off;\n client_body_temp_path {tmp_path}/body;\n"
        f" proxy_temp_path {tmp_path}/proxy;\n{site}\n}}\n"
    )
    nginx = subprocess.Popen(
        ["nginx", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off; master_process off;"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_listening(https, nginx)
        yield https, plain
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        if nginx.stderr is not None:
            nginx.stderr.close()
        _end(serve)


def _wait_listening(port: int, nginx: subprocess.Popen[str]) -> None:
    for _ in range(100):  # bounded: 10 s
        if nginx.poll() is not None:
            raise AssertionError(f"nginx exited: {nginx.stderr.read() if nginx.stderr else ''}")
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            probe.connect()
            return
        except OSError:
            time.sleep(0.1)
        finally:
            probe.close()
    raise AssertionError("nginx did not listen")


def _https(port: int) -> http.client.HTTPSConnection:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, source_address=(CLIENT, 0), timeout=10)


def test_the_console_behind_nginx(proxied: tuple[int, int]) -> None:
    https, plain = proxied
    redirect = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
    redirect.request("GET", "/login")
    answer = redirect.getresponse()
    assert answer.status == 301 and answer.getheader("Location", "").startswith("https://")
    redirect.close()

    conn = _https(https)
    conn.request("GET", "/healthz")
    health = conn.getresponse()
    assert health.status == 200 and b'"ok"' in health.read()

    conn.request("GET", "/login")
    page = conn.getresponse()
    page.read()
    cookie = page.getheader("Set-Cookie", "")
    assert "Secure" in cookie and "HttpOnly" in cookie
    token = re.search(r"hotline_login_csrf=([^;]+)", cookie)
    assert token is not None

    statuses = []
    for n in range(3):  # a new forged address each time: the limit still sees one client
        form = urllib.parse.urlencode({"csrf": token.group(1), "username": "nobody", "password": "wrong"})
        conn.request(
            "POST",
            "/login",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"hotline_login_csrf={token.group(1)}",
                "X-Forwarded-For": f"203.0.113.{n + 1}",
            },
        )
        reply = conn.getresponse()
        reply.read()
        statuses.append(reply.status)
    conn.close()
    assert statuses == [401, 401, 429]
