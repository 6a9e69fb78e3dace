"""The carrier's trunk for real: SIPp, bound where the test carrier sends from, calls the
session's Asterisk (its rendered pjsip.conf, no Local channels) with RFC 4733 DTMF, and
`hotline serve` answers over FastAGI and writes the record."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.models import Call
from ivr.asterisk import LocalAsterisk
from ivr.trail import TRANSFERRED_12345, show_call
from tests.real.serving import Ivr, keypad, kinds
from tests.real.sip_setup import ORDER_HEADER, STRANGER_ADDR
from tests.real.test_asterisk_config import START_LINE
from tests.sip_peers.sipp import CarrierCall, UacPlan, UacResult, hotline_address, place_calls

pytestmark = pytest.mark.real


def _carrier(ivr: Ivr, workdir: Path, plan: UacPlan, name: str = "uac") -> UacResult:
    return place_calls(hotline_address(ivr.settings), plan, workdir, name)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _calls_from(ivr: Ivr, caller_number: str, since: dt.datetime) -> list[Call]:
    """Calls from that number since the test began: `hotline serve` also imports the calls of
    earlier sessions from Asterisk's own records (Master.csv), with the same test numbers."""
    with ivr.store.session() as s:
        query = select(Call).where(Call.caller_number == caller_number, Call.started_at >= since)
        return list(s.scalars(query).all())


def _record(ivr: Ivr, caller_number: str, since: dt.datetime, timeout_s: float = 15.0) -> tuple[Call, dict[str, Any]]:
    """The finished call recorded with that caller number since `since`, and its trail."""
    deadline = time.monotonic() + timeout_s
    while True:
        calls = _calls_from(ivr, caller_number, since)
        if len(calls) == 1 and calls[0].ended_at is not None:
            return calls[0], show_call(ivr.store, calls[0].id, actor="test")
        assert time.monotonic() < deadline, f"{len(calls)} calls recorded from caller {caller_number!r}"
        time.sleep(0.2)


def _pension_query(ivr: Ivr, index: int) -> str:
    r = ivr.resident(index)
    return f"1W1W1W{keypad(r.id_number)}W{r.pin}"


def _assert_balance(ivr: Ivr, index: int, trail: dict[str, Any]) -> None:
    r = ivr.resident(index)
    result = [s for s in kinds(trail, "result") if s["query"] == "pension"]
    assert result and result[0]["data"] == {"balance_fen": r.pension_balance_fen, "months": r.pension_months}
    assert trail["resident_id"] == r.id
    assert (trail["outcome"], trail["ended_by"]) == ("caller_hangup", "caller")


def test_pension_balance_query_over_the_trunk(ivr: Ivr, tmp_path: Path) -> None:
    """The county's long number with the country code, and a caller id with it too."""
    since = _now()
    plan = UacPlan((CarrierCall("+8613900000001", "+8657112333"),), dtmf=_pension_query(ivr, 3), tail_s=6)
    run = _carrier(ivr, tmp_path, plan)
    assert [c.invite_codes[-1] for c in run.calls] == [200] and run.successful == 1, run.log
    call, trail = _record(ivr, "13900000001", since)
    assert trail["channel"].startswith("PJSIP/trunk-carrier-")
    assert "您的养老保险个人账户余额为" in " ".join(s["text"] for s in kinds(trail, "prompt"))
    _assert_balance(ivr, 3, trail)
    assert call.caller_flag is None


def test_caller_hangs_up_mid_pin_over_tcp(ivr: Ivr, tmp_path: Path) -> None:
    """Over TCP (RFC 3261 §18.1.1: large messages must go so), a caller who gives up after
    two digits of the PIN: the record says where they left and what they had done."""
    r, since = ivr.resident(11), _now()
    dtmf = f"1W1W1W{keypad(r.id_number)}W12"
    plan = UacPlan((CarrierCall("13900000002", "057112333"),), dtmf=dtmf, tail_s=0.5, transport="tcp")
    run = _carrier(ivr, tmp_path, plan)
    assert run.successful == 1, run.log
    vias = [m.header("Via") or "" for m in run.messages]
    assert vias and all(v.startswith("SIP/2.0/TCP ") for v in vias)
    _, trail = _record(ivr, "13900000002", since)
    assert (trail["outcome"], trail["ended_by"], trail["last_node"]) == ("caller_hangup", "caller", "ask_pin")
    assert [s["node"] for s in kinds(trail, "digits")] == ["welcome", "main", "si", "ask_id"]
    assert trail["trail"][-1]["kind"] == "outcome"
    assert trail["resident_id"] is None


