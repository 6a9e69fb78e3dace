"""The page the official account's menu opens: a resident binds their WeChat account to
their ID number (sms/wechat_binding.py does the work), or unbinds it.

Public (no console sign-in). `GET /wechat/bind` without a session sends the browser to
WeChat's web authorisation (snsapi_base) with a fresh `state`; WeChat comes back to the same
address with `?code=&state=`; the code is exchanged for the openid, which goes into the
page's session cookie (console/wechat_session.py), and the browser is sent on to the bare
address, so neither the code nor the openid stays in the address bar or the history.
Then: the ID number (POST /wechat/bind/id), the code from the SMS (POST /wechat/bind/code),
bound; or POST /wechat/unbind. Every answer is a page in Mandarin saying what to do next.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import aiohttp
from aiohttp import web

from console import wechat_session as session
from console.request import deps, render
from core.masking import mask_id
from sms.errors import (
    BadIdNumber,
    CodesForAllSpent,
    NoCodePending,
    TooManyCodes,
    WeChatOAuthRefused,
    WeChatUnreachable,
    WrongCode,
)
from sms.wechat_binding import Binder
from sms.wechat_oauth import MAX_STATE, authorize_url, openid_for

log = logging.getLogger(__name__)
PATH: Final = "/wechat/bind"
HTTP = web.AppKey("wechat_http", aiohttp.ClientSession)

SAY: Final = {
    "bad_id": "身份证号码有误，请核对后重新输入（18位，最后一位可能是X）。",
    "too_many": "获取验证码的次数太多了，请一小时后再试。",
    "too_many_all": "现在获取验证码的人太多，请稍后再试，或拨打12333。",
    "no_code": "验证码已失效（超过有效时间或输错次数过多），请重新获取验证码。",
    "wrong_code": "验证码不正确，还可以再试{left}次。",
    # The same words whether the number has a registered phone or not (sms/wechat_binding.py).
    "sent": "如果这个身份证号码登记了手机，验证码已发送到登记的手机，{minutes}分钟内有效。"
    "没有收到：请核对身份证号码，或带上身份证到社保经办窗口登记手机号码，或拨打12333。",
    "expired": "页面已过期，请从公众号菜单重新打开本页。",
    "oauth_refused": "微信授权已失效，请从公众号菜单重新打开本页。",
    "unreachable": "暂时无法连接微信，请稍后再试。",
    "unbound": "已解除绑定，社保通知不再通过本公众号发送。",
}


def binder(request: web.Request) -> Binder:
    d = deps(request)
    return Binder(d.store, d.port, d.settings.wechat, d.settings.security.pin_pepper)


def _enabled(request: web.Request) -> None:
    if not deps(request).settings.wechat.enabled:
        raise web.HTTPNotFound(text="WeChat binding is not configured (wechat.enabled)")


def _page(request: web.Request, step: str, status: int = 200, **context: Any) -> web.Response:
    values: dict[str, Any] = {"message": "", "notice": "", "bound": "", "form_token": session.form_token(request)}
    values.update(context)
    return render(request, "wechat_bind.html", status=status, step=step, **values)


def _redirect_uri(request: web.Request) -> str:
    return deps(request).settings.wechat.bind_url or str(request.url.with_query(None))


async def bind_page(request: web.Request) -> web.StreamResponse:
    _enabled(request)
    if "code" in request.query:
        return await _came_back(request)
    openid = session.openid(request)
    if openid is None:  # to WeChat's web authorisation, which returns here with a code
        response = web.HTTPSeeOther("/")
        state = session.new_state(response, request)
        response.headers["Location"] = authorize_url(deps(request).settings.wechat, _redirect_uri(request), state)
        raise response
    return await _current(request, openid)


async def _came_back(request: web.Request) -> web.StreamResponse:
    code, state = request.query.get("code", ""), request.query.get("state", "")
    if not (code and len(code) <= 128 and len(state) <= MAX_STATE and session.state_ok(request, state)):
        log.warning("wechat bind: a return from WeChat with a missing or foreign state, from %s", request.remote)
        return _page(request, "gone", status=400, message=SAY["expired"])
    try:
        openid = await openid_for(request.app[HTTP], deps(request).settings.wechat, code)
    except WeChatOAuthRefused:
        return _page(request, "gone", status=400, message=SAY["oauth_refused"])
    except WeChatUnreachable:
        return _page(request, "gone", status=503, message=SAY["unreachable"])
    response = web.HTTPSeeOther(PATH)
    session.start(response, request, openid)
    session.drop_state(response)
    raise response


async def _current(request: web.Request, openid: str, status: int = 200, **context: Any) -> web.Response:
    """The page for where this account is: bound, waiting for a code, or to start."""
    work = binder(request)
    bound = await asyncio.to_thread(work.bound_to, openid)
    if bound is not None:
        return _page(request, "bound", status=status, bound=mask_id(bound), **context)
    waiting = await asyncio.to_thread(work.waiting, openid)
    return _page(request, "code" if waiting else "id", status=status, **context)


async def _form(request: web.Request) -> tuple[str, dict[str, str]] | web.Response:
    """The session's openid and the posted fields, or the page that says to start again."""
    _enabled(request)
    form = await request.post()
    fields = {key: str(value)[:64] for key, value in form.items()}
    openid = session.openid(request)
    if openid is None or not session.form_token_ok(request, fields.get("token", "")):
        return _page(request, "gone", status=403, message=SAY["expired"])
    return openid, fields


async def submit_id(request: web.Request) -> web.StreamResponse:
    got = await _form(request)
    if isinstance(got, web.Response):
        return got
    openid, fields = got
    work = binder(request)
    try:
        await asyncio.to_thread(work.request_code, openid, fields.get("id_number", ""))
    except BadIdNumber:
        return await _current(request, openid, status=400, message=SAY["bad_id"])
    except CodesForAllSpent:
        return await _current(request, openid, status=429, message=SAY["too_many_all"])
    except TooManyCodes:
        return await _current(request, openid, status=429, message=SAY["too_many"])
    minutes = deps(request).settings.wechat.bind_code_minutes
    return _page(request, "code", notice=SAY["sent"].format(minutes=minutes))


async def submit_code(request: web.Request) -> web.StreamResponse:
    got = await _form(request)
    if isinstance(got, web.Response):
        return got
    openid, fields = got
    try:
        subject = await asyncio.to_thread(binder(request).confirm, openid, fields.get("code", ""))
    except WrongCode as exc:
        if exc.tries_left > 0:
            return _page(request, "code", status=400, message=SAY["wrong_code"].format(left=exc.tries_left))
        return await _current(request, openid, status=400, message=SAY["no_code"])
    except NoCodePending:
        return await _current(request, openid, status=400, message=SAY["no_code"])
    return _page(request, "bound", bound=mask_id(subject), notice="绑定成功。")


async def unbind(request: web.Request) -> web.StreamResponse:
    got = await _form(request)
    if isinstance(got, web.Response):
        return got
    openid, _ = got
    await asyncio.to_thread(binder(request).unbind, openid, "the resident unbound it")
    return _page(request, "id", notice=SAY["unbound"])


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, bind_page)
    app.router.add_post(PATH + "/id", submit_id)
    app.router.add_post(PATH + "/code", submit_code)
    app.router.add_post("/wechat/unbind", unbind)

    async def open_http(app: web.Application) -> None:
        app[HTTP] = aiohttp.ClientSession()

    async def close_http(app: web.Application) -> None:
        await app[HTTP].close()

    app.on_startup.append(open_http)
    app.on_cleanup.append(close_http)
