"""`hotline orders ...`: work orders from the command line (cases/orders.py), for a county
IT team and for scripts: list, show (audited as cli:<user>), answer, return, assign, close,
and one round of the casework `hotline serve` runs (escalate, voice messages, follow-ups)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from cases import exchange12345, orders
from cases.events import check_department
from cases.followup import SATISFACTION, record_call_followup
from cases.orders import Order, OrderDetail
from cases.outbox12345 import Outbound
from cases.tasks import escalate_overdue, run_once
from core.calendar import deadline_text
from core.masking import mask_phone
from core.settings import CASE_CATEGORIES, Settings

STATUSES = ("open", "overdue", "answered", "returned", "closed", "all")


def add_parser(sub: Any, handler: Any) -> None:
    s = sub.add_parser(
        "orders", help="work orders (工单): list, show, answer, return, assign, close, follow up, escalate"
    )
    act = s.add_subparsers(dest="orders_action", required=True)
    ls = act.add_parser(
        "list", help="orders: escalated first, then waiting ones soonest due first, all and closed ones newest first"
    )
    ls.add_argument("--status", choices=STATUSES, default="all", help="open: waiting for an answer (default all)")
    ls.add_argument("--department", help="one department's orders (one of cases.departments)")
    ls.add_argument("--category", choices=CASE_CATEGORIES, help="one category's orders")
    ls.add_argument("--limit", type=_positive, default=500, help="orders per page (default 500)")
    ls.add_argument("--page", type=_positive, default=1, help="which page of --limit orders (default 1)")
    ls.add_argument("--all", action="store_true", help="every order, however many (no pages)")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    show = act.add_parser("show", help="one order: its fields, history, due date, recording")
    show.add_argument("id", type=int)
    show.add_argument("--format", choices=("text", "json"), default="text")
    new = act.add_parser("create", help="a new order (as an agent's wrap-up makes one)")
    new.add_argument("--category", choices=CASE_CATEGORIES, required=True)
    new.add_argument("--summary", required=True)
    new.add_argument("--department")
    new.add_argument("--number", help="the caller's number, to reply to")
    new.add_argument("--call-id")
    ans = act.add_parser("answer", help="record the answer and send it (SMS, a callback, or none)")
    ans.add_argument("id", type=int)
    ans.add_argument("--text", required=True)
    ans.add_argument("--reply", choices=orders.REPLY_VIA, required=True)
    ret = act.add_parser("return", help="send an order back to the hotline, with the reason")
    ret.add_argument("id", type=int)
    ret.add_argument("--reason", required=True)
    asg = act.add_parser("assign", help="hand a waiting order to a department")
    asg.add_argument("id", type=int)
    asg.add_argument("--department", required=True)
    close = act.add_parser("close", help="close an answered order (or a waiting one, with --note saying why)")
    close.add_argument("id", type=int)
    close.add_argument("--note", default="")
    fup = act.add_parser("followup", help="record a follow-up by telephone (电话回访): the resident's satisfaction")
    fup.add_argument("id", type=int)
    fup.add_argument(
        "--satisfaction", type=int, choices=SATISFACTION, required=True, help="1 satisfied, 2 fairly, 3 not"
    )
    _add_12345(act)
    act.add_parser("escalate", help="escalate the overdue orders now (once each)")
    act.add_parser("run", help="one round of casework: voice messages, escalation, follow-ups")
    changes = ("escalate", "run", "return-to-12345", "extend-12345", "extended", "forward-to-12345", "resend-12345")
    for p in (new, ans, ret, asg, close, fup, *(act.choices[name] for name in changes)):
        p.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=handler)


def _add_12345(act: Any) -> None:
    """The hotline's moves toward 12345 (cases/exchange12345.py), each told to 12345 by the outbox."""
    ret = act.add_parser("return-to-12345", help="退单: give an order from 12345 back to it, with the reason")
    ret.add_argument("id", type=int)
    ret.add_argument("--reason", required=True)
    ext = act.add_parser(
        "extend-12345", help="延期: ask 12345 for more time (the order keeps 12345's deadline until it agrees)"
    )
    ext.add_argument("id", type=int)
    ext.add_argument("--until", type=_when, required=True, help="the new deadline: 2026-12-18T17:30:00+08:00")
    ext.add_argument("--reason", required=True)
    agreed = act.add_parser("extended", help="12345 agreed to more time: the order is due --until from now on")
    agreed.add_argument("id", type=int)
    agreed.add_argument("--until", type=_when, required=True, help="the deadline 12345 agreed to")
    agreed.add_argument("--note", default="")
    fwd = act.add_parser("forward-to-12345", help="转办: send one of our orders that is not our business to 12345")
    fwd.add_argument("id", type=int)
    fwd.add_argument("--counterpart", required=True, help="one of hotline12345.counterparts")
    fwd.add_argument("--reason", required=True)
    again = act.add_parser("resend-12345", help="send a dead letter to 12345 again (after fixing its cause)")
    again.add_argument("message_id", type=int, help="the message's number in `orders show`'s `to 12345:`")


