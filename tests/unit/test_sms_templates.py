"""Event templates: the text residents and employers read, and payloads that render nothing."""

from __future__ import annotations

from typing import Any

import pytest

from sms.templates import SIGNATURE, TEMPLATES, TemplateError, render

GOOD: dict[str, dict[str, Any]] = {
    "declaration_reminder": {"unit_name": "安吉竹艺有限公司", "period": "2026-11", "deadline": "2026-12-15"},
    "arrears_notice": {
        "unit_name": "安吉竹艺有限公司",
        "period": "2026-10",
        "amount": 1234567,
        "deadline": "2026-12-15",
    },
    "pension_credited": {"name": "余雪英", "period": "2026-11", "amount": 347125},
    "contribution_interrupted": {"name": "余雪英", "since": "2026-08"},
    "retirement_approved": {"name": "余雪英", "start": "2027-01", "monthly": 298000},
    "card_loss_confirmed": {"card_tail": "4821", "reported_at": "2026-11-28T06:05:00+00:00", "channel": "ivr"},
    "medical_settlement": {"name": "余雪英", "date": "2026-11-20", "total": 56000, "fund": 39200, "personal": 16800},
    "account_statement": {"name": "余雪英", "year": "2025", "pension": 1230560, "medical": 45000},
    "policy_news": {"title": "医保缴费提醒", "body": "2027年度城乡居民医保集中缴费期为9月1日至12月31日。"},
}


def test_every_event_type_has_a_good_example_and_renders_with_the_signature() -> None:
    assert set(GOOD) == set(TEMPLATES)
    for event_type, payload in GOOD.items():
        text = render(event_type, payload)
        assert text.endswith(SIGNATURE) and "{" not in text


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        (
            "arrears_notice",
            "安吉竹艺有限公司：贵单位2026年10月社会保险费欠缴12,345.67元，请于2026年12月15日前足额缴纳。【安吉人社】",
        ),
        (
            "card_loss_confirmed",
            "您尾号4821的社会保障卡已于2026年11月28日14:05挂失，如非本人操作请立即致电12333。【安吉人社】",
        ),
        ("pension_credited", "余雪英您好，您2026年11月的养老金3,471.25元已发放到账，请注意查收。【安吉人社】"),
    ],
)
def test_texts(event_type: str, expected: str) -> None:
    assert render(event_type, GOOD[event_type]) == expected


@pytest.mark.parametrize(
    ("event_type", "change", "reason"),
    [
        ("pension_credited", {"amount": None}, "field 'amount' must be an amount in fen"),
        ("pension_credited", {"amount": -5}, "field 'amount' must be an amount in fen"),
        ("pension_credited", {"amount": 12.5}, "field 'amount' must be an amount in fen"),
        ("pension_credited", {"period": "2026-13"}, "field 'period' must be a month as YYYY-MM"),
        ("arrears_notice", {"deadline": "12/15/2026"}, "field 'deadline' must be a date as YYYY-MM-DD"),
        ("card_loss_confirmed", {"reported_at": "2026-11-28T06:05:00"}, "with its UTC offset"),
        ("card_loss_confirmed", {"card_tail": "48X1"}, "the last four digits"),
        ("policy_news", {"body": "x" * 301}, "at most 300 characters"),
        ("medical_settlement", {"name": ""}, "field 'name' must be a non-empty text"),
    ],
)
def test_a_payload_that_does_not_fit_renders_nothing_and_says_why(
    event_type: str, change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(TemplateError, match=reason):
        render(event_type, {**GOOD[event_type], **change})


def test_missing_field_unknown_type_and_a_full_id_number() -> None:
    with pytest.raises(TemplateError, match="field 'name' is missing"):
        render("pension_credited", {"period": "2026-11", "amount": 1})
    with pytest.raises(TemplateError, match="unknown event type 'pension_stolen'"):
        render("pension_stolen", {})
    with pytest.raises(TemplateError, match="full ID number"):
        render("policy_news", {"title": "测试", "body": "身份证330523199411187594已登记"})
