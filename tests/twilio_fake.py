"""A local stand-in for Twilio's Messages API, following its documented wire format (Twilio's
cloud cannot be reached from here; this is the one fake in the suite).

- POST /2010-04-01/Accounts/{AccountSid}/Messages.json, HTTP Basic auth with the account
  SID and auth token, form fields To, From or MessagingServiceSid, Body, StatusCallback;
  201 with the Message resource as JSON (sid "SM" + 32 hex digits, status "queued").
- Errors as Twilio writes them: {"code", "message", "more_info", "status"}: 401/20003 for
  bad credentials, 400/21211 for an invalid 'To', 400/21602 for a missing body,
  429/20429 when `rate_limit_first` requests are to be refused, 503 when asked.
- Status callbacks: "sent", then a final status ("delivered", or "undelivered" for the
  numbers in `undelivered`), POSTed as a form to StatusCallback with X-Twilio-Signature:
  base64(HMAC-SHA1(auth token, URL + each field name and value in field-name order)).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from aiohttp import ClientSession, web

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature as Twilio documents it (written here, not taken from the client)."""
    payload = url + "".join(key + params[key] for key in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class FakeTwilio:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "test-auth-token"
    callback_delay_s: float = 0.05
    rate_limit_first: int = 0  # refuse this many first requests with 429
    fail_every: int = 0  # answer every Nth request with 503
    undelivered: set[str] = field(default_factory=set)  # E.164 numbers whose message is not delivered
    invalid: set[str] = field(default_factory=set)  # well-formed numbers Twilio calls invalid (21211)
    requests: list[dict[str, str]] = field(default_factory=list)  # accepted messages' forms
    answers: list[int] = field(default_factory=list)  # HTTP status of every request
    callbacks: list[tuple[str, str, int]] = field(default_factory=list)  # sid, status, HTTP answer
    port: int = 0
    _runner: web.AppRunner | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: ClientSession | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Messages.json", self._create)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = ClientSession()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
        return web.json_response({**body, "status": status}, status=status)

    def _answer(self, response: web.Response) -> web.Response:
        self.answers.append(response.status)
        return response

    async def _create(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        account = request.match_info["account"]
        if request.headers.get("Authorization", "") != f"Basic {expected}" or account != self.account_sid:
            return self._answer(self._error(401, 20003, "Authenticate"))
        n = len(self.answers) + 1
        if n <= self.rate_limit_first:
            return self._answer(self._error(429, 20429, "Too Many Requests"))
        if self.fail_every and n % self.fail_every == 0:
            return self._answer(self._error(503, 20500, "Service Unavailable"))
        form = {k: str(v) for k, v in (await request.post()).items()}
        to = form.get("To", "")
        if not E164.match(to) or to in self.invalid:
            return self._answer(self._error(400, 21211, f"The 'To' number {to} is not a valid phone number."))
        if not form.get("Body"):
            return self._answer(self._error(400, 21602, "Message body is required."))
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._answer(self._error(400, 21603, "The 'From' phone number is required."))
        sid = "SM" + secrets.token_hex(16)
        self.requests.append({**form, "Sid": sid})
        now = email.utils.format_datetime(email.utils.localtime(), usegmt=False)
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{account}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }
        if form.get("StatusCallback"):
            task = asyncio.get_running_loop().create_task(self._report(form["StatusCallback"], sid, form))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._answer(web.json_response(resource, status=201))

    async def _report(self, url: str, sid: str, form: dict[str, str]) -> None:
        final = "undelivered" if form["To"] in self.undelivered else "delivered"
        for status in ("sent", final):
            await asyncio.sleep(self.callback_delay_s)
            await self.callback(url, sid, status, form)

    async def callback(self, url: str, sid: str, status: str, form: dict[str, str], *, sign_with: str = "") -> int:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": form.get("From", ""),
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": form.get("To", ""),
        }
        headers = {"X-Twilio-Signature": signature(sign_with or self.auth_token, url, params)}
        assert self._session is not None
        code = 0
        with contextlib.suppress(OSError):
            async with self._session.post(url, data=params, headers=headers) as response:
                code = response.status
        self.callbacks.append((sid, status, code))
        return code
