"""The contract of the work orders the 12345 government service hotline sends (派单) to
this sub-centre: headers, signature and body, from a request's headers and bytes to a
checked order or a named refusal (cases.errors). No I/O: the store's side is
cases/intake12345.py, the HTTP side console/hotline12345_views.py, and the OpenAPI document
(console/hotline12345_openapi.py) is written from the constants here.

A counterpart (a 12345 platform named in `hotline12345.counterparts`) signs each request
with its shared key:

    X-12345-Signature = hex(HMAC-SHA256(key, timestamp + "\\n" + nonce + "\\n" + raw body))

>>> sign("k" * 32, "1765000000", "n0nce-0123456789", b'{"order_no": "A1"}')[:16]
'390eb82deffe634b'

The checks run in a fixed order, so that what a refusal says is never a guess: the
counterpart and its signature (401), then the timestamp's freshness (403; a stale request
is refused only once it is known to be the counterpart's), then (in the store) the nonce,
then the body's fields (400, naming the field).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from cases.errors import BadOrder12345, BadOrderInput, BadSignature, StaleRequest, UnknownCounterpart
from cases.orders import SUMMARY_MAX, checked_text
from core.phones import BadPhoneNumber, store_form
from core.settings import Hotline12345Settings

COUNTERPART: Final = "X-12345-Counterpart"
TIMESTAMP: Final = "X-12345-Timestamp"
NONCE: Final = "X-12345-Nonce"
SIGNATURE: Final = "X-12345-Signature"
NONCE_PATTERN: Final = r"^[A-Za-z0-9_-]{16,64}$"
TIMESTAMP_PATTERN: Final = r"^[0-9]{1,12}$"
SIGNATURE_PATTERN: Final = r"^[0-9a-fA-F]{64}$"
ORDER_NO_MAX: Final = 40
TITLE_MAX: Final = 100
CONTENT_MAX: Final = 1800
DEADLINE_MAX: Final = 40
# The local order's summary is the title, a blank line and the content: it must fit.
assert TITLE_MAX + 2 + CONTENT_MAX <= SUMMARY_MAX
# 12345's kinds of request (诉求类型) and the category each becomes here (CASE_CATEGORIES).
CATEGORIES: Final = {
    "咨询": "policy_question",
    "求助": "how_to",
    "投诉": "complaint",
    "举报": "complaint",
    "建议": "suggestion",
}
REQUIRED: Final = ("order_no", "title", "content", "category", "deadline")
OPTIONAL: Final = ("caller_number", "department")
KIND: Final = "12345"  # work_orders.kind of the orders 12345 sent


@dataclass(frozen=True)
class Signed:
    """Who signed a request, and the nonce it is taken under."""

    counterpart: str
    timestamp: int
    nonce: str


@dataclass(frozen=True)
class Order12345:
    """A work order as 12345 sent it, checked; numbers and times in the store's forms."""

    order_no: str
    title: str
    content: str
    category: str  # 12345's (咨询...); `case_category` is ours
    caller_number: str | None
    deadline: dt.datetime  # UTC
    department: str | None

    @property
    def case_category(self) -> str:
        return CATEGORIES[self.category]

    @property
    def summary(self) -> str:
        return f"{self.title}\n\n{self.content}"

    def digest(self) -> str:
        """SHA-256 of the fields as taken: equal for a resend, however its JSON was spaced."""
        fields = asdict(self) | {"deadline": self.deadline.isoformat()}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def sign(key: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The hex HMAC-SHA256 a counterpart sends in X-12345-Signature."""
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def authenticate(settings: Hotline12345Settings, headers: Mapping[str, str], body: bytes, now: float) -> Signed:
    """The counterpart that signed this request (UnknownCounterpart, BadSignature), if its
    timestamp is within `max_skew_s` of `now` (StaleRequest). The nonce is not looked at
    here: whether it was taken before is the store's to say (cases.intake12345)."""
    name = headers.get(COUNTERPART, "")
    key = settings.counterparts.get(name)
    if key is None:
        raise UnknownCounterpart(name)
    timestamp, nonce, signature = headers.get(TIMESTAMP, ""), headers.get(NONCE, ""), headers.get(SIGNATURE, "")
    for header, value, pattern in (
        (TIMESTAMP, timestamp, TIMESTAMP_PATTERN),
        (NONCE, nonce, NONCE_PATTERN),
        (SIGNATURE, signature, SIGNATURE_PATTERN),
    ):
        if not re.fullmatch(pattern, value):
            raise BadSignature(f"{header} is missing or not {pattern}")
    if not hmac.compare_digest(sign(key, timestamp, nonce, body), signature.lower()):
        raise BadSignature(f"{SIGNATURE} does not match the request under {name}'s key")
    skew = int(timestamp) - now
    if abs(skew) > settings.max_skew_s:
        raise StaleRequest(
            f"{TIMESTAMP} is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} our clock; "
            f"at most {settings.max_skew_s} s either way (check the sender's clock)"
        )
    return Signed(name, int(timestamp), nonce)


def parse_order(body: bytes, departments: tuple[str, ...], country_code: str) -> Order12345:
    """The order in a request's body (UTF-8 JSON), checked field by field; BadOrder12345
    names the first field that does not fit. Fields not in the contract are ignored.
    Messages never repeat the caller's number or the order's text."""
    fields = _json_object(body)
    for name in REQUIRED:
        if fields.get(name) is None:
            raise BadOrder12345(name, "required")
    for name in REQUIRED + OPTIONAL:
        if fields.get(name) is not None and not isinstance(fields[name], str):
            raise BadOrder12345(name, "a string")
    order_no = fields["order_no"]
    if not 1 <= len(order_no) <= ORDER_NO_MAX or not order_no.isprintable() or any(c.isspace() for c in order_no):
        raise BadOrder12345("order_no", f"1 to {ORDER_NO_MAX} printable characters without spaces")
    category = fields["category"]
    if category not in CATEGORIES:
        raise BadOrder12345("category", f"unknown {category[:20]!r} (known: {', '.join(CATEGORIES)})")
    department = fields.get("department") or None
    if department is not None and department not in departments:
        raise BadOrder12345("department", f"unknown {department[:40]!r} (known: {', '.join(departments)}, or empty)")
    return Order12345(
        order_no=order_no,
        title=_text(fields, "title", TITLE_MAX),
        content=_text(fields, "content", CONTENT_MAX),
        category=category,
        caller_number=_phone(fields.get("caller_number"), country_code),
        deadline=_deadline(fields["deadline"]),
        department=department,
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadOrder12345("body", "not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadOrder12345("body", f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(fields, dict):
        raise BadOrder12345("body", "a JSON object")
    return fields


def _text(fields: dict[str, Any], name: str, limit: int) -> str:
    try:
        return checked_text(fields[name], name, limit)
    except BadOrderInput as exc:
        raise BadOrder12345(name, str(exc).removeprefix(f"the {name} ")) from None


def _phone(raw: str | None, country_code: str) -> str | None:
    if not raw:
        return None
    try:
        return store_form(raw, country_code)
    except BadPhoneNumber as exc:  # its message counts digits, it never repeats them
        raise BadOrder12345("caller_number", str(exc)) from None


def _deadline(raw: str) -> dt.datetime:
    try:
        deadline = dt.datetime.fromisoformat(raw) if len(raw) <= DEADLINE_MAX else None
    except ValueError:
        deadline = None
    if deadline is None:
        raise BadOrder12345("deadline", "not an ISO 8601 date and time (e.g. 2026-12-11T17:30:00+08:00)")
    if deadline.tzinfo is None:
        raise BadOrder12345("deadline", "no zone: write it with one (e.g. +08:00)")
    return deadline.astimezone(dt.UTC)
