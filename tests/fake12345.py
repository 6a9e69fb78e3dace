"""A fake 12345 platform for tests, written from the OpenAPI document the console serves
(`/api/12345/openapi.json`), not from our client or server code: it reads the paths, header
names and patterns and the schemas from the document, signs with its own HMAC as the
document's X-12345-Signature description says, and checks what we send it against the
`Message` schema (openapi-schema-validator).

Both directions:
- `send_order(order)` signs an order and POSTs it to our `receiveOrder` path;
- our messages arrive at its `/notify` (the `orderMessage` of `x-webhooks`): each is checked
  (counterpart, timestamp, signature, one-time nonce, schema) and kept once per message_id
  (a resend is answered 200 and counted in `resent`).
It can be switched down: `unavailable()` answers 503, `stop()` refuses connections."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web
from openapi_schema_validator import OAS30Validator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        # A self-contained schema: the document's components beside it for the $refs.
        return {"$ref": f"#/components/schemas/{name}", "components": self.doc["components"]}

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
        errors = [e.message for e in OAS30Validator(self._schema("Message")).iter_errors(message)]
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
