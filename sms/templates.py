"""Event types, their templates (Mandarin, and English for those who chose it) and fields.

The business system INSERTs `business_events` rows (DESIGN.md); each `event_type` here
names a template, the category it belongs to (for opt-outs and quiet hours) and the typed
fields its payload must carry. A payload that is not a JSON object, or has a field missing
or of the wrong form, renders nothing: `TemplateError` says what is wrong (which field and
why, never its value), and the event is marked failed with that reason. Every message
ends with the signature 【安吉人社】 and never carries a full ID number (a rendered text
that looks like one is refused). A resident whose notice preferences say `en`
(core/preferences.py) gets the English text, with amounts, months and dates in English;
names and free texts stay as the business system wrote them.
"""

from __future__ import annotations

import datetime as dt
import json
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
# Control characters (a line feed aside) and lone UTF-16 surrogates: no handset shows them,
# PostgreSQL's text refuses NUL, and a lone surrogate cannot be encoded (UTF-8 or UCS2).
_UNPRINTABLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_FEN: Final = 2**63 - 1  # a signed 64-bit amount, as the business system keeps it
# The largest payload read at all: every template's fields together are under 1,000
# characters; what is far larger is not an event of ours.
MAX_PAYLOAD_CHARS: Final = 65_536


class TemplateError(HotlineError):
    """An event's payload does not fit its template: which field, and what is wrong."""


def _money(value: Any, _zone: ZoneInfo) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FEN:
        raise ValueError(f"an amount in fen (a whole number, 0 to {MAX_FEN})")
    return f"{value // 100:,}.{value % 100:02d}元"


def _period(value: Any, _zone: ZoneInfo) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-(0[1-9]|1[0-2])", value):
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


_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def _money_en(value: Any, _zone: ZoneInfo) -> str:
    return f"CNY {value // 100:,}.{value % 100:02d}"


def _period_en(value: Any, _zone: ZoneInfo) -> str:
    return f"{_MONTHS[int(value[5:]) - 1]} {value[:4]}"


def _date_en(value: Any, _zone: ZoneInfo) -> str:
    day = dt.date.fromisoformat(value)
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def _moment_en(value: Any, zone: ZoneInfo) -> str:
    local = dt.datetime.fromisoformat(value).astimezone(zone)
    return f"{local.day} {_MONTHS[local.month - 1]} {local.year} {local.hour:02d}:{local.minute:02d}"


def _text(limit: int) -> Check:
    def check(value: Any, _zone: ZoneInfo) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a non-empty text")
        if len(value) > limit:
            raise ValueError(f"at most {limit} characters")
        if _UNPRINTABLE.search(value):
            raise ValueError("printable text (no control characters or lone surrogates)")
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
    try:
        local = at.astimezone(zone)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is in the year 10000 in UTC
        raise ValueError("a timestamp from year 1 to 9999 in the hotline's time zone") from None
    return f"{local.year}年{local.month}月{local.day}日{local.hour:02d}:{local.minute:02d}"


def _tail(value: Any, _zone: ZoneInfo) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}", value):
        raise ValueError("the last four digits")
    return value


def _code(value: Any, _zone: ZoneInfo) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{6}", value):
        raise ValueError("a code of six digits")
    return value


def _minutes(value: Any, _zone: ZoneInfo) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 60:
        raise ValueError("whole minutes, 1 to 60")
    return str(value)


NAME = _text(20)
UNIT = _text(60)
# A field's English form, from a value its check has accepted (other fields read as in Mandarin).
ENGLISH: Final[dict[Check, Check]] = {
    _money: _money_en,
    _period: _period_en,
    _date: _date_en,
    _moment: _moment_en,
}
LANGUAGES: Final = ("zh", "en")


@dataclass(frozen=True)
class Template:
    event_type: str
    category: str  # employer_notice | resident_reminder | medical | statement | policy | security | casework
    # person (by ID number) | unit (by credit code) | phone (the number itself: a reply to whoever asked)
    subject_kind: str
    text: str
    fields: Mapping[str, Check]
    text_en: str = ""