def _when(raw: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an ISO 8601 date and time") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{raw!r} has no zone: add one (+08:00)")
    return when


def run(settings: Settings, args: argparse.Namespace, actor: str) -> int:
    from hotline.wiring import open_store

    store = open_store(settings)
    try:
        return _run(settings, store, args, actor)
    finally:
        store.dispose()


def _run(settings: Settings, store: Any, args: argparse.Namespace, actor: str) -> int:
    action = args.orders_action
    if action == "list":
        if args.department is not None:  # a typo would list nothing, as if all were done
            check_department(settings.cases.departments, args.department)
        _list(settings, store, args)
        return 0
    if action == "show":
        detail = orders.get_order(store, args.id, actor=actor)
        _out(args, _with_path(settings, detail), lambda: detail_text(settings, detail))
        return 0
    if action in ("escalate", "run"):
        if action == "escalate":
            done = {"escalated": escalate_overdue(store, settings)}
        else:
            report = run_once(store, settings)
            done = {k: getattr(report, k) for k in ("voice_orders", "escalated", "followups", "replies")}
        shown = {k: [x.as_json() for x in v] for k, v in done.items()}
        _out(args, shown, lambda: "\n".join(f"{k}: {', '.join(str(x.id) for x in v) or '-'}" for k, v in done.items()))
        return 0
    if action == "resend-12345":
        m = exchange12345.resend(store, args.message_id, actor=actor)
        _out(args, m.as_json(), lambda: f"message {m.id} ({m.kind}) to 12345 is pending again, due now")
        return 0
    order = _change(settings, store, args, actor)
    _out(args, order.as_json(), lambda: as_text(settings, [order]))
    return 0


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number from 1")
    return int(raw)


def _list(settings: Settings, store: Any, args: argparse.Namespace) -> None:
    """One page of the list (or all of it); when the page is not the whole list, text says
    which part it shows, and JSON (a list, as before) says so on stderr."""
    where = {"status": args.status, "department": args.department, "category": args.category}
    total = orders.count_orders(store, **where)
    per_page = max(total, 1) if args.all else args.limit
    listed = orders.orders_for(store, **where, limit=per_page, offset=0 if args.all else (args.page - 1) * per_page)
    # A list is not audited view by view (`show` is): numbers masked, as in the text form.
    masked = [x.as_json() | {"caller_number": mask_phone(x.caller_number)} for x in listed]
    _out(args, masked, lambda: as_text(settings, listed))
    if len(listed) < total:
        first = (args.page - 1) * per_page + 1
        said = f"showing {first}-{first + len(listed) - 1} of {total} orders" if listed else f"none of {total} orders"
        said += f" (page {args.page}; --page N or --all for the others)"
        print(said, file=sys.stderr if args.format == "json" else sys.stdout)


def _change(settings: Settings, store: Any, args: argparse.Namespace, actor: str) -> Order:
    action = args.orders_action
    if action == "create":
        return orders.create_order(
            store,
            settings,
            kind="call",
            category=args.category,
            summary=args.summary,
            created_by=actor,
            department=args.department,
            caller_number=args.number,
            call_id=args.call_id,
        )
    if action == "answer":
        return orders.answer_order(store, settings, args.id, actor=actor, answer=args.text, reply_via=args.reply)
    if action == "return":
        return orders.return_order(store, args.id, actor=actor, reason=args.reason)
    if action == "assign":
        return orders.reassign_order(store, settings, args.id, actor=actor, department=args.department)
    if action == "return-to-12345":
        return exchange12345.return_to_12345(store, args.id, actor=actor, reason=args.reason)
    if action == "extend-12345":
        return exchange12345.ask_extension(store, args.id, actor=actor, until=args.until, reason=args.reason)
    if action == "extended":
        return exchange12345.grant_extension(store, args.id, actor=actor, until=args.until, note=args.note)
    if action == "forward-to-12345":
        return exchange12345.forward_to_12345(
            store, settings, args.id, actor=actor, counterpart=args.counterpart, reason=args.reason
        )
    if action == "followup":
        return record_call_followup(store, args.id, args.satisfaction, actor=actor)
    return orders.close_order(store, args.id, actor=actor, note=args.note)


