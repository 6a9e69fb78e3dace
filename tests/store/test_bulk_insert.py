"""`core.db.insert_rows`, the bulk INSERT of intake and the group commit: the same rows
come back on SQLite (executemany) and PostgreSQL (one JSON document), ON CONFLICT holds,
and a naive datetime is refused as the UTC columns refuse it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from core.db import Store, insert_rows
from core.models import SmsMessage

AT = dt.datetime(2026, 12, 1, 6, 30, 15, 123456, tzinfo=dt.UTC)
TABLE: Any = SmsMessage.__table__


def _row(recipient: str, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "event_id": None,
        "event_type": "policy_news",
        "category": "policy",
        "recipient": recipient,
        "text": '余雪英您好："引号"、\\反斜杠\\ 与换行\n【安吉人社】',
        "priority": 1,
        "batch_id": None,
        "status": "queued",
        "last_error": None,
        "attempts": 0,
        "next_attempt_at": AT,
        "segments": 1,
        "created_at": AT,
        "duplicate_suspect": False,
    }
    return row | changes


def _skip_taken(insert: Any) -> Any:
    return insert.on_conflict_do_nothing(index_elements=["id"])


def test_rows_come_back_as_they_went_in(store: Store) -> None:
    rows = [_row("13900000001", id=1), _row("13900000002", id=2, batch_id=7, duplicate_suspect=True)]
    with store.transaction() as c:
        insert_rows(c, TABLE, rows, _skip_taken)
        insert_rows(c, TABLE, [_row("13900000003", id=2)], _skip_taken)  # taken: skipped
        insert_rows(c, TABLE, [])  # nothing, and no error
    with store.session() as s:
        got = list(s.scalars(select(SmsMessage).order_by(SmsMessage.id)))
    assert [(m.id, m.recipient, m.batch_id, m.duplicate_suspect) for m in got] == [
        (1, "13900000001", None, False),
        (2, "13900000002", 7, True),
    ]
    assert all(m.text == rows[0]["text"] and m.next_attempt_at == AT and m.last_error is None for m in got)


def test_a_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(Exception, match="naive datetime"), store.transaction() as c:
        insert_rows(c, TABLE, [_row("13900000001", created_at=AT.replace(tzinfo=None))])
