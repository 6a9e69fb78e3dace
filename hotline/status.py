"""`hotline status`: the running `hotline serve`'s components, from its web port's /healthz."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from core.errors import HotlineError
from core.settings import WebSettings

TIMEOUT_S = 5.0


class NotRunning(HotlineError):
    """Nothing answers /healthz on the web port: `hotline serve` is not running there."""


def health_url(web: WebSettings) -> str:
    host = "127.0.0.1" if web.host in ("0.0.0.0", "", "::") else web.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{web.port}/healthz"


def ask_health(web: WebSettings) -> dict[str, Any]:
    url = health_url(web)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as reply:
            body = reply.read()
    except urllib.error.HTTPError as exc:
        if exc.code != 503:  # 503 is an answer: some component is down
            raise NotRunning(f"{url} answered HTTP {exc.code}: is `hotline serve` listening there?") from exc
        body = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotRunning(
            f"`hotline serve` is not running, or runs without its web console (nothing answers {url}: {reason})"
        ) from exc
    try:
        answer: dict[str, Any] = json.loads(body)
    except ValueError as exc:
        raise NotRunning(f"{url} did not answer as `hotline serve` does (not JSON)") from exc
    return answer


def as_text(answer: dict[str, Any]) -> str:
    lines = ["hotline serve: " + ("all components up" if answer.get("ok") else "SOME COMPONENTS ARE DOWN")]
    for name, part in answer.get("components", {}).items():
        line = f"  {name:<16} {part['state']:<11} since {part['since']}"
        if part.get("restarts"):
            line += f", {part['restarts']} restarts"
        if part.get("last_error"):
            line += f"; last error at {part['last_error_at']}: {part['last_error']} (the serve log has it whole)"
        lines.append(line)
    for name, link in answer.get("links", {}).items():
        line = f"  {name} link: {link['state']} since {link['since']}"
        if link.get("sick_binds"):
            line += f", {link['sick_binds']} sick binds dropped"
        lines.append(line)
    calls_out = answer.get("calls_out")
    if calls_out:
        lines.append(
            f"  calls out        {calls_out['placed_last_hour']} in the last hour"
            f" (cap {calls_out['calls_per_hour']} an hour)"
        )
    lines += [f"  WARNING: {warning}" for warning in answer.get("warnings", [])]
    return "\n".join(lines)
