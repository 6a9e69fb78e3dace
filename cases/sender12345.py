"""Sends the outbox's messages to 12345 (cases/outbox12345.py): a supervised task of
`hotline serve`, beside the casework loop, when `hotline12345.endpoints` names a URL.

Each message is POSTed as it was written (UTF-8 JSON) to its counterpart's endpoint, signed
the way 12345 signs what it sends us (cases.contract12345.sign, under the counterpart's
shared key), with our name (`hotline12345.our_name`) in X-12345-Counterpart and a new nonce:

- 2xx: sent.
- no answer (refused, reset, timed out), 429 or any other status: tried again after
  `retry_base_s`, doubled each try up to `retry_max_s`, for as long as 12345 is away. A
  try that timed out may have arrived: the body's `message_id` lets 12345 see the resend.
- 4xx other than 429: 12345 refuses this message for good; it is dead-lettered (`failed`,
  with the status and the start of the answer) and never tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Final

import aiohttp

from cases import outbox12345
from cases.contract12345 import COUNTERPART, NONCE, SIGNATURE, TIMESTAMP, sign
from cases.outbox12345 import Claimed
from core.db import Store
from core.errors import StoreUnavailable
from core.models import utcnow
from core.settings import Hotline12345Settings

log = logging.getLogger(__name__)
BATCH: Final = 50
EXCERPT: Final = 200


class Outcome(Enum):
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str


def verdict(status: int | None, answer: str = "", error: str = "") -> Verdict:
    """What an HTTP answer (its status, None if there was none) means for the message.

    >>> verdict(200).outcome, verdict(503).outcome, verdict(429).outcome, verdict(400, "bad kind").reason
    (<Outcome.SENT: 'sent'>, <Outcome.RETRY: 'retry'>, <Outcome.RETRY: 'retry'>, 'HTTP 400: bad kind')
    """
    if status is None:
        return Verdict(Outcome.RETRY, f"no answer: {error}")
    said = f"HTTP {status}" + (f": {' '.join(answer.split())[:EXCERPT]}" if answer.strip() else "")
    if 200 <= status < 300:
        return Verdict(Outcome.SENT, said)
    if 400 <= status < 500 and status != 429:
        return Verdict(Outcome.DEAD, said)
    return Verdict(Outcome.RETRY, said)


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """The wait before the next try, after `attempts` tries: doubling from base, capped.

    >>> [backoff_s(n, 30, 300) for n in (1, 2, 3, 4, 5, 50)]
    [30.0, 60.0, 120.0, 240.0, 300, 300]
    """
    return min(base_s * 2.0 ** min(attempts - 1, 32), max_s)


def signed_headers(our_name: str, key: str, body: bytes, now: dt.datetime) -> dict[str, str]:
    timestamp, nonce = str(int(now.timestamp())), secrets.token_urlsafe(24)
    return {
        "Content-Type": "application/json; charset=utf-8",
        COUNTERPART: our_name,
        TIMESTAMP: timestamp,
        NONCE: nonce,
        SIGNATURE: sign(key, timestamp, nonce, body),
    }


class Sender12345:
    """Claims due messages per counterpart with an endpoint, sends them, writes the outcome."""

    def __init__(self, settings: Hotline12345Settings, store: Store, worker: str) -> None:
        self.settings = settings
        self.store = store
        self.worker = worker
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender12345:
        # Made inside the running loop; redirects are not followed (a POST is not re-sent blind).
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.send_timeout_s))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def run(self, stop: asyncio.Event, poll_s: float = 5.0) -> None:
        async with self:
            await asyncio.to_thread(outbox12345.reclaim_stale, self.store, utcnow())
            while not stop.is_set():
                try:
                    busy = await self.step()
                except StoreUnavailable as exc:
                    log.warning("12345 sender %s: store unavailable (%s); trying again", self.worker, exc)
                    busy = 0
                if busy < BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), poll_s)

    async def step(self, now: dt.datetime | None = None) -> int:
        """One pass: every counterpart's due messages claimed and sent; how many were tried."""
        now = now or utcnow()
        tried = 0
        for counterpart, url in self.settings.endpoints.items():
            due = await asyncio.to_thread(outbox12345.claim, self.store, counterpart, self.worker, BATCH, now)
            for m in due:
                await asyncio.shield(self._send(m, url, now))  # a claimed message's outcome is always written
            tried += len(due)
        return tried

    async def _send(self, m: Claimed, url: str, now: dt.datetime) -> None:
        body = m.body.encode()
        headers = signed_headers(self.settings.our_name, self.settings.counterparts[m.counterpart], body, now)
        result = await self._post(url, body, headers)
        ref = f"{m.kind} of {m.counterpart} order {m.order_no} (message {m.id}, try {m.attempts})"
        if result.outcome is Outcome.SENT:
            await asyncio.to_thread(outbox12345.sent, self.store, m, now)
            log.info("12345: %s sent", ref)
        elif result.outcome is Outcome.DEAD:
            await asyncio.to_thread(outbox12345.dead, self.store, m, result.reason, now)
            log.error("12345: %s refused for good, dead-lettered: %s", ref, result.reason)
        else:
            delay = backoff_s(m.attempts, self.settings.retry_base_s, self.settings.retry_max_s)
            await asyncio.to_thread(outbox12345.retry, self.store, m, result.reason, delay, now)
            log.warning("12345: %s not taken (%s); again in %.0f s", ref, result.reason, delay)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Verdict:
        """aiohttp's errors become a verdict here: nothing of aiohttp reaches the caller."""
        assert self._http is not None, "async with the sender first"
        try:
            async with self._http.post(url, data=body, headers=headers, allow_redirects=False) as response:
                return verdict(response.status, await response.text(errors="replace"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return verdict(None, error=f"{type(exc).__name__} {exc}".strip()[:EXCERPT])
