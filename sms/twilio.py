"""Twilio's Messages API as the second transport, behind the dispatcher's `submit_text`.

A message goes as one request with its whole text (Twilio splits it and bills segments);
its SID is kept as the message's one "segment" id, and the status callback that Twilio
later POSTs to the console (`/twilio/status`, `console/twilio_views.py`) settles it like
an SMPP receipt. Answers map onto the dispatcher's rules:

- 201: accepted, with the SID;
- 429 (Too Many Requests): sending pauses for `twilio.throttle_pause_s` and the message is
  resubmitted, as for ESME_RTHROTTLED;
- 5xx, 401/403 (Twilio's trouble, or our credentials, which an operator fixes): retried
  with backoff, then a dead letter with the reason;
- any other 4xx (an invalid 'To' number, a blocked recipient...): failed at once, with
  Twilio's error code and message;
- no connection: retried with backoff (nothing was sent); a connection lost after the
  request was written, or a timeout: `lost` (requeued, flagged as a possible duplicate).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from core.masking import mask_phone
from core.phones import BadPhoneNumber, to_e164
from core.settings import TwilioSettings
from sms.status import ESME_RINVDSTADR, ESME_RSUBMITFAIL, ESME_RSYSERR, ESME_RTHROTTLED
from sms.transport import Pacer, SubmitResult, Throttle

log = logging.getLogger(__name__)
FINAL_STATUSES = {"delivered": "delivered", "undelivered": "undelivered", "failed": "rejected"}


def e164(number: str, country_code: str) -> str:
    """A number of the store as E.164: 13912345678 -> +8613912345678, 0572... -> +86572...
    (core.phones.to_e164; BadPhoneNumber for what is no phone number)."""
    return to_e164(number, country_code)


class TwilioTransport:
    """The Twilio `sms.transport.Transport`: a message is one part, its whole text."""

    id_base = 0  # SIDs are opaque text
    receipt_id_base: int | None = None

    def __init__(self, settings: TwilioSettings, capacity: int = 10) -> None:
        self.settings = settings
        self.capacity = capacity  # messages claimed at once (the dispatcher's window)
        self.window = asyncio.Semaphore(settings.concurrency)
        self.pacer = Pacer(settings.tps)
        self.throttle = Throttle(settings.throttle_pause_s)  # a 429 pauses every request
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    async def start(self) -> None:
        # The aiohttp session must be made inside the running loop.
        self._http = AsyncTwilioHttpClient(timeout=self.settings.timeout_s)
        self._client = Client(self.settings.account_sid, self.settings.auth_token, http_client=self._http)
        self._client.api.base_url = self.settings.base_url.rstrip("/")

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _pace(self) -> None:
        """Nothing while a 429's pause lasts, then at least 1/tps s between requests."""
        while True:  # a pause may be extended by a 429 that came while we slept
            pause = await self.throttle.throttle_delay()
            if pause <= 0:
                break
            await asyncio.sleep(pause)
        await self.pacer.limit()

    def parts(self, text: str, reference: int, category: str | None = None) -> list[str]:
        return [text]  # Twilio splits, and answers with one id

    async def submit(self, recipient: str, part: str, urgent: bool = False) -> SubmitResult:
        return await self.submit_text(recipient, part)

    async def submit_text(self, recipient: str, text: str) -> SubmitResult:
        assert self._client is not None, "start() first"
        s = self.settings
        extra = {"from_": s.from_number} if s.from_number else {"messaging_service_sid": s.messaging_service_sid}
        if s.status_callback_url:
            extra["status_callback"] = s.status_callback_url
        try:
            to = e164(recipient, s.country_code)
        except BadPhoneNumber as exc:  # never sent: the message fails with the reason
            return SubmitResult(ESME_RINVDSTADR, detail=str(exc))
        async with self.window:
            await self._pace()
            try:
                message = await self._client.messages.create_async(to=to, body=text, **extra)
            except TwilioRestException as exc:
                return await self._refused(recipient, exc)
            except aiohttp.ClientConnectorError as exc:  # never reached Twilio: nothing sent
                return SubmitResult(ESME_RSYSERR, detail=f"Twilio unreachable: {exc}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                return SubmitResult(None, detail=f"Twilio did not answer: {exc!r}")
        return SubmitResult(0, message.sid)

    async def _refused(self, recipient: str, exc: TwilioRestException) -> SubmitResult:
        detail = f"Twilio HTTP {exc.status}" + (f" error {exc.code}" if exc.code else "") + f": {exc.msg}"
        if exc.status == 429:
            await self.throttle.throttled()
            return SubmitResult(ESME_RTHROTTLED, detail=detail)
        if exc.status >= 500 or exc.status in (401, 403):
            if exc.status in (401, 403):
                log.error("Twilio refused our credentials (%s): check twilio.account_sid and auth_token", detail)
            return SubmitResult(ESME_RSYSERR, detail=detail)
        log.warning("Twilio refused the message to %s: %s", mask_phone(recipient), detail)
        return SubmitResult(ESME_RSUBMITFAIL, detail=detail)
