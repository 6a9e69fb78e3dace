"""The nuisance list in the store (SQLite and PostgreSQL): numbers in one form, withheld and
malformed caller ids refused, expiry by the clock given, every change audited, blocked calls
counted once each by the report, and `hotline callers block|unblock|list`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import blocked_callers as bc
from core.audit_log import verify
from core.db import Store
from core.errors import BlockRefused
from core.models import AuditEntry, BlockedCall, BlockedCaller, Call, Wrapup, utcnow
from core.settings import QueueSettings
from hotline.cli import main
from reports.period import parse_period
from reports.report import build

NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=30)
ZONE = "Asia/Shanghai"


def _audit(store: Store) -> list[AuditEntry]:
    with store.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action.like("callers:%")).order_by(AuditEntry.seq)))


def test_one_number_however_written_and_audited_masked(store: Store) -> None:
    block = bc.block(store, "+86 138-1234-5678", reason="辱骂坐席 13912345678", until=LATER, actor="cli:sup", now=NOW)
    assert block.number == "13812345678"
    for spelling in ("13812345678", "8613812345678", "008613812345678", "+86 138 1234 5678"):
        assert bc.blocked(store, spelling, NOW) == block, spelling
    # Listed again: a new reason and expiry, still one row.
    bc.block(store, "13812345678", reason="repeated abuse", until=LATER + dt.timedelta(days=1), actor="u", now=NOW)
    assert [b.reason for b in bc.listed(store, NOW)] == ["repeated abuse"]
    entries = _audit(store)
    assert [e.action for e in entries] == ["callers:block", "callers:block"]
    assert entries[0].actor == "cli:sup" and entries[0].channel == "cli"
    assert "138****5678" in entries[0].detail and "13812345678" not in entries[0].detail
    assert "13912345678" not in entries[0].detail  # a number in the reason is masked too
    assert verify(store).ok


@pytest.mark.parametrize("raw", ["", "anonymous", "Unknown", "withheld", "private"])
def test_withheld_caller_ids_are_never_listed(store: Store, raw: str) -> None:
    with pytest.raises(BlockRefused, match="withheld"):
        bc.block(store, raw, reason="x", until=LATER, actor="u", now=NOW)
    assert bc.meet_call(store, raw, "call-w", stage="ivr", treatment="hang_up", now=NOW) is None
    assert bc.listed(store, NOW, expired=True) == [] and _audit(store) == []


@pytest.mark.parametrize("raw", ["12345", "1381234567", "sip:bad@example.com", "138123456789999", "+86 12"])
def test_malformed_numbers_are_refused_with_a_clear_message(store: Store, raw: str) -> None:
    with pytest.raises(BlockRefused, match="not a phone number") as refused:
        bc.block(store, raw, reason="x", until=LATER, actor="u", now=NOW)
    assert raw not in str(refused.value) or len(raw) < 7
    assert bc.listed(store, NOW, expired=True) == []


def test_a_reason_and_a_future_expiry_are_needed(store: Store) -> None:
    with pytest.raises(BlockRefused, match="reason"):
        bc.block(store, "13812345678", reason="  ", until=LATER, actor="u", now=NOW)
    with pytest.raises(BlockRefused, match="future"):
        bc.block(store, "13812345678", reason="x", until=NOW, actor="u", now=NOW)
    with pytest.raises(BlockRefused, match="at most 200"):
        bc.block(store, "13812345678", reason="x" * 201, until=LATER, actor="u", now=NOW)
    assert bc.listed(store, NOW, expired=True) == [] and _audit(store) == []


def test_expiry_is_honoured_by_the_clock_given(store: Store) -> None:
    bc.block(store, "057187654321", reason="prank calls", until=LATER, actor="u", now=NOW)
    just_before, at = LATER - dt.timedelta(seconds=1), LATER
    assert bc.blocked(store, "0571-8765-4321", just_before) is not None
    assert bc.blocked(store, "0571-8765-4321", at) is None
    assert bc.meet_call(store, "057187654321", "call-late", stage="ivr", treatment="hang_up", now=at) is None
    assert bc.listed(store, at) == []
    assert [b.active(at) for b in bc.listed(store, at, expired=True)] == [False]


def test_unblock_lifts_and_is_audited_and_an_unlisted_number_is_refused(store: Store) -> None:
    bc.block(store, "13812345678", reason="abuse", until=LATER, actor="u", now=NOW)
    bc.unblock(store, "+8613812345678", actor="console:sup", channel="console")
    assert bc.blocked(store, "13812345678", NOW) is None
    with pytest.raises(BlockRefused, match=r"138\*\*\*\*5678 is not on the list"):
        bc.unblock(store, "13812345678", actor="u")
    assert [(e.action, e.channel) for e in _audit(store)] == [("callers:block", "cli"), ("callers:unblock", "console")]


def test_each_blocked_call_is_recorded_once_and_counted_by_the_report(store: Store) -> None:
    bc.block(store, "13812345678", reason="abuse", until=LATER, actor="u", now=NOW)
    bc.block(store, "+44 20 7946 0000", reason="abuse", until=LATER, actor="u", now=NOW)
    at = NOW + dt.timedelta(hours=1)
    assert bc.meet_call(store, "+8613812345678", "call-1", stage="ivr", treatment="self_service", now=at)
    # The same call met again at queue entry: still one blocked call.
    assert bc.meet_call(store, "13812345678", "call-1", stage="queue", treatment="self_service", now=at)
    assert bc.meet_call(store, "13812345678", "call-2", stage="queue", treatment="self_service", now=at)
    assert bc.meet_call(store, "+442079460000", "call-3", stage="ivr", treatment="self_service", now=at)
    assert bc.meet_call(store, "13900000000", "call-4", stage="ivr", treatment="self_service", now=at) is None
    with store.session() as s:
        rows = {c.call_id: (c.number, c.stage) for c in s.scalars(select(BlockedCall))}
    assert rows == {
        "call-1": ("13812345678", "ivr"),
        "call-2": ("13812345678", "queue"),
        "call-3": ("+442079460000", "ivr"),
    }
    data = build(store, parse_period("2026-12-07", "2026-12-07", ZONE), QueueSettings(), now=at).as_dict()
    assert (data["blocked_calls"], data["blocked_numbers"]) == (3, 2)
    next_day = build(store, parse_period("2026-12-08", "2026-12-08", ZONE), QueueSettings(), now=at).as_dict()
    assert next_day["blocked_calls"] == 0


def test_parse_until_forms() -> None:
    assert bc.parse_until("2026-12-31", NOW, ZONE) == dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)
    assert bc.parse_until("2026-12-31T18:00", NOW, ZONE) == dt.datetime(2026, 12, 31, 10, 0, tzinfo=dt.UTC)
    assert bc.parse_until("2026-12-31T18:00+00:00", NOW, ZONE) == dt.datetime(2026, 12, 31, 18, tzinfo=dt.UTC)
    assert bc.parse_until("30d", NOW, ZONE) == NOW + dt.timedelta(days=30)
    assert bc.parse_until("12h", NOW, ZONE) == NOW + dt.timedelta(hours=12)
    for bad, words in (("2026-02-30", "not a date"), ("next week", "an expiry is"), ("2026-12-06", "future")):
        with pytest.raises(BlockRefused, match=words):
            bc.parse_until(bad, NOW, ZONE)


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["callers", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_block_list_unblock(cli: Any, store: Store) -> None:
    code, out, _ = cli("block", "+86 138 1234 5678", "--reason", "辱骂坐席", "--until", "30d")
    assert code == 0 and "138****5678 blocked until" in out and "辱骂坐席" in out
    code, out, _ = cli("list", "--format", "json")
    shown = json.loads(out)
    assert code == 0 and [(b["number"], b["reason"], b["active"]) for b in shown] == [("13812345678", "辱骂坐席", True)]
    assert shown[0]["blocked_by"].startswith("cli")
    code, out, _ = cli("list")
    assert code == 0 and out.startswith("13812345678")
    code, out, _ = cli("unblock", "13812345678")
    assert (code, out.strip()) == (0, "138****5678 unblocked")
    code, out, _ = cli("list")
    assert (code, out.strip()) == (0, "no number is blocked")
    assert [e.action for e in _audit(store)] == ["callers:block", "callers:unblock"]


def test_cli_bad_input_exits_2_and_changes_nothing(cli: Any, store: Store) -> None:
    code, _, err = cli("block", "anonymous", "--reason", "x", "--until", "30d")
    assert code == 2 and "withheld caller id" in err
    code, _, err = cli("block", "12345", "--reason", "x", "--until", "30d")
    assert code == 2 and "not a phone number" in err
    code, _, err = cli("block", "13812345678", "--reason", "x", "--until", "2020-01-01")
    assert code == 2 and "not in the future" in err
    code, _, err = cli("unblock", "13812345678")
    assert code == 2 and "138****5678 is not on the list" in err and "13812345678" not in err
    with store.session() as s:
        assert s.scalars(select(BlockedCaller)).all() == []
    assert _audit(store) == []


# --- proposals --------------------------------------------------------------------------------


def _calls(store: Store, number: str | None, n: int, at: dt.datetime, *, flagged: int = 0) -> None:
    with store.session() as s:
        for i in range(n):
            call_id = f"{number}-{at:%H%M}-{i}"
            s.add(Call(id=call_id, started_at=at, caller_number=number))
            if i < flagged:
                s.flush()
                s.add(Wrapup(call_id=call_id, agent_id="1001", code=bc.WRAPUP_ABUSIVE, saved_at=at))


def test_frequent_and_flagged_numbers_are_proposed_never_listed(store: Store) -> None:
    hour = NOW - dt.timedelta(hours=1)
    _calls(store, "13800000001", 4, hour)  # over 3 calls in 24 hours
    _calls(store, "13800000002", 3, hour)  # at the limit: not proposed
    _calls(store, "13800000003", 1, NOW - dt.timedelta(days=3), flagged=1)  # an agent flagged it
    _calls(store, "13800000004", 9, NOW - dt.timedelta(days=2))  # many calls, but not in the last 24 hours
    _calls(store, "anonymous", 9, hour)  # withheld: never proposed
    _calls(store, None, 9, hour)
    _calls(store, "13800000005", 5, hour)  # listed already
    bc.block(store, "13800000005", reason="x", until=LATER, actor="u", now=NOW)
    found = bc.proposals(store, NOW, calls_per_day=3)
    assert [(p.number, p.calls, p.flagged) for p in found] == [("13800000003", 0, 1), ("13800000001", 4, 0)]
    assert bc.listed(store, NOW) == [bc.blocked(store, "13800000005", NOW)]  # proposing lists nothing


def test_cli_proposed(store: Store, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = cli("proposed")
    assert (code, out.strip()) == (0, "no number is proposed")
    monkeypatch.setenv("HOTLINE_IVR_NUISANCE_CALLS_PER_DAY", "1")
    _calls(store, "13800000009", 2, utcnow() - dt.timedelta(minutes=5))
    code, out, _ = cli("proposed", "--format", "json")
    assert code == 0 and json.loads(out) == [{"number": "13800000009", "calls_24h": 2, "flagged_30d": 0}]
    code, out, _ = cli("list")
    assert out.strip() == "no number is blocked"
