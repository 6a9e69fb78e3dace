"""Event templates: the text residents and employers read, and payloads that render nothing."""

from __future__ import annotations

from typing import Any

import pytest

from sms.templates import MAX_FEN, SIGNATURE, TEMPLATES, TemplateError, parse_payload, render

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
    "wechat_bind_code": {"code": "048213", "minutes": 10},
    "medical_settlement": {"name": "余雪英", "date": "2026-11-20", "total": 56000, "fund": 39200, "personal": 16800},
    "account_statement": {"name": "余雪英", "year": "2025", "pension": 1230560, "medical": 45000},
    "policy_news": {"title": "医保缴费提醒", "body": "2027年度城乡居民医保集中缴费期为9月1日至12月31日。"},
    "order_answered": {"order_no": "42", "answer": "可携身份证到县社保中心窗口办理补缴。"},
    "order_followup": {"order_no": "42"},
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
        ("wechat_bind_code", "您正在绑定微信，验证码048213，10分钟内有效。如非本人操作请忽略。【安吉人社】"),
        ("pension_credited", "余雪英您好，您2026年11月的养老金3,471.25元已发放到账，请注意查收。【安吉人社】"),
        (
            "order_answered",
            "您好，您反映的问题（工单号42）已办理：可携身份证到县社保中心窗口办理补缴。如有疑问请致电12333。【安吉人社】",
        ),
        (
            "order_followup",
            "您好，您的工单42已办理。请对办理结果评价：满意请回复1，基本满意回复2，不满意回复3。【安吉人社】",
        ),
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
        ("wechat_bind_code", {"code": "04821"}, "six digits"),
        ("wechat_bind_code", {"minutes": True}, "whole minutes"),
        ("policy_news", {"body": "x" * 301}, "at most 300 characters"),
        ("medical_settlement", {"name": ""}, "field 'name' must be a non-empty text"),
        ("pension_credited", {"amount": True}, "field 'amount' must be an amount in fen"),
        ("pension_credited", {"amount": "347125"}, "field 'amount' must be an amount in fen"),
        ("pension_credited", {"amount": MAX_FEN + 1}, "field 'amount' must be an amount in fen"),
        ("pension_credited", {"name": {"family": "余"}}, "field 'name' must be a non-empty text"),
        ("pension_credited", {"name": "余\x00雪英"}, "field 'name' must be printable text"),
        ("pension_credited", {"name": "余\ud800雪英"}, "field 'name' must be printable text"),
        ("policy_news", {"body": "新政策\x1b发布"}, "field 'body' must be printable text"),
        ("card_loss_confirmed", {"reported_at": "9999-12-31T23:59:59-05:00"}, "from year 1 to 9999"),
        ("card_loss_confirmed", {"reported_at": "0001-01-01T00:00:00+14:00"}, "from year 1 to 9999"),
        ("card_loss_confirmed", {"reported_at": "2026-11-28T06:05:00+24:00"}, "with its UTC offset"),
        ("card_loss_confirmed", {"card_tail": "٤٨٢١"}, "the last four digits"),  # Arabic-Indic: not ours
        ("pension_credited", {"period": "２０２６-11"}, "a month as YYYY-MM"),
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


def test_a_line_feed_an_odd_offset_a_top_amount_and_extra_fields_are_fine() -> None:
    assert "\n" in render("policy_news", {"title": "通知", "body": "第一行\n第二行"})
    text = render("card_loss_confirmed", {**GOOD["card_loss_confirmed"], "reported_at": "2026-11-28T06:05:00+05:45"})
    assert "2026年11月28日08:20" in text  # 00:20 UTC is 08:20 in Beijing
    assert "92,233,720,368,547,758.07元" in render("pension_credited", {**GOOD["pension_credited"], "amount": MAX_FEN})
    assert render("pension_credited", {**GOOD["pension_credited"], "x": [1, {"y": None}]}).endswith(SIGNATURE)


@pytest.mark.parametrize(
    ("payload", "kind"),
    [(None, "null"), ([1], "a list"), ("余雪英", "a string"), (42, "a number"), (True, "true or false")],
)
def test_a_payload_that_is_not_an_object_renders_nothing(payload: Any, kind: str) -> None:
    with pytest.raises(TemplateError, match=f"^pension_credited: the payload must be a JSON object, not {kind}$"):
        render("pension_credited", payload)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (None, "the payload is missing"),
        ("{name: 1}", "the payload is not JSON"),
        ("{" * 70_000, "the payload is 70,000 characters; at most 65,536"),
        ("[" * 5_000 + "]" * 5_000, "the payload is nested too deeply"),
    ],
)
def test_a_stored_payload_that_cannot_be_read(stored: str | None, reason: str) -> None:
    with pytest.raises(TemplateError, match=reason):
        parse_payload(stored)


def test_an_integer_too_long_to_read_fits_no_field() -> None:
    payload = parse_payload('{"amount": ' + "9" * 5_000 + "}")
    with pytest.raises(TemplateError, match="field 'amount' must be an amount in fen"):
        render("pension_credited", {**GOOD["pension_credited"], **payload})
    assert parse_payload('{"amount": 347125}') == {"amount": 347125}


def _han(text: str) -> set[str]:
    return {ch for ch in text if "\u4e00" <= ch <= "\u9fff"}


def test_every_template_has_an_english_text_with_the_same_fields() -> None:
    for event_type, payload in GOOD.items():
        text = render(event_type, payload, language="en")
        assert text.endswith(SIGNATURE) and "{" not in text
        # Mandarin only where the business system wrote it (names, titles, answers) and in the signature.
        given = _han(SIGNATURE + "".join(str(v) for v in payload.values()))
        assert _han(text) <= given, event_type


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        (
            "arrears_notice",
            "安吉竹艺有限公司: your social insurance contributions for October 2026 are CNY 12,345.67 in arrears; "
            "please pay them in full by 15 December 2026.【安吉人社】",
        ),
        (
            "card_loss_confirmed",
            "Your social security card ending 4821 was reported lost at 28 November 2026 14:05. If this was not "
            "you, call 12333 at once.【安吉人社】",
        ),
        (
            "pension_credited",
            "Dear 余雪英, your pension of CNY 3,471.25 for November 2026 has been paid into your account.【安吉人社】",
        ),
    ],
)
def test_english_texts_read_amounts_months_and_times_in_english(event_type: str, expected: str) -> None:
    assert render(event_type, GOOD[event_type], language="en") == expected


def test_an_english_payload_that_does_not_fit_is_refused_as_the_mandarin_one_is() -> None:
    with pytest.raises(TemplateError, match="field 'period' must be a month as YYYY-MM"):
        render("pension_credited", {"name": "x", "period": "2026-13", "amount": 1}, language="en")
