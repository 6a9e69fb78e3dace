"""The destination policy as dialplan: the last door before `Dial(PJSIP/…@trunk)`.

Python checks every number before it is dialled (core.destinations); the dialplan checks
again, so a mistake above it (a path added later, a hand-made Originate through AMI) still
cannot dial abroad. `hotline-outbound` and `hotline-notice-dial` Gosub to
`hotline-destinations` with the number they would dial, in either form the trunk's
`dial_format` gives (`13812345678` / `+8613812345678`), and dial only when it returns
`allowed`. Asterisk takes the most specific pattern that matches (a blocked `_0400X.` beats
the fixed-line `_0ZXX[2-9]XXXXXXX`), and anything else (`00…`, `+882…`, an unknown prefix,
letters) falls to the catch-all refusal.

>>> print(render_destinations(DestinationSettings(kinds=("mobile",), block=(), allow=("+852",))))
; Written by `hotline asterisk up` from [destinations]; do not edit.
[hotline-destinations]
exten => _1[3-9]XXXXXXXXX,1,Return(allowed)
exten => _+861[3-9]XXXXXXXXX,1,Return(allowed)
exten => _+852X.,1,Return(allowed)
exten => _[+0-9a-zA-Z*#].,1,Return(refused)
<BLANKLINE>
"""

from __future__ import annotations

from typing import Final

from core.destinations import MAINLAND, DestinationSettings
from core.phones import national
from ivr.dialplan import DESTINATIONS_CONTEXT, RETURN_ALLOWED

HEADER: Final = "; Written by `hotline asterisk up` from [destinations]; do not edit.\n"
# The shapes of core.destinations' mainland kinds, national and E.164 (Asterisk patterns:
# X any digit, Z 1-9, [..] one of): mobiles; fixed lines with a 2-digit area code (10, 2x)
# and 8-digit local numbers, or a 3-digit one (3xx-9xx) and 7 or 8 digits, the local number
# beginning with 2-9.
_SHAPES: Final = {
    "mobile": ("1[3-9]XXXXXXXXX",),
    "fixed": ("10[2-9]XXXXXXX", "2X[2-9]XXXXXXX", "[3-9]XX[2-9]XXXXXX", "[3-9]XX[2-9]XXXXXXX"),
}


def render_destinations(destinations: DestinationSettings) -> str:
    """The `hotline-destinations` context of `destinations`."""
    lines = [f"[{DESTINATIONS_CONTEXT}]"]
    for kind in destinations.kinds:
        for shape in _SHAPES[kind]:
            lines.append(_exten(("" if kind == "mobile" else "0") + shape, RETURN_ALLOWED))
            lines.append(_exten(f"+{MAINLAND}{shape}", RETURN_ALLOWED))
    for prefix in destinations.allow:
        lines += [_exten(p + "X.", RETURN_ALLOWED) for p in _forms(prefix)]
    for prefix in destinations.block:
        lines += [_exten(p + "X.", "blocked") for p in _forms(prefix)]
    lines.append(_exten("[+0-9a-zA-Z*#].", "refused"))
    return HEADER + "\n".join(dict.fromkeys(lines)) + "\n"


def _forms(prefix: str) -> list[str]:
    """The prefix as the trunk may be dialled: E.164, and national for a mainland one."""
    return list(dict.fromkeys((prefix, national(prefix, MAINLAND))))


def _exten(pattern: str, value: str) -> str:
    return f"exten => _{pattern},1,Return({value})"
