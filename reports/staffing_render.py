"""The staffing plan (reports/staffing.py) as a terminal table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from reports.labels import label
from reports.render import cell, grid
from reports.staffing import Staffing

COLUMNS = (
    "day",
    "weekday",
    "hour",
    "offered_calls",
    "avg_handle_seconds",
    "erlangs",
    "agents_needed",
    "expected_service_level",
    "expected_wait_seconds",
    "expected_occupancy",
    "agents_signed_in",
    "short",
)
RATES = {"expected_service_level", "expected_occupancy"}
DECIMALS = {"offered_calls": 1, "erlangs": 2, "agents_signed_in": 1}


def plan_cell(key: str, value: Any, lang: str) -> str:
    """A figure of the plan as people read it: rates in %, tenths where averaged."""
    if key == "short":
        return label("short", lang) if value else ""
    if value is None:
        return "-"
    if key in RATES:
        return f"{value * 100:.1f}%"
    if key in DECIMALS:
        return f"{value:.{DECIMALS[key]}f}"
    return cell(key, value, lang)


def basis(plan: Staffing, lang: str) -> str:
    return label("staffing_basis", lang).format(
        weeks=plan.weeks,
        first=plan.history_first.isoformat(),
        last=plan.history_last.isoformat(),
        goal=f"{plan.goal * 100:.0f}%",
        sl=plan.threshold_s,
        wrapup=plan.wrapup_s,
    )


def listed(plan: Staffing) -> list[dict[str, Any]]:
    """The hours worth reading: with calls or with agents signed in."""
    return [h.as_dict() for h in plan.hours if h.offered > 0 or h.signed_in > 0]


def text(plan: Staffing, lang: str = "zh") -> str:
    short = sum(1 for h in plan.hours if h.short)
    out = [f"{label('staffing_title', lang)}  ({plan.zone})", basis(plan, lang)]
    out.append(label("staffing_short", lang).format(n=short))
    out.append(label("staffing_quiet", lang))
    out.append("")
    rows = listed(plan)
    if not rows:
        out.append(label("no_rows", lang))
    else:
        header = [label(c, lang) for c in COLUMNS]
        out.append(grid(header, [[plan_cell(c, r[c], lang) for c in COLUMNS] for r in rows]))
    return "\n".join(out)


def as_json(plan: Staffing) -> str:
    return json.dumps(plan.as_dict(), ensure_ascii=False, indent=2)


def as_csv(plan: Staffing) -> str:
    """Every hour of the coming week, raw keys as headers and raw numbers."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for h in plan.hours:
        row = h.as_dict()
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return buffer.getvalue()
