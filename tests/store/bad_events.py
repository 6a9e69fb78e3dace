"""A zoo of `business_events` rows as a careless business system could write them, between
good ones of the instant and the batch kinds; INSERTed as that system does, the payload as
raw JSON text (so every one is stored exactly as written)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Table, Text, bindparam, cast, insert, type_coerce

from core.db import Store
from core.models import BusinessEvent, utcnow

EVENTS: Table = BusinessEvent.__table__  # type: ignore[assignment]
NOBODY = "330523199001010000"  # a well-formed ID number nobody in the sample holds


@dataclass(frozen=True)
class Row:
    key: str
    event_type: str
    subject_kind: str
    subject: str  # "person" / "unit": the sample's resident or employer; else the id itself
    payload: str  # JSON text, as stored
    reason: str | None  # what the failure must say; None: a good event, to be delivered


def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _pension(**change: Any) -> str:
    return _j({"name": "余雪英", "period": "2026-11", "amount": 347125, **change})


def _card(reported_at: str) -> str:
    return _j({"card_tail": "4821", "reported_at": reported_at, "channel": "ivr"})


FEN = "field 'amount' must be an amount in fen"
MOMENT = "field 'reported_at' must be a timestamp from year 1 to 9999"
PRINTABLE = "field 'name' must be printable text"


def zoo() -> list[Row]:
    """Bad rows between good ones, in the order they are inserted."""
    statement = _j({"name": "余雪英", "year": "2025", "pension": 1230560, "medical": 45000})
    declaration = _j({"unit_name": "安吉竹艺有限公司", "period": "2026-11", "deadline": "2026-12-15"})
    rows = [
        Row("good-1", "pension_credited", "person", "person", _pension(), None),
        Row("null", "card_loss_confirmed", "person", "person", "null", "must be a JSON object, not null"),
        Row("list", "pension_credited", "person", "person", "[1, 2]", "must be a JSON object, not a list"),
        Row("good-2", "account_statement", "person", "person", statement, None),
        Row("string", "account_statement", "person", "person", '"余雪英"', "must be a JSON object, not a string"),
        Row("number", "declaration_reminder", "unit", "unit", "42", "must be a JSON object, not a number"),
        Row("bool", "pension_credited", "person", "person", "true", "must be a JSON object, not true or false"),
        Row("amount-str", "pension_credited", "person", "person", _pension(amount="347125"), FEN),
        Row("amount-float", "pension_credited", "person", "person", _pension(amount=3471.25), FEN),
        Row("amount-bool", "pension_credited", "person", "person", _pension(amount=True), FEN),
        Row("good-3", "card_loss_confirmed", "person", "person", _card("2026-11-28T06:05:00+05:45"), None),
        Row("amount-negative", "pension_credited", "person", "person", _pension(amount=-1), FEN),
        Row("amount-2^64", "pension_credited", "person", "person", _pension(amount=2**64), FEN),
        Row(
            "amount-5000-digits",
            "pension_credited",
            "person",
            "person",
            _pension(amount=0)[:-2] + "1" * 5000 + "}",
            FEN,
        ),
        Row("amount-null", "pension_credited", "person", "person", _pension(amount=None), FEN),
        Row("missing", "pension_credited", "person", "person", _j({"name": "余雪英"}), "field 'period' is missing"),
        Row("huge", "pension_credited", "person", "person", _pension(name="社" * 1_000_000), "the payload is 1,000,"),
        Row("good-4", "declaration_reminder", "unit", "unit", declaration, None),
        Row("year-10000", "card_loss_confirmed", "person", "person", _card("9999-12-31T23:59:59-05:00"), MOMENT),
        Row("year-0", "card_loss_confirmed", "person", "person", _card("0001-01-01T00:00:00+14:00"), MOMENT),
        Row("offset-25h", "card_loss_confirmed", "person", "person", _card("2026-11-28T06:05:00+25:00"), "UTC offset"),
        Row("month-13", "pension_credited", "person", "person", _pension(period="2026-13"), "a month as YYYY-MM"),
        Row(
            "feb-30",
            "declaration_reminder",
            "unit",
            "unit",
            _j({"unit_name": "安吉竹艺有限公司", "period": "2026-11", "deadline": "2026-02-30"}),
            "a date as YYYY-MM-DD",
        ),
        Row("unknown-type", "pension_stolen", "person", "person", _pension(), "unknown event type 'pension_stolen'"),
        Row("unknown-kind", "pension_credited", "cat", "person", _pension(), "unknown subject kind 'cat'"),
        Row("wrong-kind", "pension_credited", "unit", "unit", _pension(), "is for a person, not a unit"),
        Row(
            "nobody",
            "pension_credited",
            "person",
            NOBODY,
            _pension(),
            "no registered phone for person 330523********0000",
        ),
        Row(
            "nul",
            "pension_credited",
            "person",
            "person",
            '{"name": "余\\u0000雪英", "period": "2026-11", "amount": 1}',
            PRINTABLE,
        ),
        Row(
            "surrogate",
            "pension_credited",
            "person",
            "person",
            '{"name": "余\\ud800雪英", "period": "2026-11", "amount": 1}',
            PRINTABLE,
        ),
        Row("bell", "pension_credited", "person", "person", _pension(name="余\a雪英"), PRINTABLE),
        Row("nested", "pension_credited", "person", "person", _pension(name={"family": "余"}), "non-empty text"),
        Row("deep", "policy_news", "person", "person", "[" * 5000 + "]" * 5000, "nested too deeply"),
        Row("good-5", "policy_news", "person", "person", _j({"title": "通知", "body": "社保" * 100}), None),
        Row("good-6", "pension_credited", "person", "person", _pension(extra={"any": ["thing"]}, note="extra"), None),
    ]
    return rows


def insert_zoo(store: Store, people: list[Any], employer: Any) -> list[Row]:
    """The zoo, each person-bound row for a person of its own (so every good one is a
    message to someone else); on SQLite also a payload that is not JSON at all (PostgreSQL
    refuses it at the INSERT, as it should)."""
    rows = zoo()
    if store.engine.dialect.name == "sqlite":
        rows.insert(3, Row("not-json", "pension_credited", "person", "person", "{name: 余雪英", "not JSON"))
    subjects = iter(people)
    values = []
    for row in rows:
        if row.subject == "person":
            subject = next(subjects).id_number
        else:
            subject = employer.credit_code if row.subject == "unit" else row.subject
        values.append(
            {
                "event_type": row.event_type,
                "subject_kind": row.subject_kind,
                "subject_id": subject,
                "raw": row.payload,
                "idempotency_key": row.key,
                "created_at": utcnow(),
            }
        )
    # The payload as the text written: JSON's own on PostgreSQL, a TEXT value on SQLite.
    raw = bindparam("raw", type_=Text)
    payload = cast(raw, JSON) if store.engine.dialect.name == "postgresql" else type_coerce(raw, Text)
    statement = insert(EVENTS).values(
        event_type=bindparam("event_type"),
        subject_kind=bindparam("subject_kind"),
        subject_id=bindparam("subject_id"),
        payload=payload,
        idempotency_key=bindparam("idempotency_key"),
        created_at=bindparam("created_at"),
    )
    with store.transaction() as c:
        for value in values:  # one at a time, in order: ids follow the zoo
            c.execute(statement, value)
    return rows
