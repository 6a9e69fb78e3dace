"""Audiences (the CLI's named segments): batches chosen by a query rather than listed in a file.

    hotline sms batch --segment employers-in-arrears --period 2026-11 --deadline 2026-12-15

A segment turns (period, deadline) into one event per subject. Who is in it is the
business system's to say, through the business port (`employers_in_arrears`: an employer
that paid for someone in the month before and not in the month itself, with what that
month cost; `employers`; `residents_interrupted`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.business import BusinessPort
from sms.errors import BatchError
from sms.templates import TEMPLATES

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
Rows = list[tuple[str, dict[str, Any]]]  # subject id, payload


@dataclass(frozen=True)
class Audience:
    name: str
    event_type: str
    description: str
    select: Callable[[BusinessPort, str, str], Rows]


def _employers_in_arrears(port: BusinessPort, period: str, deadline: str) -> Rows:
    return [
        (u.credit_code, {"unit_name": u.name, "period": period, "amount": u.owed_fen, "deadline": deadline})
        for u in port.employers_in_arrears(period)
    ]


def _all_employers(port: BusinessPort, period: str, deadline: str) -> Rows:
    return [(u.credit_code, {"unit_name": u.name, "period": period, "deadline": deadline}) for u in port.employers()]


def _residents_interrupted(port: BusinessPort, period: str, _deadline: str) -> Rows:
    return [(p.id_number, {"name": p.name, "since": period}) for p in port.residents_interrupted(period)]


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


def resolve(port: BusinessPort, name: str, period: str | None, deadline: str | None) -> tuple[Audience, Rows]:
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
    return segment, segment.select(port, period, deadline or "")
