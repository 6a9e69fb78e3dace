"""A report as text (terminal tables), JSON, CSV (one table per file), self-contained HTML
with charts, and PDF (the HTML printed by the local Chromium); Chinese labels, or English."""

from __future__ import annotations

import csv
import html
import io
import json
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reports.labels import WEEKDAYS, label
from reports.report import Report

SUMMARY_KEYS = (
    "calls",
    "automated_calls",
    "agent_calls",
    "abandoned_calls",
    "timeout_calls",
    "callback_calls",
    "agent_talk_minutes",
    "avg_agent_talk_seconds",
    "avg_wait_seconds",
    "avg_abandoned_wait_seconds",
    "service_level_seconds",
    "service_level",
    "service_level_with_abandoned",
    "connection_rate",
    "short_abandoned_calls",
    "abandonment_rate",
    "satisfaction_rate",
    "ivr_resolved_calls",
    "callbacks_requested",
    "callbacks_completed",
    "three_party_calls",
    "blocked_calls",
    "blocked_numbers",
)
PERIOD_COLUMNS = (
    "calls",
    "automated_calls",
    "agent_calls",
    "abandoned_calls",
    "agent_talk_minutes",
    "avg_agent_talk_seconds",
    "avg_wait_seconds",
    "service_level",
    "connection_rate",
    "abandonment_rate",
)
CASEWORK_KEYS = (
    "orders_created",
    "orders_open",
    "orders_returned",
    "orders_answered",
    "orders_closed",
    "orders_overdue",
    "orders_decided",
    "orders_on_time",
    "on_time_rate",
    "avg_handling_working_days",
    "fcr_calls",
    "fcr_resolved",
    "fcr_with_order",
    "fcr_repeated",
    "fcr_no_number",
    "first_call_resolution_rate",
    "voice_messages_left",
    "voice_messages_answered",
    "voice_answer_median_hours",
    "voice_answer_p90_hours",
    "followups_asked",
    "followups_answered",
    "followups_satisfied",
    "followup_satisfaction_rate",
    "from_12345_received",
    "from_12345_answered",
    "from_12345_on_time",
    "from_12345_on_time_rate",
    "to_12345_returned",
    "to_12345_extensions",
    "to_12345_forwarded",
)
ORDER_COLUMNS = (
    "orders",
    "open",
    "returned",
    "answered",
    "closed",
    "overdue",
    "decided",
    "on_time",
    "on_time_rate",
    "avg_handling_working_days",
)
AGENT_COLUMNS = ("agent", "name", "calls", "talk_seconds", "avg_handle_seconds", "paused_seconds", "logged_in_seconds")
NOTICE_COLUMNS = ("notice_channel", "pending", "advance", "delivered", "heard", "failed")
NOTICE_KEYS = ("notices_fallbacks", "notices_failed")
SMS_COLUMNS = ("category", "messages", "sent", "delivered", "failed", "avg_delivery_seconds")
GOAL_KEYS = ("goal_service_level_seconds", "goal_service_level", "goal_connection_rate", "goal_short_abandon_seconds")
MISSED_COLUMNS = ("hour", "agent_calls", "connection_rate", "service_level", "missed")
RATES = {
    "service_level",
    "service_level_with_abandoned",
    "connection_rate",
    "goal_service_level",
    "goal_connection_rate",
    "abandonment_rate",
    "satisfaction_rate",
    "occupancy",
    "on_time_rate",
    "first_call_resolution_rate",
    "followup_satisfaction_rate",
    "from_12345_on_time_rate",
}
DECIMALS = {"avg_quality_score": 1, "avg_handling_working_days": 2, "voice_answer_median_hours": 1}
DECIMALS["voice_answer_p90_hours"] = 1
KEY_VALUE = ("key", "value")  # a table of figures, one per row


class RenderError(RuntimeError):
    pass