# The forms a carrier sends caller ids in (+86, 86, 0086, none), and one that is no number.
CALLERS = [
    ("+8613900000010", "13900000010"),
    ("8613900000011", "13900000011"),
    ("008613900000012", "13900000012"),
    ("13900000013", "13900000013"),
    ("+8657187654314", "057187654314"),
    ("8657187654315", "057187654315"),
    ("+8613900000016", "13900000016"),
    ("8613900000017", "13900000017"),
    ("008613900000018", "13900000018"),
    ("anonymous", "anonymous"),
]
CALLED = ("12333", "057112333", "+8657112333")


def test_ten_calls_at_once(ivr: Ivr, tmp_path: Path) -> None:
    since = _now()
    calls = tuple(CarrierCall(sent, CALLED[i % len(CALLED)]) for i, (sent, _) in enumerate(CALLERS))
    plan = UacPlan(calls, dtmf=_pension_query(ivr, 4), tail_s=5, rate_per_s=20, concurrency=10)
    run = _carrier(ivr, tmp_path, plan)
    assert (run.successful, run.failed) == (10, 0), run.log
    # All under way together: every call had begun before the first one ended.
    assert max(c.messages[0].at for c in run.calls) < min(c.messages[-1].at for c in run.calls)
    for _, stored in CALLERS:
        call, trail = _record(ivr, stored, since)
        _assert_balance(ivr, 4, trail)
        assert call.caller_flag == ("not_digits" if stored == "anonymous" else None)


def test_an_invite_from_no_trunks_address_is_refused(ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path) -> None:
    """From an address no trunk matches, with no credentials: refused, whether the From user
    is an agent's phone (1001) or not, never answered, never recorded, and logged."""
    with ivr.store.session() as s:
        before = s.scalar(select(func.count()).select_from(Call))
    plan = UacPlan((CarrierCall("13900000020"), CarrierCall("1001")), dtmf="1", source=STRANGER_ADDR)
    run = _carrier(ivr, tmp_path, plan)
    assert len(run.calls) == 2 and all(c.final_code in (401, 403) for c in run.calls), run.log
    assert all(200 not in c.invite_codes for c in run.calls)
    # Refused before any channel exists (PJSIP identifies the endpoint first): no dialplan ran.
    with ivr.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == before
    stranger = run.by_caller("13900000020")
    log = asterisk.messages_log.read_text(errors="replace").splitlines()
    logged = [line for line in log if stranger.call_id in line]
    assert any("No matching endpoint found" in line and STRANGER_ADDR in line for line in logged), logged


def test_an_unknown_called_number_gets_404(ivr: Ivr, tmp_path: Path) -> None:
    since = _now()
    plan = UacPlan((CarrierCall("13900000030", "057112334"),), dtmf="1")
    run = _carrier(ivr, tmp_path, plan)
    assert [c.final_code for c in run.calls] == [404], run.log
    assert _calls_from(ivr, "13900000030", since) == []


def test_sip_calls_log_no_failed_host_lookups(asterisk: LocalAsterisk) -> None:
    """After the calls above: Asterisk found its own host name in the root's /etc/hosts
    (without it acl.c logs "Unable to lookup 'vm'" and 'A.ROOT-SERVERS.NET' on every call)."""
    lines = asterisk.messages_log.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if START_LINE.search(line)]
    since = lines[starts[-1] :]
    assert [line for line in since if "Unable to lookup" in line] == []


def test_a_call_12345_transferred_carries_its_order_number_to_the_record(ivr: Ivr, tmp_path: Path) -> None:
    """Two INVITEs naming a 12345 order in the trunk's header: a good number reaches the call
    record (the screen pop's source), one with a quote and a parenthesis is dropped."""
    since = _now()
    calls = (
        CarrierCall("13900000071", "12333", header_value="HZ20261208-0071"),
        CarrierCall("13900000072", "12333", header_value='HZ"72)x'),
    )
    run = _carrier(ivr, tmp_path, UacPlan(calls, header=ORDER_HEADER, lead_s=1.0, tail_s=2.0))
    assert run.successful == 2, run.log
    _, good = _record(ivr, "13900000071", since)
    _, dropped = _record(ivr, "13900000072", since)
    assert [s["order_no"] for s in kinds(good, TRANSFERRED_12345)] == ["HZ20261208-0071"]
    assert kinds(dropped, TRANSFERRED_12345) == [] and dropped["outcome"] == "caller_hangup"
