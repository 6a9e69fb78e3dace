"""The knowledge base in the console: the desk's search panel for agents (search, read,
"used on this call"), and the editors' pages for supervisors and admins (create, edit,
each save a new version, publish, retire, history). Casework's errors become the
console's here, where they enter it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp import web

from cases import kb
from cases.errors import ArticleNotFound, BadArticle, BadQuery, EditConflict, NotAgentsCall
from console.errors import BadRequest, NotAllowed
from console.i18n import local_time
from console.markdown import to_html
from console.request import deps, render, require_role

READERS = ("agent", "supervisor", "admin")
EDITORS = ("supervisor", "admin")


def _today(request: web.Request) -> Any:
    return kb.today_in(deps(request).settings.queue.timezone)


def _article_id(request: web.Request) -> int:
    raw = request.match_info["article_id"]
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(f"no article {raw[:20]!r}")
    return int(raw)


def _hit(h: kb.Hit) -> dict[str, Any]:
    a = h.article
    return {
        "id": a.id,
        "title": a.title,
        "category": a.category,
        "tags": list(a.tags),
        "effective_date": a.effective_date.isoformat(),
        "status": a.status,
        "sample": a.sample,
        "snippet": [[piece, hit] for piece, hit in h.snippet],
    }


async def _search(request: web.Request, *, editors: bool) -> list[kb.Hit]:
    text = request.query.get("q", "")
    try:
        return await asyncio.to_thread(
            kb.search,
            deps(request).store,
            text,
            20,
            editors,
            include_future=editors,
            today=_today(request),
        )
    except BadQuery as exc:
        raise BadRequest(str(exc)) from exc


async def api_search(request: web.Request) -> web.StreamResponse:
    """Agents (and editors, on the desk's terms): published articles in effect."""
    require_role(request, *READERS)
    return web.json_response({"results": [_hit(h) for h in await _search(request, editors=False)]})


async def api_article(request: web.Request) -> web.StreamResponse:
    u = require_role(request, *READERS)
    d, article_id = deps(request), _article_id(request)
    try:
        a = await asyncio.to_thread(kb.get, d.store, article_id, today=_today(request))
    except ArticleNotFound as exc:
        return web.json_response({"error": str(exc)}, status=404)
    used = False
    if u.agent_id:
        call_id = await asyncio.to_thread(kb.agents_call, d.store, u.agent_id)
        used = call_id is not None and article_id in await asyncio.to_thread(kb.uses_on_call, d.store, call_id)
    return web.json_response(
        {
            "id": a.id,
            "title": a.title,
            "category": a.category,
            "tags": list(a.tags),
            "effective_date": a.effective_date.isoformat(),
            "version": a.version,
            "sample": a.sample,
            "html": str(to_html(a.body)),
            "used": used,
        }
    )


async def api_used(request: web.Request) -> web.StreamResponse:
    """Mark the article used on the agent's call: the one named (it must be theirs), or
    their current or last call."""
    u = require_role(request, "agent")
    d, article_id = deps(request), _article_id(request)
    if not u.agent_id:
        raise BadRequest(f"account {u.username} has no agent id")
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError as exc:
        raise BadRequest("the request body is not JSON") from exc
    call_id = body.get("call_id") if isinstance(body, dict) else None
    if call_id is None:
        call_id = await asyncio.to_thread(kb.agents_call, d.store, u.agent_id)
    if not isinstance(call_id, str) or not call_id or len(call_id) > 64:
        raise BadRequest("no call to mark the article for")
    try:
        version = await asyncio.to_thread(kb.mark_used, d.store, call_id, article_id, u.agent_id, today=_today(request))
    except NotAgentsCall as exc:
        raise NotAllowed(str(exc)) from exc
    except ArticleNotFound as exc:
        return web.json_response({"error": str(exc)}, status=404)
    return web.json_response({"call_id": call_id, "article_id": article_id, "version": version})


# --- the editors' pages ------------------------------------------------------------------------


async def list_page(request: web.Request) -> web.StreamResponse:
    require_role(request, *EDITORS)
    q = request.query.get("q", "")
    hits = await _search(request, editors=True) if q.strip() else None
    articles = await asyncio.to_thread(kb.list_articles, deps(request).store)
    return render(request, "kb_list.html", q=q, hits=hits, articles=articles)


def _empty_form() -> dict[str, Any]:
    return {"title": "", "body": "", "category": "", "tags": "", "effective_date": "", "version": ""}


async def _form(request: web.Request) -> dict[str, str]:
    posted = await request.post()
    return {key: str(posted.get(key, "")) for key in _empty_form()}


def _fields(form: dict[str, str]) -> kb.ArticleFields:
    return kb.checked(form["title"], form["body"], form["category"], form["tags"], form["effective_date"])


async def new_page(request: web.Request) -> web.StreamResponse:
    require_role(request, *EDITORS)
    return render(request, "kb_article.html", article=None, form=_empty_form(), history=[], error=None, to_html=to_html)


async def create(request: web.Request) -> web.StreamResponse:
    u = require_role(request, *EDITORS)
    form = await _form(request)
    try:
        a = await asyncio.to_thread(kb.create, deps(request).store, _fields(form), u.username)
    except BadArticle as exc:
        return render(
            request, "kb_article.html", 400, article=None, form=form, history=[], error=str(exc), to_html=to_html
        )
    raise web.HTTPSeeOther(f"/kb/{a.id}")


async def _article_page(
    request: web.Request,
    article_id: int,
    form: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    store = deps(request).store
    try:
        a = await asyncio.to_thread(kb.get, store, article_id, include_drafts=True)
    except ArticleNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc
    history = await asyncio.to_thread(kb.versions, store, article_id)
    if form is None:
        form = {k: str(v) for k, v in dataclasses.asdict(a).items() if k in _empty_form()}
        form["tags"] = ",".join(a.tags)
    zone = deps(request).settings.queue.timezone
    return render(
        request,
        "kb_article.html",
        status,
        article=a,
        form=form,
        history=history,
        error=error,
        to_html=to_html,
        local_time=lambda at: local_time(at, zone),
    )


async def article_page(request: web.Request) -> web.StreamResponse:
    require_role(request, *EDITORS)
    return await _article_page(request, _article_id(request))


async def save(request: web.Request) -> web.StreamResponse:
    u = require_role(request, *EDITORS)
    article_id, form = _article_id(request), await _form(request)
    expected = int(form["version"]) if form["version"].isdigit() else None
    try:
        await asyncio.to_thread(
            kb.edit, deps(request).store, article_id, _fields(form), u.username, expected_version=expected
        )
    except BadArticle as exc:
        return await _article_page(request, article_id, form, str(exc), 400)
    except EditConflict as exc:
        return await _article_page(request, article_id, form, str(exc), 409)
    except ArticleNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc
    raise web.HTTPSeeOther(f"/kb/{article_id}")


async def change_status(request: web.Request) -> web.StreamResponse:
    u = require_role(request, *EDITORS)
    article_id, status = _article_id(request), str((await request.post()).get("status", ""))
    try:
        await asyncio.to_thread(kb.set_status, deps(request).store, article_id, status, u.username)
    except BadArticle as exc:
        raise BadRequest(str(exc)) from exc
    except ArticleNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc
    raise web.HTTPSeeOther(f"/kb/{article_id}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/kb/search", api_search)
    app.router.add_get("/api/kb/articles/{article_id}", api_article)
    app.router.add_post("/api/kb/articles/{article_id}/used", api_used)
    app.router.add_get("/kb", list_page)
    app.router.add_get("/kb/new", new_page)
    app.router.add_post("/kb/new", create)
    app.router.add_get("/kb/{article_id}", article_page)
    app.router.add_post("/kb/{article_id}", save)
    app.router.add_post("/kb/{article_id}/status", change_status)
