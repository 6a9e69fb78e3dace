"""Work orders (工单) in the console: a department's own orders, answered or sent back;
all orders for supervisors, overdue ones escalated (督办) first, reassigned or closed.

A department user asking for another department's order by id gets 404, as for an order
that does not exist: the answer must not tell them it exists. Opening an order is
audited by `cases.orders.get_order` (it shows the resident's data)."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cases import orders as cases_orders
from cases.errors import CasesError
from console.errors import BadRequest, NotAllowed
from console.i18n import local_time
from console.request import deps, lang, render, require_role
from core.masking import mask_phone
from core.models import utcnow

SUPERVISORS = ("supervisor", "admin")
ROLES = (*SUPERVISORS, "department")
TEXT_MAX = 2000


@dataclass(frozen=True)
class Category:
    key: str
    label: str


def categories(request: web.Request) -> list[Category]:
    cases = deps(request).settings.cases
    return [Category(key, cases.category_label(key, lang(request))) for key in cases.categories]


def _local(request: web.Request, value: dt.datetime | None) -> str:
    return local_time(value, deps(request).settings.queue.timezone) if value else ""


def _urgency(request: web.Request, order: Any, now: dt.datetime) -> str:
    """overdue, near (within cases.near_deadline_hours of its due time) or "" (calm, or done)."""
    if order.status not in cases_orders.OPEN_STATUSES:
        return ""
    if order.due_at <= now:
        return "overdue"
    near = dt.timedelta(hours=deps(request).settings.cases.near_deadline_hours)
    return "near" if order.due_at - now <= near else ""


def _row(request: web.Request, order: Any, now: dt.datetime) -> dict[str, Any]:
    labels = {c.key: c.label for c in categories(request)}
    return {
        "id": order.id,
        "status": order.status,
        "escalated": order.escalated_at is not None,
        "category_label": labels.get(order.category, order.category),
        "department": order.department,
        "summary": order.summary,
        "due": _local(request, order.due_at),
        "created": _local(request, order.created_at),
        "urgency": _urgency(request, order, now),
    }


def _order_id(request: web.Request) -> int:
    raw = request.match_info["order_id"]
    if not raw.isdigit() or len(raw) > 12:
        raise web.HTTPNotFound(text="no such work order")
    return int(raw)


def _own_department(request: web.Request) -> str | None:
    """The department a department user is limited to; None for supervisors."""
    u = require_role(request, *ROLES)
    if u.role == "department":
        if not u.department:
            raise NotAllowed(f"department account {u.username} names no department")
        return u.department
    return None


async def orders_page(request: web.Request) -> web.StreamResponse:
    mine = _own_department(request)
    d, now = deps(request), utcnow()
    if mine is not None:
        found = await asyncio.to_thread(cases_orders.orders_for, d.store, department=mine, status="open")
        filters = {"status": "", "department": mine, "category": ""}
    else:
        filters = {k: request.query.get(k, "") for k in ("status", "department", "category")}
        found = await asyncio.to_thread(
            cases_orders.orders_for,
            d.store,
            department=filters["department"] or None,
            status=filters["status"] or None,
            category=filters["category"] or None,
        )
    rows = [_row(request, o, now) for o in found]
    # Escalated (督办) overdue orders first, then by due time.
    rows.sort(key=lambda r: (not (r["escalated"] and r["urgency"] == "overdue"), r["due"]))
    return render(
        request,
        "orders.html",
        orders=rows,
        supervising=mine is None,
        filters=filters,
        statuses=cases_orders.STATUSES,
        departments=d.settings.cases.departments,
        categories=categories(request),
    )


async def _get(request: web.Request) -> Any:
    """The order with its history, audited as a view of the resident's data; 404 for an
    order outside a department user's own department."""
    mine, u, d = _own_department(request), require_role(request, *ROLES), deps(request)
    try:
        return await asyncio.to_thread(
            cases_orders.get_order, d.store, _order_id(request), actor=f"console:{u.username}", department=mine
        )
    except cases_orders.OrderNotFound as exc:
        raise web.HTTPNotFound(text="no such work order") from exc


async def order_page(request: web.Request) -> web.StreamResponse:
    mine = _own_department(request)
    order = await _get(request)
    now = utcnow()
    view = _row(request, order, now) | {
        "caller": mask_phone(order.caller_number) if order.caller_number else "",
        "resident": order.id_number_masked or "",
        "answer": order.answer or "",
        "history": [
            {"at": _local(request, e.at), "actor": e.actor, "what": e.action, "detail": e.detail or ""}
            for e in order.history
        ],
    }
    return render(
        request,
        "order.html",
        order=view,
        can_answer=mine is not None and order.status in cases_orders.OPEN_STATUSES,
        supervising=mine is None and order.status != "closed",
        replies=cases_orders.REPLIES,
        departments=deps(request).settings.cases.departments,
        text_max=TEXT_MAX,
    )


async def _form_text(request: web.Request, name: str) -> str:
    value = str((await request.post()).get(name, "")).strip()
    if not value:
        raise BadRequest(f"{name} is empty")
    if len(value) > TEXT_MAX:
        raise BadRequest(f"{name} is longer than {TEXT_MAX} characters")
    return value


async def _act(request: web.Request, action: Any, *args: Any) -> web.StreamResponse:
    d, u = deps(request), require_role(request, *ROLES)
    try:
        await asyncio.to_thread(action, d.store, _order_id(request), *args, actor=f"console:{u.username}")
    except cases_orders.OrderNotFound as exc:
        raise web.HTTPNotFound(text="no such work order") from exc
    except CasesError as exc:
        raise BadRequest(str(exc)) from exc
    raise web.HTTPSeeOther(f"/orders/{_order_id(request)}")


async def answer(request: web.Request) -> web.StreamResponse:
    require_role(request, "department")
    await _get(request)  # 404 unless it is this department's
    text, reply = await _form_text(request, "answer"), str((await request.post()).get("reply", ""))
    if reply not in cases_orders.REPLIES:
        raise BadRequest(f"reply must be one of {', '.join(cases_orders.REPLIES)}")
    return await _act(request, cases_orders.answer_order, text, reply)


async def send_back(request: web.Request) -> web.StreamResponse:
    require_role(request, "department")
    await _get(request)
    return await _act(request, cases_orders.return_order, await _form_text(request, "reason"))


async def reassign(request: web.Request) -> web.StreamResponse:
    require_role(request, *SUPERVISORS)
    department = str((await request.post()).get("department", ""))
    if department not in deps(request).settings.cases.departments:
        raise BadRequest(f"no department {department!r}")
    return await _act(request, cases_orders.reassign_order, department)


async def close(request: web.Request) -> web.StreamResponse:
    require_role(request, *SUPERVISORS)
    return await _act(request, cases_orders.close_order)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/orders", orders_page)
    app.router.add_get("/orders/{order_id}", order_page)
    app.router.add_post("/orders/{order_id}/answer", answer)
    app.router.add_post("/orders/{order_id}/return", send_back)
    app.router.add_post("/orders/{order_id}/reassign", reassign)
    app.router.add_post("/orders/{order_id}/close", close)