def cell(key: str, value: Any, lang: str) -> str:
    if key == "department" and value is None:
        return label("unassigned", lang)
    if value is None:
        return "-"
    if key in RATES:
        return f"{value * 100:.1f}%"
    if key == "weekday":
        return str(WEEKDAYS[lang][int(value) - 1])
    if key == "hour":
        return f"{int(value):02d}:00"
    if key in DECIMALS:
        return f"{value:.{DECIMALS[key]}f}"
    if key in ("missed", "goals_missed"):
        return "、".join(label(f"missed.{g}", lang) for g in value) if value else label("goals_met", lang)
    if key == "order_category":
        return label(f"cat.{value}", lang)
    if key == "notice_channel":
        return label(f"ch.{value}", lang)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# --- tables ------------------------------------------------------------------------------


Table = tuple[str, Sequence[str], list[dict[str, Any]]]  # name, columns, rows


def tables(report: Report) -> list[Table]:
    data = report.as_dict()
    summary = {**data, "callbacks_requested": data["callbacks"]["requested"]}
    summary["callbacks_completed"] = data["callbacks"]["completed"]
    summary["three_party_calls"] = data["three_party"]["calls"]
    sms_rows = [{"category": k, **v} for k, v in data["sms"]["by_category"].items()]
    cases = data["casework"]
    figures = {**cases, **{f"orders_{k}": v for k, v in cases["orders_by_state"].items()}}
    by_category = [{"order_category": r["category"], **r} for r in cases["by_category"]]
    notice_rows = [
        {"notice_channel": ch, **{s: states.get(s, 0) for s in NOTICE_COLUMNS[1:]}}
        for ch, states in data["notices"]["by_channel"].items()
    ]
    notice_figures = {f"notices_{k}": data["notices"][k] for k in ("fallbacks", "failed")}
    goals = {f"goal_{k}": v for k, v in data["goals"].items()} | {"goals_missed": data["goals_missed"]}
    return [
        ("summary", KEY_VALUE, [{"key": k, "value": summary[k]} for k in SUMMARY_KEYS]),
        ("goals", KEY_VALUE, [{"key": k, "value": goals[k]} for k in (*GOAL_KEYS, "goals_missed")]),
        ("hours_missed", MISSED_COLUMNS, data["hours_missed"]),
        ("by_month", ("month", *PERIOD_COLUMNS), data["by_month"]),
        ("by_week", ("week_of", *PERIOD_COLUMNS), data["by_week"]),
        ("by_day", ("day", *PERIOD_COLUMNS), data["by_day"]),
        ("per_hour", ("hour", *PERIOD_COLUMNS), data["per_hour"]),
        ("per_weekday", ("weekday", *PERIOD_COLUMNS), data["per_weekday"]),
        ("per_agent", (*AGENT_COLUMNS, "occupancy", "quality_scores", "avg_quality_score"), data["per_agent"]),
        ("menu_usage", ("query", "uses", "succeeded"), data["menu_usage"]),
        ("sms", SMS_COLUMNS, sms_rows),
        ("notices", NOTICE_COLUMNS, notice_rows),
        ("notice_totals", KEY_VALUE, [{"key": k, "value": notice_figures[k]} for k in NOTICE_KEYS]),
        ("casework", KEY_VALUE, [{"key": k, "value": figures[k]} for k in CASEWORK_KEYS]),
        ("orders_by_category", ("order_category", *ORDER_COLUMNS), by_category),
        ("orders_by_department", ("department", *ORDER_COLUMNS), cases["by_department"]),
    ]


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def grid(header: list[str] | None, rows: list[list[str]]) -> str:
    """Columns aligned for a terminal (a CJK character is two cells wide); numbers right."""
    widths = [max(_width(r[i]) for r in [*([header] if header else []), *rows]) for i in range(len(rows[0]))]
    lines = []
    if header is not None:
        lines.append("  ".join(_pad(h, w, i > 0) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
        lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(_pad(v, w, i > 0) for i, (v, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(lines)


def text(report: Report, lang: str = "zh") -> str:
    out = [f"{label('title', lang)}  {label('period', lang)}: {report.period.label()} ({report.period.zone})", ""]
    if report.simulated_calls:
        out[1:1] = [_simulated(report, lang)]
    for name, columns, rows in tables(report):
        out.append(f"[{label(name, lang)}]")
        if columns == KEY_VALUE:
            out.append(grid(None, [[label(r["key"], lang), cell(r["key"], r["value"], lang)] for r in rows]))
        elif not rows:
            out.append(label("no_rows", lang))
        else:
            header = [label(c, lang) for c in columns]
            out.append(grid(header, [[cell(c, r.get(c), lang) for c in columns] for r in rows]))
        out.append("")
    return "\n".join(out)


def as_json(report: Report) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2)


def csv_tables(report: Report) -> dict[str, str]:
    """One CSV per table (`name.csv`), machine-readable: raw keys as headers, raw numbers."""
    files: dict[str, str] = {}
    for name, columns, rows in tables(report):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_csv_value(r.get(c)) for c in columns])
        files[f"{name}.csv"] = buffer.getvalue()
    return files


def _csv_value(value: Any) -> Any:
    """Empty for none; a list (the goals an hour missed) as its items separated by spaces."""
    if value is None:
        return ""
    return " ".join(map(str, value)) if isinstance(value, list) else value


# --- HTML with charts ----------------------------------------------------------------------


def _bars(title: str, labels: list[str], series: list[tuple[str, str, list[int]]], width: int = 860) -> str:
    """A stacked bar chart as inline SVG: `series` is (name, colour, values per label)."""
    height, left, bottom, top = 220, 48, 34, 24
    totals = [sum(s[2][i] for s in series) for i in range(len(labels))] or [0]
    peak = max(totals) or 1
    step = (width - left - 10) / max(1, len(labels))
    bar = max(1.0, step * 0.75)
    scale = (height - bottom - top) / peak
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}" class="chart">',
        f'<text x="{left}" y="14" class="t">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 5}" y2="{height - bottom}" class="axis"/>',
        f'<text x="{left - 6}" y="{top + 4}" class="y">{peak:,}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" class="y">0</text>',
    ]
    every = max(1, len(labels) // 24)
    for i, name in enumerate(labels):
        x = left + i * step + (step - bar) / 2
        y = float(height - bottom)
        for _, colour, values in series:
            h = values[i] * scale
            if h > 0:
                y -= h
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}"/>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 14}" class="x">{html.escape(name)}</text>')
    lx = left
    for name, colour, _ in series:
        parts.append(f'<rect x="{lx}" y="{height - 12}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 14}" y="{height - 3}" class="l">{html.escape(name)}</text>')
        lx += 14 + 8 * max(4, _width(name)) + 16
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei","PingFang SC","Microsoft YaHei",sans-serif;
margin:24px;color:#1d2733}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ccd}
.meta{color:#556;font-size:13px}table{border-collapse:collapse;font-size:12px;margin:4px 0}
td,th{border:1px solid #ccd;padding:3px 8px;text-align:right}th{background:#eef1f6}
td:first-child,th:first-child{text-align:left}.chart{width:100%;max-width:860px;display:block;margin:8px 0}
.chart .t{font-size:13px;font-weight:bold}.chart .x,.chart .l{font-size:10px}.chart .x{text-anchor:middle}
.chart .y{font-size:10px;text-anchor:end}.chart .axis{stroke:#889}
.kpis,.casework-kpis{display:flex;flex-wrap:wrap;gap:8px;margin:0 0 8px}
.kpi{border:1px solid #ccd;padding:6px 10px;min-width:130px}
.kpi b{display:block;font-size:18px}.kpi span{font-size:11px;color:#556}
.simulated{background:#fff3cd;border:1px solid #e0b252;padding:6px 10px}
@media print{body{margin:0}h2{break-after:avoid}table,svg{break-inside:avoid}}
"""
HEADLINE = (
    "automated_calls",
    "agent_calls",
    "agent_talk_minutes",
    "avg_agent_talk_seconds",
    "avg_wait_seconds",
    "service_level",
    "connection_rate",
    "abandonment_rate",
    "satisfaction_rate",
)
CASEWORK_HEADLINE = (
    "orders_created",
    "on_time_rate",
    "avg_handling_working_days",
    "orders_overdue",
    "first_call_resolution_rate",
    "voice_messages_left",
    "followup_satisfaction_rate",
)


def _kpis(figures: dict[str, Any], keys: Sequence[str], lang: str) -> str:
    return "".join(
        f'<div class="kpi"><b>{html.escape(cell(k, figures[k], lang))}</b>'
        f"<span>{html.escape(label(k, lang))}</span></div>"
        for k in keys
    )


def _simulated(report: Report, lang: str) -> str:
    return label("simulated", lang).format(n=f"{report.simulated_calls:,}")


def _html_table(columns: Sequence[str], rows: list[dict[str, Any]], lang: str) -> str:
    if not rows:
        return f"<p>{label('no_rows', lang)}</p>"
    head = "".join(f"<th>{html.escape(label(c, lang))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(c, r.get(c), lang))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def as_html(report: Report, lang: str = "zh") -> str:
    """A self-contained page: its style inline, its charts inline SVG, nothing fetched."""
    title = f"{label('title', lang)} {report.period.label()}"
    return (
        f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{html_body(report, lang)}</body></html>"
    )


def html_body(report: Report, lang: str = "zh") -> str:
    """The report's headline, charts and tables (the console shows it in its own page)."""
    data = report.as_dict()
    auto, agent, abandoned = label("automated_calls", lang), label("agent_calls", lang), label("abandoned_calls", lang)

    def calls_chart(title: str, rows: list[dict[str, Any]], key: str, fmt: Callable[[Any], str]) -> str:
        return _bars(
            title,
            [fmt(r[key]) for r in rows],
            [
                (auto, "#7aa6d6", [r["automated_calls"] for r in rows]),
                (agent, "#2f6db3", [r["agent_calls"] for r in rows]),
                (abandoned, "#d9822b", [r["abandoned_calls"] for r in rows]),
            ],
        )

    sections = [
        f"<h1>{label('title', lang)}</h1>",
        f'<p class="meta">{label("period", lang)}: {report.period.label()} ({report.period.zone}) · '
        f"{label('generated', lang)}: {report.generated_at.astimezone(report.period.tz):%Y-%m-%d %H:%M:%S}</p>",
        *([f'<p class="simulated">{html.escape(_simulated(report, lang))}</p>'] if report.simulated_calls else []),
        f'<div class="kpis">{_kpis(data, HEADLINE, lang)}</div>',
        f'<div class="casework-kpis">{_kpis(data["casework"], CASEWORK_HEADLINE, lang)}</div>',
        calls_chart(label("by_day", lang), data["by_day"], "day", lambda d: d[5:]),
        calls_chart(label("per_hour", lang), data["per_hour"], "hour", lambda h: f"{h:02d}"),
        calls_chart(label("per_weekday", lang), data["per_weekday"], "weekday", lambda d: cell("weekday", d, lang)),
    ]
    sms_rows = [{"category": k, **v} for k, v in data["sms"]["by_category"].items()]
    if sms_rows:
        sections.append(
            _bars(
                label("sms", lang),
                [r["category"] for r in sms_rows],
                [
                    (label("delivered", lang), "#3c9a5f", [r["delivered"] for r in sms_rows]),
                    (label("failed", lang), "#c0392b", [r["failed"] for r in sms_rows]),
                ],
            )
        )
    for name, columns, rows in tables(report):
        sections.append(f"<h2>{label(name, lang)}</h2>")
        if columns == KEY_VALUE:
            rows = [{"key": label(r["key"], lang), "value": cell(r["key"], r["value"], lang)} for r in rows]
            sections.append(
                "<table><tbody>"
                + "".join(f"<tr><td>{html.escape(r['key'])}</td><td>{html.escape(r['value'])}</td></tr>" for r in rows)
                + "</tbody></table>"
            )
        else:
            sections.append(_html_table(columns, rows, lang))
    return f'<div class="report">{"".join(sections)}</div>'


def as_pdf(report: Report, lang: str = "zh", browser: str | None = None) -> bytes:
    """The HTML printed to PDF by the local Chromium (headless; nothing fetched)."""
    chromium = browser or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RenderError("PDF needs Chromium (apt-get install chromium); --format html works without it")
    with tempfile.TemporaryDirectory(prefix="hotline-report-") as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(as_html(report, lang), encoding="utf-8")
        argv = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            f"--user-data-dir={tmp}/profile",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            raise RenderError("Chromium did not print the report within 120 s") from None
        if not pdf.exists() or pdf.stat().st_size == 0:
            raise RenderError(f"Chromium printed no PDF (exit {done.returncode}): {done.stderr.strip()[-300:]}")
        return pdf.read_bytes()