TEMPLATES: Final[dict[str, Template]] = {
    t.event_type: t
    for t in (
        Template(
            "declaration_reminder",
            "employer_notice",
            "unit",
            "{unit_name}：请于{deadline}前完成{period}社会保险费申报，逾期将产生滞纳金。",
            {"unit_name": UNIT, "period": _period, "deadline": _date},
            "{unit_name}: please declare your social insurance contributions for {period} by {deadline}; a late "
            "declaration incurs a surcharge.",
        ),
        Template(
            "arrears_notice",
            "employer_notice",
            "unit",
            "{unit_name}：贵单位{period}社会保险费欠缴{amount}，请于{deadline}前足额缴纳。",
            {"unit_name": UNIT, "period": _period, "amount": _money, "deadline": _date},
            "{unit_name}: your social insurance contributions for {period} are {amount} in arrears; please pay "
            "them in full by {deadline}.",
        ),
        Template(
            "pension_credited",
            "resident_reminder",
            "person",
            "{name}您好，您{period}的养老金{amount}已发放到账，请注意查收。",
            {"name": NAME, "period": _period, "amount": _money},
            "Dear {name}, your pension of {amount} for {period} has been paid into your account.",
        ),
        Template(
            "contribution_interrupted",
            "resident_reminder",
            "person",
            "{name}您好，您的社会保险自{since}起中断缴费，可能影响待遇享受，详询12333。",
            {"name": NAME, "since": _period},
            "Dear {name}, your social insurance contributions have been interrupted since {since}, which may "
            "affect your benefits. Call 12333 for details.",
        ),
        Template(
            "retirement_approved",
            "resident_reminder",
            "person",
            "{name}您好，您的退休申请已审批通过，自{start}起按月领取基本养老金{monthly}。",
            {"name": NAME, "start": _period, "monthly": _money},
            "Dear {name}, your retirement has been approved: from {start} you receive a basic pension of "
            "{monthly} a month.",
        ),
        Template(
            "card_loss_confirmed",
            "security",
            "person",
            "您尾号{card_tail}的社会保障卡已于{reported_at}挂失，如非本人操作请立即致电12333。",
            {"card_tail": _tail, "reported_at": _moment},
            "Your social security card ending {card_tail} was reported lost at {reported_at}. If this was not "
            "you, call 12333 at once.",
        ),
        # Written by the console's WeChat binding page (console/wechat_bind.py).
        Template(
            "wechat_bind_code",
            "security",
            "person",
            "您正在绑定微信，验证码{code}，{minutes}分钟内有效。如非本人操作请忽略。",
            {"code": _code, "minutes": _minutes},
            "Your code to bind WeChat is {code}, valid for {minutes} minutes. If this was not you, ignore it.",
        ),
        Template(
            "medical_settlement",
            "medical",
            "person",
            "{name}您好，您{date}的医疗费用已结算：总额{total}，统筹基金支付{fund}，个人账户支付{personal}。",
            {"name": NAME, "date": _date, "total": _money, "fund": _money, "personal": _money},
            "Dear {name}, your medical costs of {date} are settled: {total} in total, {fund} paid by the pooled "
            "fund, {personal} by your personal account.",
        ),
        Template(
            "account_statement",
            "statement",
            "person",
            "{name}您好，截至{year}年底，您的养老保险个人账户余额{pension}，医保个人账户余额{medical}。",
            {"name": NAME, "year": _text(4), "pension": _money, "medical": _money},
            "Dear {name}, at the end of {year} your pension personal account held {pension} and your medical "
            "insurance personal account {medical}.",
        ),
        Template(
            "policy_news",
            "policy",
            "person",
            "{title}：{body}",
            {"title": _text(30), "body": _text(300)},
            "{title}: {body}",
        ),
        # Casework (cases/replies.py, cases/followup.py): to the number that asked (subject
        # kind `phone`), not to a resident's registered phones; keyed by order, not by who.
        Template(
            "order_answered",
            "casework",
            "phone",
            "您好，您反映的问题（工单号{order_no}）已办理：{answer}如有疑问请致电12333。",
            {"order_no": _text(20), "answer": _text(300)},
            "Your case (order {order_no}) has been handled: {answer} Call 12333 with any questions.",
        ),
        Template(
            "order_followup",
            "casework",
            "phone",
            "您好，您的工单{order_no}已办理。请对办理结果评价：满意请回复1，基本满意回复2，不满意回复3。",
            {"order_no": _text(20)},
            "Your order {order_no} has been handled. Please rate the result: reply 1 if satisfied, 2 if fairly "
            "satisfied, 3 if not satisfied.",
        ),
    )
}


