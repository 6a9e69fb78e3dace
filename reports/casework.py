"""The report's casework figures: work orders, on-time closure, handling time on the
working-day calendar, first-call resolution, voice messages, follow-up satisfaction.

Read from the tables `cases` writes (work_orders, voice_messages) and the call records,
with grouped queries; the definitions are in docs/reports.md ("Casework figures"). An order is
*decided* when it is answered, or closed without an answer (withdrawn, a duplicate): at
`answered_at`, else `closed_at` (cases/orders.py's states). Counts of orders are of the
orders created in the period, in the state they are in now; on-time closure and handling
time are of the orders decided in the period, whenever they were created.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import Connection, and_, case, func, or_, select
from sqlalchemy.orm import aliased

from core.calendar import working_days_between
from core.models import Call, Hotline12345Outbound, VoiceMessage, WorkOrder
from core.settings import CASE_CATEGORIES, QueueSettings
from reports import sums
from reports.period import Period

STATES: Final = ("open", "returned", "answered", "closed")  # cases.orders.STATES
WAITING: Final = ("open", "returned")  # for an answer (cases.orders.WAITING)
ASKED: Final = ("sent", "answered", "no_reply")  # follow-up states in which an SMS went out
CATEGORY_ORDER: Final = {name: i for i, name in enumerate(CASE_CATEGORIES)}  # as centres list them
SATISFIED: Final = (1, 2)  # as the IVR's post-call survey counts: satisfied, basically satisfied
KIND_12345: Final = "12345"  # work_orders.kind of the orders 12345 sent (cases.contract12345.KIND)
# The exchange with 12345: orders it sent (received in the period; answered in it, and of
# those answered by 12345's deadline), and what the hotline sent it in the period by kind of
# message (cases.outbox12345: 退单 `returned`, 延期 `extension`, 转办 `forwarded`).
EXCHANGE: Final = (
    "from_12345_received",
    "from_12345_answered",
    "from_12345_on_time",
    "to_12345_returned",
    "to_12345_extensions",
    "to_12345_forwarded",
)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _round(x: float, places: int) -> float:
    """Half up (1.125 -> 1.13), as the call figures round."""
    return float(Decimal(repr(x)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


@dataclass
class OrderCounts:
    """Orders created in the period by their state now; `overdue` are the waiting ones past
    due; `decided`/`on_time`/`working_days` are of orders decided in the period."""

    orders: int = 0
    states: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    overdue: int = 0
    decided: int = 0
    on_time: int = 0
    working_days: float = 0.0  # summed handling time of the decided ones

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            **self.states,
            "overdue": self.overdue,
            "decided": self.decided,
            "on_time": self.on_time,
            "on_time_rate": _ratio(self.on_time, self.decided),
            "avg_handling_working_days": _round(self.working_days / self.decided, 2) if self.decided else None,
        }


@dataclass
class Casework:
    total: OrderCounts
    by_category: dict[str, OrderCounts]
    by_department: dict[str | None, OrderCounts]  # None: at the hotline, not assigned
    fcr: dict[str, int]
    voice: dict[str, Any]
    followup: dict[str, int]
    exchange: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EXCHANGE, 0))

    def as_dict(self) -> dict[str, Any]:
        t = self.total.as_dict()
        fcr, voice, f, x = self.fcr, self.voice, self.followup, self.exchange
        return {
            "orders_created": t["orders"],
            "orders_by_state": {s: t[s] for s in STATES},
            "orders_overdue": t["overdue"],
            "orders_decided": t["decided"],
            "orders_on_time": t["on_time"],
            "on_time_rate": t["on_time_rate"],
            "avg_handling_working_days": t["avg_handling_working_days"],
            "fcr_calls": fcr["calls"],
            "fcr_resolved": fcr["resolved"],
            "fcr_with_order": fcr["with_order"],
            "fcr_repeated": fcr["repeated"],
            "fcr_no_number": fcr["no_number"],
            "first_call_resolution_rate": _ratio(fcr["resolved"], fcr["calls"]),
            "voice_messages_left": voice["left"],
            "voice_messages_answered": voice["answered"],
            "voice_answer_median_hours": voice["median_hours"],
            "voice_answer_p90_hours": voice["p90_hours"],
            "followups_asked": f["asked"],
            "followups_answered": f["answered"],
            "followups_satisfied": f["satisfied"],
            "followup_satisfaction_rate": _ratio(f["satisfied"], f["answered"]),
            **x,
            "from_12345_on_time_rate": _ratio(x["from_12345_on_time"], x["from_12345_answered"]),
            "by_category": [
                {"category": k, **self.by_category[k].as_dict()}
                for k in sorted(self.by_category, key=lambda k: (CATEGORY_ORDER.get(k, len(CATEGORY_ORDER)), k))
            ],
            # The busiest first, the hotline's own (not assigned) last.
            "by_department": [
                {"department": k, **v.as_dict()}
                for k, v in sorted(
                    self.by_department.items(),
                    key=lambda kv: (kv[0] is None, -kv[1].orders, -kv[1].decided, kv[0] or ""),
                )
            ],
        }


def build(c: Connection, period: Period, calendar: QueueSettings, now: dt.datetime) -> Casework:
    total = OrderCounts()
    by_category: dict[str, OrderCounts] = defaultdict(OrderCounts)
    by_department: dict[str | None, OrderCounts] = defaultdict(OrderCounts)
    _created(c, period, now, (total, by_category, by_department))
    _decided(c, period, calendar, (total, by_category, by_department))
    return Casework(
        total,
        dict(by_category),
        dict(by_department),
        _first_call_resolution(c, period),
        _voice_messages(c, period),
        _followups(c, period),
        _exchange_12345(c, period),
    )


Sinks = tuple[OrderCounts, dict[str, OrderCounts], dict[str | None, OrderCounts]]


def _created(c: Connection, period: Period, now: dt.datetime, sinks: Sinks) -> None:
    """Orders created in the period, counted by category, department, state now and
    whether they wait past due now, in one grouped query."""
    w = WorkOrder
    overdue = case((and_(w.status.in_(WAITING), w.due_at < now), 1), else_=0)
    groups = (w.category, w.department, w.status, overdue)
    rows = c.execute(
        select(*groups, func.count()).where(w.created_at >= period.start, w.created_at < period.end).group_by(*groups)
    )
    total, by_category, by_department = sinks
    for category, department, status, late, n in rows:
        for counts in (total, by_category[category], by_department[department]):
            counts.orders += n
            counts.states[status] = counts.states.get(status, 0) + n
            counts.overdue += n if late else 0


def _decided(c: Connection, period: Period, calendar: QueueSettings, sinks: Sinks) -> None:
    """Orders decided in the period: on time when decided at or before `due_at`; handling
    time from creation to the decision on the calendar. The calendar (holidays, adjusted
    working days) lives in the settings, not the database, so the handling time is counted
    here, one row per decided order, two timestamps each."""
    w = WorkOrder
    decided_at = func.coalesce(w.answered_at, w.closed_at)
    rows = c.execute(
        select(w.category, w.department, w.created_at, decided_at, w.due_at).where(
            decided_at >= period.start, decided_at < period.end
        )
    )
    total, by_category, by_department = sinks
    for category, department, created_at, at, due_at in rows:
        days = working_days_between(calendar, created_at, at)
        for counts in (total, by_category[category], by_department[department]):
            counts.decided += 1
            counts.on_time += 1 if at <= due_at else 0
            counts.working_days += days


def _first_call_resolution(c: Connection, period: Period) -> dict[str, int]:
    """Agent calls in the period: those with a caller number, how many led to a work order,
    how many were followed by another call from the number within 7 days, and how many
    neither. The counts with a number, repeated and without a number are the hourly sums
    (`reports.sums`, kind `fcr`: sealed once an hour's repeat window closed, the rest
    counted from the records); the orders are counted now, as one can be made from a call
    later: the period's agent calls that have an order, and of them the repeated ones (a
    probe each, but orders are few)."""
    counted = sums.read(c, "fcr", period.start, period.end, 0, by=())
    calls, repeated, no_number = (sum(int(r[k]) for r in counted) for k in ("calls", "repeated", "no_number"))
    first = aliased(Call)
    ordered = select(WorkOrder.call_id).where(WorkOrder.call_id.is_not(None)).distinct().subquery()
    again = case((sums.called_again(c, first), 1), else_=0)
    rows = c.execute(
        select(again, func.count())
        .select_from(ordered)
        .join(first, first.id == ordered.c.call_id)
        .where(*sums.agent_calls(first, period.start, period.end), sums.numbered(first))
        .group_by(again)
    )
    with_order = both = 0
    for called_again, n in rows:
        with_order += int(n)
        both += int(n) if called_again else 0
    return {
        "calls": calls,
        "resolved": calls - with_order - repeated + both,
        "with_order": with_order,
        "repeated": repeated,
        "no_number": no_number,
    }


def _hours(c: Connection, later: Any, earlier: Any) -> Any:
    if c.dialect.name == "postgresql":
        return func.extract("epoch", later - earlier) / 3600.0
    return (func.julianday(later) - func.julianday(earlier)) * 24.0


def _voice_messages(c: Connection, period: Period) -> dict[str, Any]:
    """Voice messages left in the period; those whose order is decided (now), and the
    median and 90th percentile of the hours from the message to the decision, by nearest
    rank (the smallest time within which at least half, or 90 %, were answered)."""
    v, w = VoiceMessage, WorkOrder
    in_period = (v.created_at >= period.start, v.created_at < period.end)
    left = int(c.execute(select(func.count()).select_from(v).where(*in_period)).scalar_one())
    hours = _hours(c, func.coalesce(w.answered_at, w.closed_at), v.created_at).label("hours")
    ranked = (
        select(
            hours,
            func.row_number().over(order_by=hours).label("rank"),
            func.count().over().label("n"),
        )
        .join(w, w.id == v.order_id)
        .where(*in_period, or_(w.answered_at.is_not(None), w.closed_at.is_not(None)))
        .subquery()
    )
    # Nearest rank: ceil(p * n) in integers, (p * n + 99) // 100 for p in percent.
    picked = c.execute(
        select(ranked.c.hours, ranked.c.rank, ranked.c.n).where(
            or_(ranked.c.rank == (ranked.c.n * 50 + 99) // 100, ranked.c.rank == (ranked.c.n * 90 + 99) // 100)
        )
    ).all()
    answered = int(picked[0].n) if picked else 0
    at = {int(r.rank): max(0.0, float(r.hours)) for r in picked}
    return {
        "left": left,
        "answered": answered,
        "median_hours": _round(at[(answered * 50 + 99) // 100], 1) if answered else None,
        "p90_hours": _round(at[(answered * 90 + 99) // 100], 1) if answered else None,
    }


def _followups(c: Connection, period: Period) -> dict[str, int]:
    """Follow-up SMS sent in the period (an order without a number to text was not asked),
    those the resident answered, and those answered 1 or 2."""
    w = WorkOrder
    row = c.execute(
        select(
            func.count(),
            func.count(w.satisfaction),
            func.coalesce(func.sum(case((w.satisfaction.in_(SATISFIED), 1), else_=0)), 0),
        ).where(w.followup_at >= period.start, w.followup_at < period.end, w.followup_state.in_(ASKED))
    ).one()
    asked, answered, satisfied = (int(x) for x in row)
    return {"asked": asked, "answered": answered, "satisfied": satisfied}


def _exchange_12345(c: Connection, period: Period) -> dict[str, int]:
    """Orders 12345 sent us (created in the period), those answered in the period and of them
    the ones answered by their deadline (12345's: `due_at` is the deadline it set, moved only
    when it agreed to more time), and the messages we wrote it in the period by kind. A
    message counts once whether or not 12345 has taken it yet (it is never lost)."""
    w, m = WorkOrder, Hotline12345Outbound
    from_12345 = w.kind == KIND_12345
    received = c.execute(
        select(func.count()).where(from_12345, w.created_at >= period.start, w.created_at < period.end)
    ).scalar_one()
    answered, on_time = c.execute(
        select(func.count(), func.coalesce(func.sum(case((w.answered_at <= w.due_at, 1), else_=0)), 0)).where(
            from_12345, w.answered_at >= period.start, w.answered_at < period.end
        )
    ).one()
    sent = dict(
        c.execute(
            select(m.kind, func.count()).where(m.created_at >= period.start, m.created_at < period.end).group_by(m.kind)
        ).all()
    )
    return {
        "from_12345_received": int(received),
        "from_12345_answered": int(answered),
        "from_12345_on_time": int(on_time),
        "to_12345_returned": int(sent.get("returned", 0)),
        "to_12345_extensions": int(sent.get("extension", 0)),
        "to_12345_forwarded": int(sent.get("forwarded", 0)),
    }
