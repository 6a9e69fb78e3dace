"""A fake 12345 platform for tests and the demo (`hotline fake-12345`), written from the
OpenAPI document the console serves (`/api/12345/openapi.json`), not from our client or
server code: it reads the paths, header names and patterns and the schemas from the
document, signs with its own HMAC as the document's X-12345-Signature description says, and
checks what we send it against the document's `Message` schema (`conforms`, below: the
subset of OpenAPI 3.0 schemas the document uses).

Both directions:
- `send_order(order)` signs an order and POSTs it to our `receiveOrder` path;
- our messages arrive at its `/notify` (the `orderMessage` of `x-webhooks`): each is checked
  (counterpart, timestamp, signature, one-time nonce, schema) and kept once per message_id
  (a resend is answered 200 and counted in `resent`).
It can be switched down: `unavailable()` answers 503, `stop()` refuses connections."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import secrets
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import ClientError, ClientSession, web

from core.errors import HotlineError
from core.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TYPES: dict[str, type | tuple[type, ...]] = {"object": dict, "string": str, "integer": int}


def conforms(schema: dict[str, Any], value: Any) -> list[str]:
    """What in `value` does not fit an object schema of the document: required properties,
    each property's type (`nullable` allowing null), enum and length. Empty if it fits.

    >>> conforms({"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string",
    ...     "enum": ["accepted"]}}}, {"kind": "sent"})
    ["kind: 'sent' is not one of ['accepted']"]
    """
    if not isinstance(value, dict):
        return ["not a JSON object"]
    errors = [f"{name}: required" for name in schema.get("required", ()) if name not in value]
    for name, rule in schema.get("properties", {}).items():
        if name not in value or (value[name] is None and rule.get("nullable")):
            continue
        v = value[name]
        if isinstance(v, bool) or not isinstance(v, _TYPES[rule["type"]]):
            errors.append(f"{name}: not {rule['type']}")
        elif "enum" in rule and v not in rule["enum"]:
            errors.append(f"{name}: {v!r} is not one of {rule['enum']}")
        elif isinstance(v, str) and not rule.get("minLength", 0) <= len(v) <= rule.get("maxLength", len(v)):
            errors.append(f"{name}: {len(v)} characters")
    return errors


def _sign(key: str, timestamp: str, nonce: str, body: bytes) -> str:
    # As the document says: hex HMAC-SHA256 of timestamp "\n" nonce "\n" raw body.
    return hmac.new(
        key.encode(), timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body, hashlib.sha256
    ).hexdigest()


@dataclass
class Fake12345:
    """12345 as `name`, knowing the sub-centre as `subcentre` under the shared `key`."""

    doc: dict[str, Any]
    name: str
    subcentre: str
    key: str
    port: int = field(default_factory=free_port)
    got: list[dict[str, Any]] = field(default_factory=list)  # messages taken, once each
    refused: list[tuple[int, str]] = field(default_factory=list)  # (status, why) of what it refused
    resent: int = 0
    status: int = 200  # what a good message is answered with (503: 12345 is down)
    clock: Callable[[], float] = time.time  # a test's own clock, as it gives the sender
    max_skew_s: int = 300
    _nonces: set[str] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def _operation(self, operation_id: str) -> tuple[str, dict[str, Any]]:
        places = [*self.doc["paths"].items(), *self.doc.get("x-webhooks", {}).items()]
        for path, item in places:
            for op in item.values():
                if op.get("operationId") == operation_id:
                    return path, op
        raise LookupError(operation_id)

    def _schema(self, name: str) -> dict[str, Any]:
        return dict(self.doc["components"]["schemas"][name])

    # -- 12345 sends us an order -------------------------------------------------------------
    async def send_order(
        self, http: ClientSession, base: str, order: dict[str, Any], *, nonce: str = "", key: str = ""
    ) -> tuple[int, dict[str, Any]]:
        path, _ = self._operation("receiveOrder")
        body = json.dumps(order, ensure_ascii=False).encode()
        timestamp, nonce = str(int(time.time())), nonce or secrets.token_urlsafe(24)
        headers = {
            "X-12345-Counterpart": self.name,
            "X-12345-Timestamp": timestamp,
            "X-12345-Nonce": nonce,
            "X-12345-Signature": _sign(key or self.key, timestamp, nonce, body),
            "Content-Type": "application/json",
        }
        async with http.post(base + path, data=body, headers=headers) as r:
            return r.status, await r.json()

    # -- we tell 12345 -----------------------------------------------------------------------
    def _refuse(self, status: int, why: str) -> web.Response:
        self.refused.append((status, why))
        return web.json_response({"error": why}, status=status)

    async def _notify(self, request: web.Request) -> web.Response:
        _, op = self._operation("notifyCounterpart")
        body = await request.read()
        for p in op["parameters"]:  # the document's headers, each with its pattern
            value = request.headers.get(p["name"], "")
            if not re.fullmatch(p["schema"]["pattern"], value):
                return self._refuse(401, f"{p['name']} missing or malformed")
        h = request.headers
        if h["X-12345-Counterpart"] != self.subcentre:
            return self._refuse(401, "unknown sub-centre")
        if not hmac.compare_digest(_sign(self.key, h["X-12345-Timestamp"], h["X-12345-Nonce"], body),
                                   h["X-12345-Signature"].lower()):  # fmt: skip
            return self._refuse(401, "bad signature")
        if abs(int(h["X-12345-Timestamp"]) - self.clock()) > self.max_skew_s:
            return self._refuse(403, "stale")
        if h["X-12345-Nonce"] in self._nonces:
            return self._refuse(403, "nonce used before")
        self._nonces.add(h["X-12345-Nonce"])
        try:
            message = json.loads(body.decode())
        except (UnicodeDecodeError, ValueError):
            return self._refuse(400, "not JSON")
        errors = conforms(self._schema("Message"), message)
        if errors:
            return self._refuse(400, "; ".join(errors))
        if self.status != 200:
            return web.json_response({"error": "down"}, status=self.status)
        if any(m["message_id"] == message["message_id"] for m in self.got):
            self.resent += 1
        else:
            self.got.append(message)
        return web.json_response({"ok": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/notify", self._notify)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def kinds(self) -> list[tuple[str, str]]:
        return [(m["kind"], m["order_no"]) for m in self.got]


# -- `hotline fake-12345`: the fake for the demo ------------------------------------------


class FakeUnusable(HotlineError):
    """The fake cannot start: a setting it needs is missing, or the console cannot be read."""


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "fake-12345",
        help="a fake 12345 platform for the demo: takes our messages, or sends one order (--send)",
    )
    s.add_argument("--name", default="demo-12345", help="its name: one of hotline12345.counterparts")
    s.add_argument("--port", type=int, default=8345, help="where it takes our messages (127.0.0.1:PORT/notify)")
    s.add_argument("--console", help="the console's URL, to read the OpenAPI document (default: web.host:port)")
    s.add_argument("--send", metavar="ORDER.json", help="sign and send this order to the console, then exit")
    s.add_argument("--down-s", type=float, default=0.0, help="answer 503 for this long first (12345 away)")
    s.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    key = settings.hotline12345.counterparts.get(args.name)
    if key is None:
        raise FakeUnusable(f"{args.name!r} is not in hotline12345.counterparts: the fake signs with its key")
    console = (args.console or f"http://{settings.web.host}:{settings.web.port}").rstrip("/")
    order = _order_file(args.send) if args.send else None
    return asyncio.run(_run(settings, args, key, console, order))


def _order_file(path: str) -> dict[str, Any]:
    try:
        order = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FakeUnusable(f"{path}: not an order to send ({exc})") from None
    if not isinstance(order, dict):
        raise FakeUnusable(f"{path}: not a JSON object")
    return order


async def _run(
    settings: Settings, args: argparse.Namespace, key: str, console: str, order: dict[str, Any] | None
) -> int:
    async with ClientSession() as http:
        try:
            async with http.get(f"{console}/api/12345/openapi.json") as r:
                r.raise_for_status()
                doc = await r.json()
        except (ClientError, ValueError) as exc:
            raise FakeUnusable(f"cannot read the OpenAPI document at {console}: {exc}") from None
        fake = Fake12345(doc, args.name, settings.hotline12345.our_name, key, port=args.port)
        if order is not None:
            status, answer = await fake.send_order(http, console, order)
            print(json.dumps({"http_status": status, **answer}, ensure_ascii=False))
            return 0 if status == 200 else 1
    if not settings.hotline12345.our_name:
        raise FakeUnusable("hotline12345.our_name is not set: the fake checks who signs what it takes")
    fake.status = 503 if args.down_s > 0 else 200
    await fake.start()
    print(f"fake 12345 {args.name!r} taking messages at {fake.url} (Ctrl-C to stop)", file=sys.stderr)
    try:
        await _report(fake, args.down_s)
    finally:
        await fake.stop()
    return 0


async def _report(fake: Fake12345, down_s: float) -> None:
    """Until cancelled: each message taken, as a JSON line (without the text or the number)."""
    loop, shown = asyncio.get_running_loop(), 0
    back_at = loop.time() + down_s
    while True:
        await asyncio.sleep(0.5)
        if fake.status != 200 and loop.time() >= back_at:
            fake.status = 200
            print("fake 12345: answering again", file=sys.stderr)
        for m in fake.got[shown:]:
            print(json.dumps({k: m[k] for k in ("message_id", "kind", "order_no", "at")}, ensure_ascii=False))
        shown = len(fake.got)
        sys.stdout.flush()
