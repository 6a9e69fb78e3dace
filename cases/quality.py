"""Quality checks (质检) of recorded agent calls: supervisors score a recording on the
form of [quality] items (greeting 问候规范, accuracy 业务准确, attitude 服务态度,
resolution 问题解决, each with its maximum); the scores feed the per-agent report."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select

from cases.errors import BadScore, RecordingNotFound
from core.db import Store
from core.models import QualityScore, Recording
from core.settings import QualitySettings


@dataclass(frozen=True)
class ScoreView:
    id: int
    scorer: str
    agent: str | None
    items: dict[str, int]
    total: int
    max_total: int
    comment: str
    at: dt.datetime


def max_total(form: QualitySettings) -> int:
    return sum(item.max_score for item in form.items)


def check_points(form: QualitySettings, points: Mapping[str, str | int]) -> dict[str, int]:
    """Every item of the form, each a whole number in 0..its maximum, and nothing else.

    >>> check_points(QualitySettings(), {"greeting": "18", "accuracy": 30, "attitude": 20, "resolution": 0})
    {'greeting': 18, 'accuracy': 30, 'attitude': 20, 'resolution': 0}
    """
    unknown = set(points) - {item.key for item in form.items}
    if unknown:
        raise BadScore(f"not on the form: {', '.join(sorted(unknown))}")
    out: dict[str, int] = {}
    for item in form.items:
        raw = points.get(item.key)
        if raw is None or str(raw).strip() == "":
            raise BadScore(f"{item.key}: no points given")
        text = str(raw).strip()
        if not text.isdigit() or int(text) > item.max_score:
            raise BadScore(f"{item.key}: {text!r} is not a whole number from 0 to {item.max_score}")
        out[item.key] = int(text)
    return out


def score_recording(
    store: Store,
    form: QualitySettings,
    recording_id: int,
    scorer: str,
    points: Mapping[str, str | int],
    comment: str = "",
) -> ScoreView:
    """Store a supervisor's score of a recording (the agent is the recording's)."""
    items = check_points(form, points)
    if len(comment) > 2000:
        raise BadScore("the comment is longer than 2000 characters")
    with store.session() as s:
        rec = s.get(Recording, recording_id)
        if rec is None:
            raise RecordingNotFound(f"no recording {recording_id}")
        row = QualityScore(
            recording_id=rec.id,
            call_id=rec.call_id,
            agent=rec.agent,
            scorer=scorer,
            items=items,
            total=sum(items.values()),
            max_total=max_total(form),
            comment=comment.strip(),
        )
        s.add(row)
        s.flush()
        return _view(row)


def scores_of(store: Store, recording_id: int) -> list[ScoreView]:
    """A recording's scores, newest first."""
    with store.session() as s:
        rows = s.scalars(
            select(QualityScore)
            .where(QualityScore.recording_id == recording_id)
            .order_by(QualityScore.at.desc(), QualityScore.id.desc())
        ).all()
        return [_view(r) for r in rows]


def _view(row: QualityScore) -> ScoreView:
    return ScoreView(row.id, row.scorer, row.agent, dict(row.items), row.total, row.max_total, row.comment, row.at)
