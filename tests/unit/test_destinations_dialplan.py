"""The destination policy rendered as dialplan: every call out Gosubs it before Dial()."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import ivr.destinations_dialplan
from core.destinations import DestinationSettings
from ivr import dialplan
from ivr.destinations_dialplan import render_destinations

EXTENSIONS = (Path(__file__).resolve().parents[2] / "dialplans" / "extensions.conf").read_text(encoding="utf-8")


def test_the_module_example_holds() -> None:
    assert doctest.testmod(ivr.destinations_dialplan).failed == 0


def test_the_default_allows_mainland_shapes_and_blocks_400_and_800_in_both_forms() -> None:
    text = render_destinations(DestinationSettings())
    extens = dict(re.findall(r"^exten => (_\S+),1,Return\((\w+)\)$", text, re.M))
    assert extens["_1[3-9]XXXXXXXXX"] == extens["_+861[3-9]XXXXXXXXX"] == dialplan.RETURN_ALLOWED
    assert extens["_010[2-9]XXXXXXX"] == extens["_+8610[2-9]XXXXXXX"] == dialplan.RETURN_ALLOWED
    assert extens["_0[3-9]XX[2-9]XXXXXX"] == dialplan.RETURN_ALLOWED
    for blocked in ("_+86400X.", "_0400X.", "_+86800X.", "_0800X."):
        assert extens[blocked] == "blocked"
    assert extens["_[+0-9a-zA-Z*#]."] == "refused"  # 00…, +882…, anything else
    assert not any(p.startswith(("_00", "_+8")) and v == "allowed" and "86" not in p for p, v in extens.items())


def test_both_ways_out_dial_only_what_the_policy_returns_allowed() -> None:
    ways = ((dialplan.CTX_OUTBOUND, "${EXTEN}"), (dialplan.CTX_NOTICE_DIAL, "${HOTLINE_NOTICE_NUMBER}"))
    for context, number in ways:
        body = EXTENSIONS.split(f"[{context}]", 1)[1].split("\n[", 1)[0]
        gosub = body.index(f"Gosub({dialplan.DESTINATIONS_CONTEXT},{number},1)")
        check = body.index(f'GotoIf($["${{GOSUB_RETVAL}}" != "{dialplan.RETURN_ALLOWED}"]?destination)')
        assert gosub < check < body.index("Dial(PJSIP/")
        assert f"Set({dialplan.VAR_DIAL_RESULT}={dialplan.OUTCOME_REFUSED})" in body
