"""Event types, their Mandarin templates and fields.

The business system INSERTs `business_events` rows (DESIGN.md); each `event_type` here
names a template, the category it belongs to (for opt-outs and quiet hours) and the typed
fields its payload must carry. A payload with a field missing or of the wrong form renders
nothing: `TemplateError` says which field and why, and the event is marked failed with
that reason. Every message ends with the signature 【安吉人社】 and never carries a full
ID number (a rendered text that looks like one is refused).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from core.errors import HotlineError

SIGNATURE: Final = "【安吉人社】"
Check = Callable[[Any, ZoneInfo], str]
# Categories a resident or employer may opt out of (texting TD); the others are service notices.
OPTIONAL_CATEGORIES: Final = frozenset({"statement", "policy"})
_FULL_ID = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)|(?<!\d)\d{15}(?!\d)")


class TemplateError(HotlineError):
    """An event's payload does not fit its template: which field, and what is wrong."""


def _money(value: Any, _zone: ZoneInfo) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("an amount in fen (a whole number, not negative)")
    return f"{value // 100:,}.{value % 100:02d}元"


def _period(value: Any, _zone: ZoneInfo) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise ValueError("a month as YYYY-MM")
    return f"{value[:4]}年{int(value[5:])}月"


def _date(value: Any, _zone: ZoneInfo) -> str:
    try:
        day = dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        day = None
    if day is None:
        raise ValueError("a date as YYYY-MM-DD")
    return f"{day.year}年{day.month}月{day.day}日"


def _text(limit: int) -> Check:
    def check(value: Any, _zone: ZoneInfo) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a non-empty text")
        if len(value) > limit:
            raise ValueError(f"at most {limit} characters")
        return value.strip()

    return check


def _moment(value: Any, zone: ZoneInfo) -> str:
    """An ISO timestamp with its offset (the IVR writes UTC), shown in the hotline's time zone."""
    try:
        at = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValueError("a timestamp with its UTC offset (ISO 8601)")
    local = at.astimezone(zone)
    return f"{local.year}年{local.month}月{local.day}日{local.hour:02d}:{local.minute:02d}"


def _tail(value: Any, _zone: ZoneInfo) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}", value):
        raise ValueError("the last four digits")
    return value


NAME = _text(20)
UNIT = _text(60)


@dataclass(frozen=True)
class Template:
    event_type: str
    category: str  # employer_notice | resident_reminder | medical | statement | policy | security
    subject_kind: str  # person | unit
    text: str
    fields: Mapping[str, Check]


TEMPLATES: Final[dict[str, Template]] = {
    t.event_type: t
    for t in (
        Template(
            "declaration_reminder",
            "employer_notice",
            "unit",
            "{unit_name}：请于{deadline}前完成{period}社会保险费申报，逾期将产生滞纳金。",
            {"unit_name": UNIT, "period": _period, "deadline": _date},
        ),
        Template(
            "arrears_notice",
            "employer_notice",
            "unit",
            "{unit_name}：贵单位{period}社会保险费欠缴{amount}，请于{deadline}前足额缴纳。",
            {"unit_name": UNIT, "period": _period, "amount": _money, "deadline": _date},
        ),
        Template(
            "pension_credited",
            "resident_reminder",
            "person",
            "{name}您好，您{period}的养老金{amount}已发放到账，请注意查收。",
            {"name": NAME, "period": _period, "amount": _money},
        ),
        Template(
            "contribution_interrupted",
            "resident_reminder",
            "person",
            "{name}您好，您的社会保险自{since}起中断缴费，可能影响待遇享受，详询12333。",
            {"name": NAME, "since": _period},
        ),
        Template(
            "retirement_approved",
            "resident_reminder",
            "person",
            "{name}您好，您的退休申请已审批通过，自{start}起按月领取基本养老金{monthly}。",
            {"name": NAME, "start": _period, "monthly": _money},
        ),
        Template(
            "card_loss_confirmed",
            "security",
            "person",
            "您尾号{card_tail}的社会保障卡已于{reported_at}挂失，如非本人操作请立即致电12333。",
            {"card_tail": _tail, "reported_at": _moment},
        ),
        Template(
            "medical_settlement",
            "medical",
            "person",
            "{name}您好，您{date}的医疗费用已结算：总额{total}，统筹基金支付{fund}，个人账户支付{personal}。",
            {"name": NAME, "date": _date, "total": _money, "fund": _money, "personal": _money},
        ),
        Template(
            "account_statement",
            "statement",
            "person",
            "{name}您好，截至{year}年底，您的养老保险个人账户余额{pension}，医保个人账户余额{medical}。",
            {"name": NAME, "year": _text(4), "pension": _money, "medical": _money},
        ),
        Template(
            "policy_news",
            "policy",
            "person",
            "{title}：{body}",
            {"title": _text(30), "body": _text(300)},
        ),
    )
}


def money_fields(event_type: str) -> frozenset[str]:
    """The fields of an event type that are amounts in fen (whole numbers)."""
    template = TEMPLATES.get(event_type)
    return frozenset(k for k, check in template.fields.items() if check is _money) if template else frozenset()


def render(event_type: str, payload: Mapping[str, Any], zone: str = "Asia/Shanghai") -> str:
    """The message text, signature included; TemplateError if the payload does not fit."""
    template = TEMPLATES.get(event_type)
    if template is None:
        raise TemplateError(f"unknown event type {event_type!r}")
    values = {}
    tz = ZoneInfo(zone)
    for name, check in template.fields.items():
        if name not in payload:
            raise TemplateError(f"{event_type}: field {name!r} is missing")
        try:
            values[name] = check(payload[name], tz)
        except ValueError as exc:
            raise TemplateError(f"{event_type}: field {name!r} must be {exc}") from None
    text = template.text.format(**values) + SIGNATURE
    if _FULL_ID.search(text):
        raise TemplateError(f"{event_type}: the text would carry a full ID number")
    return text
