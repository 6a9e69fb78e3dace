"""The console behind TLS: an nginx site (Debian's `nginx-light` or `nginx`) in front of
`hotline serve`'s web port, rendered from the settings (`hotline install` writes it to
/etc/hotline/nginx-hotline.conf; docs/operations.md, "Running it on a server").

What the console needs of its proxy, each line below says why:
- TLS, with HTTP only redirecting to it (the session cookie is `Secure` behind it:
  `web.secure_cookies`);
- the client's address in `X-Forwarded-For`, appended by nginx (`$proxy_add_x_forwarded_for`)
  so that a client's own header cannot hide its address: the console takes the rightmost
  entry not added by a trusted proxy (`web.trusted_proxies`, console/request.py);
- the live pages' server-sent events unbuffered and kept open (`/agent/stream`,
  `/wallboard/stream`): buffered, a wallboard would freeze until nginx's buffer filled;
- bodies no larger than the console takes (aiohttp's `client_max_size`, console/app.py).

The softphone's WebSocket (WSS) goes to Asterisk's own HTTPS port, not through here.
"""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings

CONSOLE_MAX_BODY = "64k"  # console/app.py: client_max_size=64 * 1024
STREAMS = ("/agent/stream", "/wallboard/stream")
STREAM_OPEN_S = 3600  # an SSE stream stays open; the console sends keep-alives well within this


def render_nginx(
    settings: Settings,
    *,
    cert: Path,
    key: Path,
    server_name: str = "_",
    https_listen: str = "443",
    http_listen: str = "80",
) -> str:
    """An nginx `server` pair for the console: include it in nginx's `http` block (Debian:
    link it into /etc/nginx/sites-enabled/)."""
    web = settings.web
    upstream = f"{'127.0.0.1' if web.host in ('0.0.0.0', '') else web.host}:{web.port}"
    proxied = [
        f"        proxy_pass http://{upstream};",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        "        # Appended, never replaced: the console reads the rightmost address its proxies",
        "        # did not add (web.trusted_proxies), so a client's own header hides nothing.",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_set_header X-Forwarded-Proto $scheme;",
    ]
    streams = "|".join(s.replace("/", "\\/") for s in STREAMS)
    lines = [
        f"# The 12333 console behind TLS, rendered by `hotline install` from {upstream} (web.host:web.port).",
        "# The console itself must run with web.secure_cookies = true and web.trusted_proxies",
        "# naming this proxy's address as the console sees it (127.0.0.1 on the same host).",
        "server {",
        f"    listen {http_listen};",
        f"    server_name {server_name};",
        "    return 301 https://$host$request_uri;",
        "}",
        "",
        "server {",
        f"    listen {https_listen} ssl http2;",
        f"    server_name {server_name};",
        f"    ssl_certificate {cert};",
        f"    ssl_certificate_key {key};",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        "    ssl_session_cache shared:hotline:1m;",
        f"    client_max_body_size {CONSOLE_MAX_BODY};",
        "    add_header Strict-Transport-Security max-age=31536000 always;",
        "",
        "    location / {",
        *proxied,
        "    }",
        "",
        "    # Server-sent events: passed on as they come, and left open.",
        f"    location ~ ^({streams})$ {{",
        *proxied,
        "        proxy_buffering off;",
        "        proxy_cache off;",
        f"        proxy_read_timeout {STREAM_OPEN_S}s;",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)
