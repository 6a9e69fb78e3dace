"""WeChat official-account (微信公众号) template messages as a notice transport.

What this relies on, from WeChat's documentation for service accounts (服务号):

- Access token, `getStableAccessToken`
  (https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken):
  `POST {api_base}/cgi-bin/stable_token` with the JSON body
  `{"grant_type": "client_credential", "appid": APPID, "secret": APPSECRET, "force_refresh": false}`
  -> `{"access_token": "...", "expires_in": 7200}`, or `{"errcode": 40125, "errmsg": "invalid appsecret"}`.
  In this "normal mode" a call while the token is valid returns the same token; in its last
  5 minutes WeChat issues the next one and keeps both valid, so expires_in is always >= 300.
  Chosen over the older `GET /cgi-bin/token?grant_type=client_credential&appid=&secret=`
  (https://developers.weixin.qq.com/doc/service/api/base/api_getaccesstoken) because every
  call of that one invalidates the token before it (after a 5-minute overlap): several
  `hotline serve` processes, each with its own cache (DESIGN.md: several dispatchers on one
  PostgreSQL), would keep knocking each other's tokens out. The stable token also keeps the
  secret out of URLs (proxy logs), and the docs recommend it. Its `force_refresh` mode (20
  a day, 30 s apart, meant for a leaked token) is never used here.
- Template message, `sendTemplateMessage`
  (https://developers.weixin.qq.com/doc/service/api/notify/template/api_sendtemplatemessage):
  `POST {api_base}/cgi-bin/message/template/send?access_token=TOKEN` with
  `{"touser": OPENID, "template_id": ID, "url": optional, "data": {"key": {"value": "..."}},
  "client_msg_id": optional}` -> `{"errcode": 0, "errmsg": "ok", "msgid": N}`. `client_msg_id`
  is WeChat's de-duplication key: one message per openid and id within 10 minutes, so a
  notice resent after a lost answer (`maybe_sent`) is not shown twice when the caller
  passes its own notice id.
- Return codes (全局返回码, the official account's global return-code table), as handled:
  40001 / 40014 / 42001 on a send (token invalid, not the latest, or expired): the token is
  fetched again and the send retried once; 43004 (需要接收者关注, the resident does not
  follow the account): NOT_FOLLOWING, the caller falls back to another channel; 40003
  (invalid openid) and 41009 (missing openid): BAD_OPENID; 45009 (the daily API quota):
  LIMIT_REACHED, the whole channel pauses until the next midnight, Beijing time; -1 (system
  busy) and 45011 (the minute quota): TEMPORARY; 40036 / 40037 (invalid template id),
  48001 (api unauthorized): CONFIG_ERROR, the channel pauses and says so once; 47001 /
  47003 (the data of this one message refused): REJECTED. On the token call -1 is
  TEMPORARY, 45009 LIMIT_REACHED, anything else (40013 invalid appid, 40125 invalid
  appsecret, 40164 address not whitelisted, 40243 secret frozen...) CONFIG_ERROR.
- Bodies go as UTF-8 JSON without `\\uXXXX` escapes: the global table lists 40033
  (不合法的请求字符，不能包含\\uxxxx格式的字符).

Network errors, timeouts, non-200 answers and replies that are not the documented JSON are
TEMPORARY and never raise; what came back is logged (first 200 characters, masked). Openids
are private (they name a resident to this account) and appear in logs only as
`core.masking.mask_openid`; the secret and the token never do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

import aiohttp

from core.errors import SettingsError
from core.masking import mask_numbers, mask_openid
from core.settings import WeChatSettings

log = logging.getLogger(__name__)

# WeChat's daily quotas are counted per Beijing day, whatever the site's own zone.
BEIJING: Final = ZoneInfo("Asia/Shanghai")
TOKEN_PATH: Final = "/cgi-bin/stable_token"
SEND_PATH: Final = "/cgi-bin/message/template/send"
EXCERPT: Final = 200


class Outcome(enum.Enum):
    SENT = "sent"  # accepted by WeChat, with its msgid
    NOT_FOLLOWING = "not_following"  # 43004: fall back to another channel for this notice
    BAD_OPENID = "bad_openid"  # not an openid of this account: the binding is wrong
    REJECTED = "rejected"  # this message's data refused (47001/47003): permanent for it
    LIMIT_REACHED = "limit_reached"  # daily quota: the channel is paused until `until`
    TEMPORARY = "temporary"  # try again later (`reason`); `maybe_sent` if it may have gone
    CONFIG_ERROR = "config_error"  # our account's settings: the channel is paused until `until`


@dataclass(frozen=True)
class WeChatResult:
    outcome: Outcome
    msgid: int | None = None
    errcode: int | None = None
    reason: str = ""
    until: dt.datetime | None = None  # LIMIT_REACHED and CONFIG_ERROR: the channel's pause
    maybe_sent: bool = False  # TEMPORARY after the request was written: WeChat may have sent it


# Answers to a send, by errcode (the token-rejected codes are handled before these).
TOKEN_REJECTED: Final = frozenset({40001, 40014, 42001})
SEND_OUTCOMES: Final[dict[int, Outcome]] = {
    43004: Outcome.NOT_FOLLOWING,
    40003: Outcome.BAD_OPENID,
    41009: Outcome.BAD_OPENID,
    45009: Outcome.LIMIT_REACHED,
    -1: Outcome.TEMPORARY,
    45011: Outcome.TEMPORARY,
    40036: Outcome.CONFIG_ERROR,
    40037: Outcome.CONFIG_ERROR,
    48001: Outcome.CONFIG_ERROR,
    47001: Outcome.REJECTED,
    47003: Outcome.REJECTED,
}
TOKEN_OUTCOMES: Final[dict[int, Outcome]] = {
    -1: Outcome.TEMPORARY,
    45009: Outcome.LIMIT_REACHED,
    45011: Outcome.TEMPORARY,
}


@dataclass(frozen=True)
class Reply:
    """A JSON object WeChat answered with; errcode 0 when it carries none (a token reply)."""

    errcode: int
    errmsg: str
    body: Mapping[str, Any]


def parse_reply(text: str) -> Reply | None:
    """The documented JSON reply, or None for anything else.

    >>> parse_reply('{"errcode":43004,"errmsg":"require subscribe"}').errcode
    43004
    >>> parse_reply('<html>502</html>') is None
    True
    """
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errcode = body.get("errcode", 0)
    if not isinstance(errcode, int) or isinstance(errcode, bool):
        return None
    return Reply(errcode, str(body.get("errmsg", "")), body)


def send_outcome(errcode: int) -> Outcome:
    """What a send's errcode means for the notice (unknown codes: try again later)."""
    if errcode == 0:
        return Outcome.SENT
    return SEND_OUTCOMES.get(errcode, Outcome.TEMPORARY)


