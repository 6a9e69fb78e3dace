"""Which numbers the platform may call or text: one policy for every way out.

International revenue-share fraud is the first way a PBX loses money: a fraudster presents
(or types into a form) a premium number abroad, `+882…` (satellite), `+44 70…`, and asks
to be called back or texted. Every number the platform would call (callbacks, voice
notices) or text (notices, replies, codes) passes `DestinationPolicy.check` where it enters
(CLI, console, the IVR's callback offer, work orders, business events, MO senders, WeChat
bind codes) and again where it leaves (the originate, the SMS submit), and the dialplan
refuses every other shape (`render_dialplan`), so a path added later cannot skip it.

By default only mainland China's numbers pass (MIIT's numbering plan):
- mobiles: `1[3-9]` and 9 more digits;
- fixed lines: an area code (10 or 2x with 8-digit local numbers; three digits, 3xx-9xx,
  with 7 or 8), the local number beginning with 2-9.
Service numbers (95xxx, 96xxx, 12xxx, 106… SP codes) have neither shape and never pass;
non-geographic 400 (shared cost) and 800 (freephone, unreachable from mobiles) would read
as a fixed line of "area code 400", so `block` lists them. A site allows more explicitly
(`allow = ["+852"]`: Hong Kong) and blocks what its carrier charges extra for (`block`
wins over everything). Numbers are compared in E.164 (`core.phones.to_e164`), so `+86`,
`0086`, `86`, dashes and spaces are all one number.

>>> policy = DestinationPolicy(DestinationSettings())
>>> policy.check("+86 138-1234-5678"), policy.check("0571-87654321")
('13812345678', '057187654321')
>>> for raw in ("+8821612345678", "008821612345678", "00447700900123", "95588", "4008123123"):
...     print(policy.refusal(raw))
+88*******5678 may not be called or texted: an international number (+882…), not in destinations.allow
+88*******5678 may not be called or texted: an international number (+882…), not in destinations.allow
+44******0123 may not be called or texted: an international number (+44…), not in destinations.allow
***** may not be called or texted: not a phone number: 7 digits
+86******3123 may not be called or texted: in destinations.block (+86400)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.masking import mask_phone
from core.phones import BadPhoneNumber, national, to_e164

# A prefix of E.164 numbers: `+`, then the country code and as many digits as needed.
_PREFIX: Final = re.compile(r"\+[1-9][0-9]{0,14}")
# Country codes of the ITU-T E.164 list: 1, 7 and 2-digit and 3-digit ones (no code is a
# prefix of another), enough to name the one a refused number is in.
_ONE_DIGIT: Final = ("1", "7")
_TWO_DIGIT: Final = re.compile(r"2[07]|3[0-469]|4[013-9]|5[1-8]|6[0-6]|8[1246]|9[0-58]")
MAINLAND: Final = "86"
_MAINLAND_PLUS: Final = "+" + MAINLAND
# The national significant number (after +86) of a mainland mobile or fixed line.
_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
_FIXED: Final = re.compile(r"(?:10|2[0-9])[2-9][0-9]{7}|[3-9][0-9]{2}[2-9][0-9]{6,7}")

Kind = Literal["mobile", "fixed"]


class DestinationSettings(BaseModel):
    """`[destinations]`: what may be called or texted, and how often numbers are called."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The kinds of mainland numbers allowed (mobile, fixed).
    kinds: tuple[Kind, ...] = ("mobile", "fixed")
    # E.164 prefixes allowed besides: a country (`+852`) or a range (`+8657188`).
    allow: tuple[str, ...] = ()
    # E.164 prefixes refused whatever else says: non-geographic 400 and 800 by default; add
    # what the carrier charges extra for.
    block: tuple[str, ...] = ("+86400", "+86800")
    # Calls out (callbacks dialled, voice notices) to one number in any 24 hours, and by the
    # whole hotline in any hour; over either the call is not placed and the log says so.
    calls_per_number_day: int = Field(4, ge=1)
    calls_per_hour: int = Field(200, ge=1)

    @field_validator("allow", "block")
    @classmethod
    def _prefixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for prefix in value:
            if not _PREFIX.fullmatch(prefix):
                raise ValueError(f"{prefix!r}: an E.164 prefix is + and digits, e.g. +852 or +86400")
        return value


class DestinationRefused(BadPhoneNumber):
    """A number the destination policy does not let the platform call or text."""

    def __init__(self, number: str, reason: str, rule: str) -> None:
        super().__init__(f"{number} may not be called or texted: {reason}")
        self.number = number  # masked
        self.rule = rule  # the setting (or shape) that refused it, e.g. destinations.allow


@dataclass(frozen=True)
class DestinationPolicy:
    """The policy of `settings`, numbers without a country code being in `country_code`."""

    settings: DestinationSettings
    country_code: str = MAINLAND

    def check(self, raw: str) -> str:
        """`raw` in the store's form (core.phones.store_form) if it may be called or texted;
        DestinationRefused (naming the rule) if not, BadPhoneNumber if it is no number at all."""
        e164 = to_e164(raw, self.country_code)
        refused = self._judge(e164)
        if refused is not None:
            raise refused
        return national(e164, self.country_code)

    def allows(self, raw: str) -> bool:
        return self.refusal(raw) is None

    def refusal(self, raw: str) -> DestinationRefused | None:
        """Why `raw` may not be called or texted (None: it may)."""
        try:
            e164 = to_e164(raw, self.country_code)
        except BadPhoneNumber as exc:
            return DestinationRefused(mask_phone(raw), str(exc), "shape")
        return self._judge(e164)

    def _judge(self, e164: str) -> DestinationRefused | None:
        block = self.settings.block
        if block and e164.startswith(block):
            prefix = next(p for p in block if e164.startswith(p))
            return DestinationRefused(mask_phone(e164), f"in destinations.block ({prefix})", "destinations.block")
        if self.settings.allow and e164.startswith(self.settings.allow):
            return None
        if not e164.startswith(_MAINLAND_PLUS):
            reason = f"an international number (+{country_of(e164)}…), not in destinations.allow"
            return DestinationRefused(mask_phone(e164), reason, "destinations.allow")
        kind = mainland_kind(e164[len(_MAINLAND_PLUS) :])
        if kind is None:
            reason = "not a mainland mobile or fixed-line number (a service, short or non-geographic number)"
            return DestinationRefused(mask_phone(e164), reason, "shape")
        if kind not in self.settings.kinds:
            reason = f"a {kind} number, and destinations.kinds allows {', '.join(self.settings.kinds) or 'none'}"
            return DestinationRefused(mask_phone(e164), reason, "destinations.kinds")
        return None


def mainland_kind(nsn: str) -> Kind | None:
    """The kind of a mainland national significant number (after +86), None if neither.

    >>> mainland_kind("13812345678"), mainland_kind("1087654321"), mainland_kind("5712345678"), mainland_kind("95588")
    ('mobile', 'fixed', 'fixed', None)
    """
    if _MOBILE.fullmatch(nsn):
        return "mobile"
    if _FIXED.fullmatch(nsn):
        return "fixed"
    return None


def country_of(e164: str) -> str:
    """The country code an E.164 number begins with (`+882…` → 882, `+44…` → 44)."""
    digits = e164.lstrip("+")
    if digits[:1] in _ONE_DIGIT:
        return digits[:1]
    if _TWO_DIGIT.fullmatch(digits[:2]):
        return digits[:2]
    return digits[:3]
