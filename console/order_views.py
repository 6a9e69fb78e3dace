"""Work orders (工单) in the console: a department's own orders, answered or sent back;
all orders for supervisors, overdue ones escalated (督办) first, reassigned or closed.

A department user asking for another department's order by id gets 404, as for an order
that does not exist: the answer must not tell them it exists. Opening an order is
audited by `cases.orders.get_order` (it shows the resident's data)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from cases import orders as cases_orders
from cases.errors import CasesError, OrderNotFound
from cases.exchange12345 import return_to_12345
from cases.followup import SATISFACTION, record_call_followup
from cases.outbox12345 import Outbound
from console.errors import BadRequest, NotAllowed, NotFound
from console.i18n import local_time, t
from console.request import actor, deps, lang, render, require_role, user
from core.calendar import deadline_text
from core.masking import mask_phone
from core.models import utcnow
from core.settings import CASE_CATEGORIES

SUPERVISORS = ("supervisor", "admin")
ROLES = (*SUPERVISORS, "department")
STATUSES = ("open", "overdue", "answered", "returned", "closed")  # cases.orders.orders_for


@dataclass(frozen=True)
class Category:
    key: str
    label: str


def categories(request: web.Request) -> list[Category]:
    return [Category(key, t("order.cat." + key, lang(request))) for key in CASE_CATEGORIES]


def _local(request: web.Request, value: dt.datetime | None) -> str:
    return local_time(value, deps(request).settings.queue.timezone) if value else ""


def _urgency(request: web.Request, order: cases_orders.Order, now: dt.datetime) -> str:
    """overdue, near (due within cases.near_deadline_hours) or "" (in time, or answered)."""
    if order.overdue(now):
        return "overdue"
    return "near" if order.near_deadline(now, deps(request).settings.cases.near_deadline_hours) else ""


def _row(request: web.Request, order: cases_orders.Order, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": order.id,
        "status": order.status,
        "escalated": order.escalated_at is not None and order.overdue(now),
        "category": order.category,
        "category_label": t("order.cat." + order.category, lang(request)),
        "department": order.department or t("order.unassigned", lang(request)),
        "summary": order.summary,
        "due": deadline_text(deps(request).settings.queue, order.due_at),
        "created": _local(request, order.created_at),
        "urgency": _urgency(request, order, now),
    }


def _order_id(request: web.Request) -> int:
    raw = request.match_info["order_id"]
    if not raw.isdigit() or len(raw) > 12:
        raise _not_found(request)
    return int(raw)


def _not_found(request: web.Request) -> NotFound:
    """The same page for an order that does not exist and for another department's."""
    return NotFound(t("order.not_found", lang(request)))


def _own_department(request: web.Request) -> str | None:
    """The department a department user is limited to; None for supervisors."""
    u = require_role(request, *ROLES)
    if u.role == "department":
        if not u.department:
            raise NotAllowed(f"department account {u.username} names no department")
        return u.department
    return None


PER_PAGE = 100  # orders on one page of /orders


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise BadRequest(f"page {raw[:12]!r}: a whole number from 1")
    return int(raw)


def _pager(filters: dict[str, str], found: cases_orders.OrderPage) -> dict[str, Any]:
    """Links to the previous and next page that keep the filters, and where this page is."""
    kept = {k: v for k, v in filters.items() if v}

    def link(page: int) -> str:
        return "/orders?" + urlencode(kept | {"page": str(page)})

    return {
        "page": found.page,
        "pages": found.pages,
        "total": found.total,
        "first": found.first,
        "last": found.first + len(found.orders) - 1 if found.orders else 0,
        "previous": link(found.page - 1) if found.has_previous else "",
        "next": link(found.page + 1) if found.has_next else "",
    }


