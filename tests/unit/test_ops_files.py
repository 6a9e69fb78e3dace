"""The Grafana dashboard and the Prometheus alert rules in docs/ops name only metrics the
platform exports: a renamed metric would leave a panel empty and an alert that never fires."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "docs" / "ops"
# Where the metrics are defined: counted as the work is done, and read at the scrape.
SOURCES = (ROOT / "core" / "metrics.py", ROOT / "console" / "metrics_views.py")
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _exported() -> set[str]:
    names = set()
    for source in SOURCES:
        names |= set(re.findall(r'"(hotline_[a-z_]+)"', source.read_text()))
    # Counters get _total in the exposition; histograms their series.
    return names | {n + s for n in names for s in SUFFIXES}


def _named(expression: str) -> set[str]:
    return set(re.findall(r"\bhotline_[a-z_]+\b", expression))


def test_the_alert_rules_name_exported_metrics() -> None:
    text = (OPS / "prometheus-alerts.yml").read_text()
    expressions = re.findall(r"^\s+expr: (.+)$", text, re.MULTILINE)
    assert len(expressions) >= 8
    alerts = re.findall(r"^\s+- alert: (\w+)$", text, re.MULTILINE)
    assert len(alerts) == len(expressions) == len(set(alerts))
    for expression in expressions:
        assert _named(expression) <= _exported(), expression


def test_the_dashboard_names_exported_metrics() -> None:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert expressions
    named = set().union(*map(_named, expressions))
    assert named <= _exported(), named - _exported()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
