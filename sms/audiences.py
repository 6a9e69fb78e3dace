"""Audiences (the CLI's named segments): batches chosen by a query rather than listed in a file.

    hotline sms batch --segment employers-in-arrears --period 2026-11 --deadline 2026-12-15

A segment turns (period, deadline) into one event per subject. What the store knows of
the business system is its contributions table (one row per resident, month and paying
employer), so "in arrears for a month" is read from it the way a collector would: a
person paid for by the employer in the month before and not in the month itself. The
arrears amount is what those people's last month cost (pension plus medical, in fen).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select
from sqlalchemy.orm import aliased

from core.db import Store
from core.models import Contribution, Employer, Resident
from sms.errors import BatchError
from sms.templates import TEMPLATES

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
Rows = list[tuple[str, dict[str, Any]]]  # subject id, payload


@dataclass(frozen=True)
class Audience:
    name: str
    event_type: str
    description: str
    select: Callable[[Connection, str, str], Rows]


def previous_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def _lapsed(period: str) -> Any:
    """Contributions of the month before `period` with none for `period` for the same
    person and employer: who stopped being paid for."""
    now = aliased(Contribution)
    before = Contribution
    return and_(
        before.period == previous_period(period),
        before.employer_id.is_not(None),
        ~exists().where(
            now.resident_id == before.resident_id, now.employer_id == before.employer_id, now.period == period
        ),
    )


def _employers_in_arrears(c: Connection, period: str, deadline: str) -> Rows:
    owed = func.sum(Contribution.pension_fen + Contribution.medical_fen)
    rows = c.execute(
        select(Employer.credit_code, Employer.name, owed)
        .join(Contribution, Contribution.employer_id == Employer.id)
        .where(_lapsed(period))
        .group_by(Employer.credit_code, Employer.name)
        .order_by(Employer.credit_code)
    ).all()
    return [
        (code, {"unit_name": name, "period": period, "amount": int(amount), "deadline": deadline})
        for code, name, amount in rows
    ]


def _all_employers(c: Connection, period: str, deadline: str) -> Rows:
    rows = c.execute(select(Employer.credit_code, Employer.name).order_by(Employer.credit_code)).all()
    return [(code, {"unit_name": name, "period": period, "deadline": deadline}) for code, name in rows]


def _residents_interrupted(c: Connection, period: str, _deadline: str) -> Rows:
    rows = c.execute(
        select(Resident.id_number, Resident.name)
        .join(Contribution, Contribution.resident_id == Resident.id)
        .where(_lapsed(period))
        .group_by(Resident.id_number, Resident.name)
        .order_by(Resident.id_number)
    ).all()
    return [(id_number, {"name": name, "since": period}) for id_number, name in rows]


AUDIENCES: dict[str, Audience] = {
    s.name: s
    for s in (
        Audience(
            "employers-in-arrears",
            "arrears_notice",
            "employers who paid for someone last month and not this month, with what that month cost",
            _employers_in_arrears,
        ),
        Audience(
            "employers-all", "declaration_reminder", "every employer: the monthly declaration reminder", _all_employers
        ),
        Audience(
            "residents-interrupted",
            "contribution_interrupted",
            "residents paid for last month by an employer and not this month",
            _residents_interrupted,
        ),
    )
}


def resolve(store: Store, name: str, period: str | None, deadline: str | None) -> tuple[Audience, Rows]:
    """The segment's events for `period`; BatchError with what is wrong otherwise."""
    segment = AUDIENCES.get(name)
    if segment is None:
        raise BatchError(f"no segment named {name!r}; segments: {', '.join(AUDIENCES)}")
    if not period or not PERIOD.match(period):
        raise BatchError(f"segment {name}: --period YYYY-MM is required (got {period!r})")
    if "deadline" in TEMPLATES[segment.event_type].fields:
        try:
            dt.date.fromisoformat(deadline or "")
        except ValueError:
            raise BatchError(f"segment {name}: --deadline YYYY-MM-DD is required (got {deadline!r})") from None
    with store.transaction() as c:
        return segment, segment.select(c, period, deadline or "")