async def orders_page(request: web.Request) -> web.StreamResponse:
    mine = _own_department(request)
    d, now, page = deps(request), utcnow(), _page_number(request)
    if mine is not None:  # a department: what waits for its answer, nothing else
        filters = {"status": "open", "department": mine, "category": ""}
    else:
        filters = {k: request.query.get(k, "") for k in ("status", "department", "category")}
        if filters["status"] not in ("", *STATUSES) or filters["category"] not in ("", *CASE_CATEGORIES):
            raise BadRequest("unknown status or category")
        if filters["department"] not in ("", *d.settings.cases.departments):
            known = ", ".join(d.settings.cases.departments)
            raise BadRequest(f"unknown department {filters['department'][:40]!r} (known: {known})")
    # Filtered, ordered (escalated 督办 first) and cut into pages in the database.
    found = await asyncio.to_thread(
        cases_orders.page_of_orders,
        d.store,
        status=filters["status"] or None,
        department=filters["department"] or None,
        category=filters["category"] or None,
        page=page,
        per_page=PER_PAGE,
        now=now,
    )
    return render(
        request,
        "orders.html",
        orders=[_row(request, o, now) for o in found.orders],
        pager=_pager({} if mine is not None else filters, found),
        supervising=mine is None,
        filters=filters,
        statuses=STATUSES,
        departments=d.settings.cases.departments,
        categories=categories(request),
    )


async def _get(request: web.Request) -> cases_orders.OrderDetail:
    """The order with its history, audited as a view of the resident's data; 404 for an
    order outside a department user's own department, as for one that does not exist."""
    mine, d = _own_department(request), deps(request)
    try:
        return await asyncio.to_thread(
            cases_orders.get_order, d.store, _order_id(request), actor=actor(request), department=mine
        )
    except OrderNotFound as exc:
        raise _not_found(request) from exc


def _history(request: web.Request, event: cases_orders.OrderEvent) -> dict[str, str]:
    language = lang(request)
    detail = {k: v for k, v in event.detail.items() if k in HISTORY_DETAIL and v not in (None, "")}
    if "reply_via" in detail:
        detail["reply_via"] = t("order.reply." + str(detail["reply_via"]), language)
    if "satisfaction" in detail:
        detail["satisfaction"] = t(f"order.satisfaction.{detail['satisfaction']}", language)
    if detail.get("via") == "call":
        detail["via"] = t("order.reply.callback", language)
    return {
        "at": _local(request, event.at),
        "actor": event.actor,
        "what": t("order.event." + event.action, language),
        "detail": " · ".join(str(v) for v in detail.values()),
    }


# What of an event's detail the history shows (not the due time in UTC, nor event keys).
HISTORY_DETAIL = (
    "department", "from", "counterpart", "order_no", "to", "reply_via", "answer", "reason", "note", "satisfaction",
    "via", "until",
)  # fmt: skip


async def order_page(request: web.Request) -> web.StreamResponse:
    mine = _own_department(request)
    detail = await _get(request)
    order, now = detail.order, utcnow()
    view = _row(request, order, now) | {
        "caller": mask_phone(order.caller_number) if order.caller_number else "",
        "resident": order.id_number_masked or "",
        "answer": order.answer or "",
        "history": [_history(request, e) for e in detail.events],
        # A voice message's recording: played from /voice-messages/<id>/audio (audited there).
        "voice_message_id": order.voice_message_id if detail.recording else None,
        "recording_s": detail.recording_s,
        "recording_deleted": _local(request, detail.recording_deleted_at),
        "recording_missing": (detail.recording_delete_reason or "").startswith("missing"),
        "followup": _followup(request, order),
        # Sent by 12345 (派单): its number there and which counterpart sent it.
        "from_12345": f"{detail.from_12345.order_no} · {detail.from_12345.counterpart}" if detail.from_12345 else "",
        "to_12345": [_told(request, m) for m in detail.to_12345],
    }
    return render(
        request,
        "order.html",
        order=view,
        can_answer=mine is not None and order.status in cases_orders.WAITING,
        can_return=mine is not None and order.status == "open",
        supervising=mine is None and order.status != "closed",
        can_reassign=mine is None and order.status in cases_orders.WAITING,
        # 退单: the hotline gives an order 12345 sent back to it (cases.exchange12345).
        can_return_12345=mine is None and detail.from_12345 is not None and order.status in cases_orders.WAITING,
        # A follow-up by phone (电话回访): the hotline's, on an answered order not followed up.
        can_follow_up=mine is None and order.status in ("answered", "closed") and order.followup_state != "answered",
        satisfactions=SATISFACTION,
        replies=cases_orders.REPLY_VIA,
        departments=deps(request).settings.cases.departments,
        answer_max=cases_orders.ANSWER_MAX,
        reason_max=cases_orders.REASON_MAX,
    )