def _out(args: argparse.Namespace, data: Any, text: Any) -> None:
    if args.format == "json":
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(text())


def _with_path(settings: Settings, detail: OrderDetail) -> dict[str, Any]:
    data = detail.as_json()
    kept = detail.recording if detail.recording_deleted_at is None else None
    data["recording_path"] = str(settings.recordings.dir / kept) if kept else None
    return data


def _local(settings: Settings, at: dt.datetime | None) -> str:
    if at is None:
        return "-"
    from core.calendar import local_now

    return local_now(settings.queue, at).strftime("%Y-%m-%d %H:%M")


def _flag(settings: Settings, order: Order, now: dt.datetime) -> str:
    if order.overdue(now):
        return "OVERDUE" + (" (escalated)" if order.escalated_at else "")
    if order.near_deadline(now, settings.cases.near_deadline_hours):
        return "due soon"
    return ""


def as_text(settings: Settings, listed: list[Order]) -> str:
    if not listed:
        return "no work orders"
    now = dt.datetime.now(dt.UTC)
    lines = [f"{'id':>6}  {'status':<9} {'category':<16} {'department':<10} {'due':<16}  {'caller':<13} summary"]
    for x in listed:
        summary = x.summary if len(x.summary) <= 30 else x.summary[:29] + "…"
        flag = _flag(settings, x, now)
        lines.append(
            f"{x.id:>6}  {x.status:<9} {x.category:<16} {x.department or '(hotline)':<10} "
            f"{deadline_text(settings.queue, x.due_at):<16}  {mask_phone(x.caller_number):<13} {summary}"
            + (f"  [{flag}]" if flag else "")
        )
    return "\n".join(lines)


def _told(settings: Settings, m: Outbound) -> str:
    """One message to 12345: its kind and state, with tries and the last reason when not sent."""
    if m.status == "sent" and m.final_at is not None:
        state = f"sent {_local(settings, m.final_at)}"
    elif m.status == "failed":
        state = f"failed (dead letter) after {m.attempts} tries: {m.last_error}"
    else:
        state = f"{m.status}, {m.attempts} tries, next {_local(settings, m.next_attempt_at)}"
        state += f" (last: {m.last_error})" if m.last_error else ""
    return f"  {m.kind:<9} message {m.id:<5} event {m.event_id:<6} {state}"


def detail_text(settings: Settings, detail: OrderDetail) -> str:
    x, now = detail.order, dt.datetime.now(dt.UTC)
    rows = [
        ("order", f"{x.id} ({x.kind}, {x.category})"),
        ("status", x.status + (f" [{_flag(settings, x, now)}]" if _flag(settings, x, now) else "")),
        ("department", x.department or "(at the hotline, to assign)"),
        ("created", f"{_local(settings, x.created_at)} by {x.created_by}"),
        ("due", deadline_text(settings.queue, x.due_at)),
        ("caller", mask_phone(x.caller_number)),
        ("id number", x.id_number_masked or "-"),
        ("call", x.call_id or "-"),
        ("summary", x.summary),
    ]
    if detail.from_12345 is not None:
        rows.insert(1, ("12345", f"{detail.from_12345.order_no} from {detail.from_12345.counterpart}"))
    if detail.recording and detail.recording_deleted_at is not None:
        when = _local(settings, detail.recording_deleted_at)
        rows.append(("recording", f"deleted on {when} ({detail.recording_delete_reason})"))
    elif detail.recording:
        rows.append(("recording", f"{settings.recordings.dir / detail.recording} ({detail.recording_s} s)"))
    if x.answered_at:
        rows.append(
            ("answer", f"{x.answer} (by {x.answered_by}, {_local(settings, x.answered_at)}, via {x.reply_via})")
        )
    if x.followup_state:
        rows.append(
            ("follow-up", f"{x.followup_state}" + (f", satisfaction {x.satisfaction}" if x.satisfaction else ""))
        )
    lines = [f"{k:<11} {v}" for k, v in rows]
    if detail.from_12345 is not None or detail.to_12345:
        told = [_told(settings, m) for m in detail.to_12345]
        lines += ["to 12345:", *told] if told else ["to 12345:   (nothing)"]
    lines.append("history:")
    for e in detail.events:
        what = ", ".join(f"{k}={v}" for k, v in e.detail.items() if v not in (None, ""))
        lines.append(f"  {_local(settings, e.at)}  {e.actor:<20} {e.action:<15} {what}")
    return "\n".join(lines)