def money_fields(event_type: str) -> frozenset[str]:
    """The fields of an event type that are amounts in fen (whole numbers)."""
    template = TEMPLATES.get(event_type)
    return frozenset(k for k, check in template.fields.items() if check is _money) if template else frozenset()


def _integer(digits: str) -> int | float:
    # Past 4,300 digits int() refuses (CVE-2020-10735); such a number reads as infinity, as
    # one past 1e308 does, and then fits no field (which the reason names).
    return int(digits) if len(digits) <= 64 else float("inf")


_JSON = json.JSONDecoder(parse_int=_integer)  # built once: json.loads(..., parse_int=) builds one per call


def parse_payload(text: str | None) -> Any:
    """A `business_events.payload` as stored (JSON text) to its value, whatever it holds;
    TemplateError if it is not JSON we can read."""
    if text is None:
        raise TemplateError("the payload is missing")
    if len(text) > MAX_PAYLOAD_CHARS:
        raise TemplateError(f"the payload is {len(text):,} characters; at most {MAX_PAYLOAD_CHARS:,}")
    try:
        return _JSON.decode(text)
    except RecursionError:
        raise TemplateError("the payload is nested too deeply") from None
    except ValueError as exc:
        raise TemplateError(f"the payload is not JSON ({type(exc).__name__})") from None


_JSON_KINDS: Final = ((type(None), "null"), (bool, "true or false"), (str, "a string"), (list, "a list"))


def _kind(value: Any) -> str:
    return next((name for t, name in _JSON_KINDS if isinstance(value, t)), "a number")


def render(event_type: str, payload: Any, zone: str = "Asia/Shanghai", language: str = "zh") -> str:
    """The message text in `language` (zh, or en where the template has an English text),
    signature included; TemplateError if the payload (any JSON value) does not fit."""
    template = TEMPLATES.get(event_type)
    if template is None:
        raise TemplateError(f"unknown event type {shown(event_type)}")
    english = language == "en" and bool(template.text_en)
    if not isinstance(payload, Mapping):
        raise TemplateError(f"{event_type}: the payload must be a JSON object, not {_kind(payload)}")
    values = {}
    tz = ZoneInfo(zone)
    for name, check in template.fields.items():
        if name not in payload:
            raise TemplateError(f"{event_type}: field {name!r} is missing")
        try:
            values[name] = check(payload[name], tz)
        except ValueError as exc:
            raise TemplateError(f"{event_type}: field {name!r} must be {exc}") from None
        if english and check in ENGLISH:
            values[name] = ENGLISH[check](payload[name], tz)
    text = (template.text_en if english else template.text).format(**values) + SIGNATURE
    if _FULL_ID.search(text):
        raise TemplateError(f"{event_type}: the text would carry a full ID number")
    return text


def shown(value: str, limit: int = 40) -> str:
    """A value from the business system fit for a reason or a log line: quoted, escaped,
    and cut short (an unknown event type may be anything)."""
    return repr(value[:limit]) + ("…" if len(value) > limit else "")