def _told(request: web.Request, m: Outbound) -> dict[str, Any]:
    """One message to 12345 as the order's page lists it: kind, state, tries, last error."""
    language = lang(request)
    when = m.final_at if m.status in ("sent", "failed") else m.next_attempt_at
    return {
        "id": m.id,
        "kind": t("order.to_12345." + m.kind, language),
        "status": m.status,
        "state": t("order.to_12345." + m.status, language),
        "at": _local(request, when),
        "tries": m.attempts,
        "error": m.last_error or "",
    }


def _followup(request: web.Request, order: cases_orders.Order) -> str:
    if order.followup_state is None:
        return ""
    said = t("order.followup." + order.followup_state, lang(request))
    if order.satisfaction is not None:
        said += " · " + t(f"order.satisfaction.{order.satisfaction}", lang(request))
    return said


async def _field(request: web.Request, name: str) -> str:
    return str((await request.post()).get(name, ""))


async def _act(
    request: web.Request, action: Callable[..., object], *args: object, **kwargs: object
) -> web.StreamResponse:
    """Run one step of the order's machine; back to the order's page (a department that
    sent it back or answered it: back to its list)."""
    try:
        await asyncio.to_thread(action, *args, actor=actor(request), **kwargs)
    except OrderNotFound as exc:
        raise _not_found(request) from exc
    except CasesError as exc:  # a state that does not allow it, a field that does not fit
        raise BadRequest(str(exc)) from exc
    where = "/orders" if user(request).role == "department" else f"/orders/{_order_id(request)}"
    raise web.HTTPSeeOther(where)


async def answer(request: web.Request) -> web.StreamResponse:
    mine = _department_only(request)
    d, order_id = deps(request), _order_id(request)
    text, reply = await _field(request, "answer"), await _field(request, "reply")
    return await _act(
        request, cases_orders.answer_order, d.store, d.settings, order_id, answer=text, reply_via=reply, department=mine
    )


async def send_back(request: web.Request) -> web.StreamResponse:
    mine = _department_only(request)
    reason = await _field(request, "reason")
    return await _act(
        request, cases_orders.return_order, deps(request).store, _order_id(request), reason=reason, department=mine
    )


async def reassign(request: web.Request) -> web.StreamResponse:
    require_role(request, *SUPERVISORS)
    d, department = deps(request), await _field(request, "department")
    return await _act(
        request, cases_orders.reassign_order, d.store, d.settings, _order_id(request), department=department
    )


async def close(request: web.Request) -> web.StreamResponse:
    require_role(request, *SUPERVISORS)
    note = await _field(request, "note")
    return await _act(request, cases_orders.close_order, deps(request).store, _order_id(request), note=note)


async def return_12345(request: web.Request) -> web.StreamResponse:
    """退单 (supervisors): the order back to 12345 with the reason; closed here."""
    require_role(request, *SUPERVISORS)
    reason = await _field(request, "reason")
    return await _act(request, return_to_12345, deps(request).store, _order_id(request), reason=reason)


async def follow_up(request: web.Request) -> web.StreamResponse:
    require_role(request, *SUPERVISORS)
    given = await _field(request, "satisfaction")
    if given not in {str(x) for x in SATISFACTION}:
        raise BadRequest(f"satisfaction {given[:8]!r}: 1 satisfied, 2 fairly satisfied, 3 not satisfied")
    return await _act(request, record_call_followup, deps(request).store, _order_id(request), int(given))


def _department_only(request: web.Request) -> str:
    """Answering and sending back are the department's: its own orders only (404 otherwise)."""
    mine = _own_department(request)
    if mine is None:
        raise NotAllowed(f"{user(request).username} is not a department user")
    return mine


def add_routes(app: web.Application) -> None:
    app.router.add_get("/orders", orders_page)
    app.router.add_get("/orders/{order_id}", order_page)
    app.router.add_post("/orders/{order_id}/answer", answer)
    app.router.add_post("/orders/{order_id}/return", send_back)
    app.router.add_post("/orders/{order_id}/reassign", reassign)
    app.router.add_post("/orders/{order_id}/close", close)
    app.router.add_post("/orders/{order_id}/followup", follow_up)
    app.router.add_post("/orders/{order_id}/return-to-12345", return_12345)
