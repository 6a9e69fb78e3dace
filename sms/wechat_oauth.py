"""WeChat web authorisation (网页授权) with scope snsapi_base: who opened our page.

From WeChat's documentation for official accounts (网页授权, 微信网页开发):

1. The page sends the resident's WeChat client to
   `{oauth_base}/connect/oauth2/authorize?appid=APPID&redirect_uri=URL&response_type=code
   &scope=snsapi_base&state=STATE#wechat_redirect`; with snsapi_base WeChat asks nothing
   and returns at once to `URL?code=CODE&state=STATE` (state: up to 128 characters
   a-zA-Z0-9, given back unchanged). The code is good once, for 5 minutes.
2. The server exchanges it: `GET {api_base}/sns/oauth2/access_token?appid=APPID
   &secret=SECRET&code=CODE&grant_type=authorization_code` -> `{"access_token",
   "expires_in", "refresh_token", "openid", "scope"}`, or `{"errcode": 40029, "errmsg":
   "invalid code"}` (40163: code been used). That access token is the page's own (not the
   account's API token) and is not needed for snsapi_base: only the openid is kept.

The secret travels in that URL (the documented form): it never reaches a log here, and the
openid appears only masked.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import urlencode

import aiohttp

from core.masking import mask_openid
from core.settings import WeChatSettings
from sms.errors import WeChatOAuthRefused, WeChatUnreachable
from sms.wechat import parse_reply

log = logging.getLogger(__name__)
AUTHORIZE_PATH: Final = "/connect/oauth2/authorize"
EXCHANGE_PATH: Final = "/sns/oauth2/access_token"
SCOPE: Final = "snsapi_base"
MAX_STATE: Final = 128


def authorize_url(settings: WeChatSettings, redirect_uri: str, state: str) -> str:
    """Where to send the resident's browser so WeChat comes back with a code.

    >>> from core.settings import WeChatSettings as S
    >>> authorize_url(S(app_id="wx1"), "https://h/wechat/bind", "abc")
    'https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1&redirect_uri=https%3A%2F%2Fh%2Fwechat%2Fbind&response_type=code&scope=snsapi_base&state=abc#wechat_redirect'
    """
    if not state.isalnum() or len(state) > MAX_STATE:
        raise ValueError("state: up to 128 letters and digits")
    query = urlencode(
        {
            "appid": settings.app_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": SCOPE,
            "state": state,
        }
    )
    return f"{settings.oauth_base}{AUTHORIZE_PATH}?{query}#wechat_redirect"


async def openid_for(http: aiohttp.ClientSession, settings: WeChatSettings, code: str) -> str:
    """The openid of whoever WeChat gave `code` to; WeChatOAuthRefused when WeChat says no,
    WeChatUnreachable when it does not answer as documented."""
    params = {"appid": settings.app_id, "secret": settings.app_secret, "code": code, "grant_type": "authorization_code"}
    url = settings.api_base + EXCHANGE_PATH
    try:
        async with http.get(url, params=params, timeout=aiohttp.ClientTimeout(total=settings.timeout_s)) as response:
            status, text = response.status, await response.text(errors="replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("wechat oauth: the code exchange failed: %s", type(exc).__name__)
        raise WeChatUnreachable(f"WeChat did not answer the code exchange ({type(exc).__name__})") from None
    reply = parse_reply(text) if status == 200 else None
    if reply is None:
        log.warning("wechat oauth: the code exchange got HTTP %d with no JSON reply", status)
        raise WeChatUnreachable(f"WeChat answered the code exchange with HTTP {status} and no JSON")
    if reply.errcode != 0:
        log.info("wechat oauth: code refused, errcode %d", reply.errcode)
        raise WeChatOAuthRefused(reply.errcode, reply.errmsg)
    openid = reply.body.get("openid")
    if not isinstance(openid, str) or not 0 < len(openid) <= 64:
        log.warning("wechat oauth: the code exchange's reply carries no openid")
        raise WeChatUnreachable("WeChat's reply to the code exchange carries no openid")
    log.info("wechat oauth: code exchanged for %s", mask_openid(openid))
    return openid