def token_outcome(errcode: int) -> Outcome:
    """What a token call's errcode means: our credentials are wrong unless WeChat is busy."""
    return TOKEN_OUTCOMES.get(errcode, Outcome.CONFIG_ERROR)


def next_beijing_midnight(now: dt.datetime) -> dt.datetime:
    """The next 00:00 in Beijing (as UTC), when WeChat's daily quotas start again."""
    local = now.astimezone(BEIJING)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), BEIJING)
    return midnight.astimezone(dt.UTC)


def template_body(
    openid: str, template_id: str, data: Mapping[str, str], url: str | None, client_msg_id: str | None
) -> bytes:
    """The send's JSON as UTF-8, with no \\uXXXX escapes (errcode 40033)."""
    body: dict[str, Any] = {
        "touser": openid,
        "template_id": template_id,
        "data": {key: {"value": value} for key, value in data.items()},
    }
    if url:
        body["url"] = url
    if client_msg_id:
        body["client_msg_id"] = client_msg_id
    return json.dumps(body, ensure_ascii=False).encode()


@dataclass(frozen=True)
class _Pause:
    outcome: Outcome
    until: dt.datetime
    errcode: int | None
    reason: str


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WeChatTransport:
    """Template messages through one official account, with its token cache and its pause."""

    def __init__(self, settings: WeChatSettings, *, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        if not settings.enabled:
            raise SettingsError("the WeChat transport needs wechat.enabled = true (with app_id and app_secret)")
        self.settings = settings
        self.clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._refresh_at = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._token_lock = asyncio.Lock()
        self._fetches = 0  # token fetches finished: a waiter sees whether one ran meanwhile
        self._last_fetch_failure: WeChatResult | None = None
        self._pause: _Pause | None = None

    async def start(self) -> None:
        # The session must be made inside the running loop.
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s))

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    @property
    def paused_until(self) -> dt.datetime | None:
        """While LIMIT_REACHED or CONFIG_ERROR holds the channel: when it may be tried again."""
        if self._pause is not None and self.clock() < self._pause.until:
            return self._pause.until
        return None

    def resume(self) -> None:
        """Lift a pause now (an operator fixed the account)."""
        self._pause = None

    def template_for(self, category: str) -> str | None:
        """The template id configured for a notice category (None: WeChat cannot carry it)."""
        return self.settings.templates.get(category)

    async def send(
        self,
        openid: str,
        template_id: str,
        data: Mapping[str, str],
        url: str | None = None,
        *,
        client_msg_id: str | None = None,
    ) -> WeChatResult:
        """One template message to one resident; never raises for what WeChat or the
        network does (see the module's docstring for what each outcome means)."""
        paused = self._paused_result()
        if paused is not None:
            return paused
        if not openid:
            return WeChatResult(Outcome.BAD_OPENID, reason="no openid (the resident has not bound WeChat)")
        ref = client_msg_id or "-"
        body = template_body(openid, template_id, data, url, client_msg_id)
        token = await self._current_token(None)
        if isinstance(token, WeChatResult):
            return token
        answer = await self._post_send(token, body, openid, ref)
        if isinstance(answer, Reply) and answer.errcode in TOKEN_REJECTED:
            log.info("WeChat refused the access token (errcode %d) for %s: fetching another", answer.errcode, ref)
            fresh = await self._current_token(token)
            if isinstance(fresh, WeChatResult):
                return fresh
            answer = await self._post_send(fresh, body, openid, ref)
            if isinstance(answer, Reply) and answer.errcode in TOKEN_REJECTED:
                reason = f"errcode {answer.errcode} again with a fresh access token: {answer.errmsg}"
                log.warning("WeChat send %s to %s: %s", ref, mask_openid(openid), self._scrub(reason, openid))
                return WeChatResult(Outcome.TEMPORARY, errcode=answer.errcode, reason=reason)
        if isinstance(answer, WeChatResult):
            return answer
        return self._settle_send(answer, openid, ref)

    # The token ---------------------------------------------------------------------------

    async def _current_token(self, rejected: str | None) -> str | WeChatResult:
        """A valid token: the cached one unless it is due or was just `rejected`; else one
        fetch at a time, whose outcome every send that waited for it shares."""
        if self._usable(rejected):
            assert self._token is not None
            return self._token
        seen = self._fetches
        async with self._token_lock:
            if self._usable(rejected):
                assert self._token is not None
                return self._token
            if self._fetches != seen:  # a fetch ran while we waited: its outcome is ours too
                if self._last_fetch_failure is not None:
                    return self._last_fetch_failure  # no second try now
                if self._token is not None:
                    return self._token  # as fresh as WeChat gives, even if it is the one refused
            paused = self._paused_result()
            if paused is not None:
                return paused
            outcome = await self._fetch_token()
            self._fetches += 1
            self._last_fetch_failure = outcome if isinstance(outcome, WeChatResult) else None
            return outcome

    def _usable(self, rejected: str | None) -> bool:
        return self._token is not None and self._token != rejected and self.clock() < self._refresh_at

    async def _fetch_token(self) -> str | WeChatResult:
        s = self.settings
        payload = {"grant_type": "client_credential", "appid": s.app_id, "secret": s.app_secret, "force_refresh": False}
        answer = await self._call(TOKEN_PATH, None, json.dumps(payload).encode(), "", "token")
        if isinstance(answer, WeChatResult):
            return answer
        if answer.errcode != 0:
            outcome = token_outcome(answer.errcode)
            reason = f"access token refused, errcode {answer.errcode}: {answer.errmsg}"
            if outcome in (Outcome.LIMIT_REACHED, Outcome.CONFIG_ERROR):
                return self._pause_channel(outcome, answer.errcode, reason)
            log.warning("WeChat %s", self._scrub(reason, ""))
            return WeChatResult(outcome, errcode=answer.errcode, reason=reason)
        token, expires_in = answer.body.get("access_token"), answer.body.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            log.warning("WeChat token reply without access_token/expires_in (keys %s)", sorted(answer.body)[:10])
            return WeChatResult(Outcome.TEMPORARY, reason="token reply without access_token/expires_in")
        # Fetch again `token_margin_s` before the end, but never later than half-way: the
        # stable token may come with as little as 300 s left.
        margin = min(s.token_margin_s, expires_in / 2)
        self._token, self._refresh_at = token, self.clock() + dt.timedelta(seconds=expires_in - margin)
        log.info("WeChat access token fetched, valid %d s", expires_in)
        return token

    # Sending -----------------------------------------------------------------------------

    async def _post_send(self, token: str, body: bytes, openid: str, ref: str) -> Reply | WeChatResult:
        return await self._call(SEND_PATH, {"access_token": token}, body, openid, ref)

    def _settle_send(self, answer: Reply, openid: str, ref: str) -> WeChatResult:
        outcome = send_outcome(answer.errcode)
        who = mask_openid(openid)
        if outcome is Outcome.SENT:
            msgid = answer.body.get("msgid")
            if not isinstance(msgid, int):
                log.warning("WeChat accepted %s to %s without a msgid", ref, who)
                msgid = None
            log.debug("WeChat sent %s to %s: msgid %s", ref, who, msgid)
            return WeChatResult(Outcome.SENT, msgid=msgid, errcode=0)
        reason = f"errcode {answer.errcode}: {self._scrub(answer.errmsg, openid)}"
        if outcome in (Outcome.LIMIT_REACHED, Outcome.CONFIG_ERROR):
            return self._pause_channel(outcome, answer.errcode, reason)
        if outcome is Outcome.TEMPORARY:
            log.warning("WeChat send %s to %s failed for now, %s", ref, who, reason)
        else:
            log.info("WeChat send %s to %s: %s, %s", ref, who, outcome.value, reason)
        return WeChatResult(outcome, errcode=answer.errcode, reason=reason)

    # The pause ---------------------------------------------------------------------------

    def _paused_result(self) -> WeChatResult | None:
        until = self.paused_until
        if until is None or self._pause is None:
            return None
        p = self._pause
        return WeChatResult(p.outcome, errcode=p.errcode, reason=f"channel paused: {p.reason}", until=until)

    def _pause_channel(self, outcome: Outcome, errcode: int | None, reason: str) -> WeChatResult:
        """Pause every send (logged once per pause, however many sends hit it at once)."""
        reason = self._scrub(reason, "")
        current = self.paused_until
        if current is not None and self._pause is not None and self._pause.outcome is outcome:
            return WeChatResult(outcome, errcode=errcode, reason=reason, until=current)
        now = self.clock()
        if outcome is Outcome.LIMIT_REACHED:
            until = next_beijing_midnight(now)
            log.warning("WeChat daily limit reached (%s): WeChat notices paused until %s", reason, until.isoformat())
        else:
            until = now + dt.timedelta(seconds=self.settings.config_error_pause_s)
            log.error(
                "WeChat says our configuration is wrong (%s): check wechat.app_id, app_secret and templates; "
                "WeChat notices paused until %s",
                reason,
                until.isoformat(),
            )
        self._pause = _Pause(outcome, until, errcode, reason)
        return WeChatResult(outcome, errcode=errcode, reason=reason, until=until)

    # HTTP --------------------------------------------------------------------------------

    async def _call(
        self, path: str, params: dict[str, str] | None, body: bytes, openid: str, ref: str
    ) -> Reply | WeChatResult:
        """POST JSON and read the reply; what the network or a stranger's answer does
        becomes TEMPORARY here, so nothing of aiohttp reaches the caller."""
        assert self._http is not None, "start() first"
        url = self.settings.api_base + path
        headers = {"Content-Type": "application/json; charset=utf-8"}
        try:
            async with self._http.post(url, params=params, data=body, headers=headers) as response:
                status = response.status
                text = await response.text(errors="replace")
        except aiohttp.ClientConnectorError as exc:  # never reached WeChat: nothing sent
            reason = f"WeChat unreachable: {type(exc).__name__}"
            log.warning("%s (%s %s)", reason, path, ref)
            return WeChatResult(Outcome.TEMPORARY, reason=reason)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"WeChat did not answer: {type(exc).__name__} {self._scrub(str(exc), openid)}".rstrip()
            log.warning("%s (%s %s)", reason, path, ref)
            return WeChatResult(Outcome.TEMPORARY, reason=reason, maybe_sent=path == SEND_PATH)
        reply = parse_reply(text) if status == 200 else None
        if reply is None:
            reason = f"WeChat answered HTTP {status} with no JSON reply"
            log.warning("%s (%s %s): %s", reason, path, ref, self._excerpt(text, openid))
            # A 200 that is not WeChat's JSON, or a proxy's 5xx, may hide a message that went.
            maybe_sent = path == SEND_PATH and (status == 200 or status >= 500)
            return WeChatResult(Outcome.TEMPORARY, reason=reason, maybe_sent=maybe_sent)
        return reply

    def _scrub(self, text: str, openid: str) -> str:
        """Text from outside with the token, the secret and the openid taken out, and long
        digit runs masked."""
        for secret in (self._token, self.settings.app_secret):
            if secret:
                text = text.replace(secret, "***")
        if openid:
            text = text.replace(openid, mask_openid(openid))
        return mask_numbers(text)

    def _excerpt(self, text: str, openid: str = "") -> str:
        return self._scrub(text, openid)[:EXCERPT]  # scrubbed first: no token cut in half survives
