"""The audit chain's encoding and checks, without a database; and a guard that no code
path updates or deletes audit rows."""

from __future__ import annotations

import ast
import datetime as dt
import doctest
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core import audit
from core.audit import GENESIS, LINK_FIELDS, ChainLink, channel_of
from core.audit_log import check_row

ROOT = Path(__file__).resolve().parents[2]
AT = dt.datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)


def canonical(*fields: Any) -> bytes:
    return ChainLink(*fields).canonical()


def row_hash(*fields: Any, **named: Any) -> str:
    return ChainLink(*fields, **named).row_hash()


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(audit).failed == 0


def test_the_encoding_is_fixed_field_by_field() -> None:
    """The format is a contract with every database already written: this pins it."""
    encoded = canonical(7, AT, "ivr", "read:pension", 12, "call-1", "余额", "ivr", GENESIS)
    assert (
        encoded
        == (
            '["hotline-audit-v1",7,"2026-12-02T03:04:05.678901+00:00","ivr","read:pension",12,"call-1","余额","ivr",'
            f'"{GENESIS}"]'
        ).encode()
    )
    assert row_hash(7, AT, "ivr", "read:pension", 12, "call-1", "余额", "ivr", GENESIS) == (
        hashlib.sha256(encoded).hexdigest()
    )


def test_the_hash_of_a_known_row_is_the_one_written_before() -> None:
    """Computed by the nine-argument row_hash() this type replaced: rows already written
    keep verifying."""
    link = ChainLink(7, AT, "ivr", "read:pension", 12, "call-1", "余额", "ivr", GENESIS)
    assert link.row_hash() == "f67da2289fc925d1fa840e17119f1991361799c6c0eb9640505a315341b3f0a6"


def test_the_writer_stores_and_the_verifier_reads_the_same_fields() -> None:
    """One list of hashed fields: what is inserted is what `of` reads back, plus the hash."""
    link = ChainLink(7, AT, "ivr", "read:pension", 12, "call-1", "余额", "ivr", GENESIS)
    values = link.values()
    assert set(values) == {*LINK_FIELDS, "row_hash"}
    assert ChainLink.of(SimpleNamespace(**values)) == link
    assert LINK_FIELDS[0] == "seq" and LINK_FIELDS[-1] == "prev_hash"


def test_the_same_instant_in_another_zone_encodes_alike() -> None:
    shanghai = AT.astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert canonical(1, shanghai, "a", "b", None, None, "", "cli", GENESIS) == canonical(
        1, AT, "a", "b", None, None, "", "cli", GENESIS
    )


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"at": AT + dt.timedelta(microseconds=1)},
        {"actor": "ivr "},
        {"action": "read:medical"},
        {"resident_id": 13},
        {"resident_id": None},
        {"call_id": ""},  # empty is not absent
        {"detail": "x"},
        {"channel": "cli"},
        {"prev_hash": "1" * 64},
    ],
)
def test_every_field_changes_the_hash(change: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "seq": 1,
        "at": AT,
        "actor": "ivr",
        "action": "read:pension",
        "resident_id": 12,
        "call_id": None,
        "detail": "",
        "channel": "ivr",
        "prev_hash": GENESIS,
    }
    assert row_hash(**base) != row_hash(**{**base, **change})


def test_field_boundaries_cannot_be_shifted() -> None:
    """`actor`="a:b", `action`="c" must not hash like `actor`="a", `action`="b:c"."""
    assert row_hash(1, AT, "a:b", "c", None, None, "", "cli", GENESIS) != row_hash(
        1, AT, "a", "b:c", None, None, "", "cli", GENESIS
    )


def _chain(n: int) -> list[SimpleNamespace]:
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        fields = (AT, "ivr", "read:pension", seq, f"call-{seq}", "", "ivr")
        h = row_hash(seq, *fields, prev)
        rows.append(
            SimpleNamespace(
                id=seq + 100, seq=seq, at=AT, actor="ivr", action="read:pension", resident_id=seq,
                call_id=f"call-{seq}", detail="", channel="ivr", prev_hash=prev, row_hash=h,
            )
        )  # fmt: skip
        prev = h
    return rows


def _first_break(rows: list[SimpleNamespace]) -> Any:
    last_seq, last_hash = 0, GENESIS
    for r in rows:
        broken = check_row(r, last_seq, last_hash)  # type: ignore[arg-type]
        if broken is not None:
            return broken
        last_seq, last_hash = r.seq, r.row_hash
    return None


def test_an_intact_chain_has_no_break() -> None:
    assert _first_break(_chain(5)) is None


def test_an_altered_field_breaks_at_that_row() -> None:
    rows = _chain(5)
    rows[2].resident_id = 99
    broken = _first_break(rows)
    assert (broken.id, broken.seq, broken.problem) == (103, 3, "altered")


def test_a_deleted_row_leaves_a_gap() -> None:
    rows = _chain(5)
    del rows[1]
    broken = _first_break(rows)
    assert (broken.seq, broken.problem) == (3, "gap") and "row 2 missing" in broken.detail


def test_a_row_rehashed_after_altering_breaks_the_next_link() -> None:
    """An attacker who recomputes the altered row's hash must recompute every later one."""
    rows = _chain(5)
    r = rows[2]
    r.detail = "nothing to see"
    r.row_hash = ChainLink.of(r).row_hash()
    broken = _first_break(rows)
    assert (broken.seq, broken.problem) == (4, "relinked")


@pytest.mark.parametrize(
    ("actor", "action", "channel"),
    [
        ("ivr", "read:pension", "ivr"),
        ("ivr", "identify_failed", "ivr"),
        ("ivr", "write:card_lost", "ivr"),
        ("sms", "read:medical", "sms_reply"),
        ("console:1001", "view:screen_pop", "screen_pop"),
        ("console:1001", "denied:screen_pop", "screen_pop"),
        ("console:1001", "view:callback_number", "console"),
        ("console:dept1", "view:order", "work_order"),
        ("console:sup", "play:recording", "recording"),
        ("console:dept1", "play:voice_message", "recording"),
        ("cli:root", "view:call_trail", "cli"),
        ("console:sup", "view:call_trail", "console"),
        ("bench", "view:call_trail", "cli"),
    ],
)
def test_the_channel_follows_from_actor_and_action(actor: str, action: str, channel: str) -> None:
    assert channel_of(actor, action) == channel
    assert channel in audit.CHANNELS


def test_the_cli_lists_the_same_channels_as_the_trail() -> None:
    from hotline.audit_cli import CHANNELS

    assert CHANNELS == audit.CHANNELS


def test_an_unknown_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="audit channel 'fax'"):
        audit.record(None, actor="x", action="y", resident_id=None, channel="fax")  # type: ignore[arg-type]


CODE = ("core", "ivr", "sms", "cases", "reports", "console", "hotline", "tools", "bench")
AUDIT_NAMES = {"AuditEntry", "AUDIT", "audit_log"}


def _names(node: ast.AST) -> set[str]:
    found = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    found |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
    found |= {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return found


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("update", "delete") and node.args and _names(node.args[0]) & AUDIT_NAMES:
                out.append(f"{where}:{node.lineno}: {name}() on the audit table")
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = " ".join(node.value.upper().split())
            if "UPDATE AUDIT_LOG" in text or "DELETE FROM AUDIT_LOG" in text or "TRUNCATE AUDIT_LOG" in text:
                out.append(f"{where}:{node.lineno}: SQL changing audit_log")
    return out


def test_no_code_path_updates_or_deletes_audit_rows() -> None:
    """Append-only in the code as in the database: the only UPDATE is migration 0024's
    backfill of rows that had no chain yet, before its triggers exist."""
    files = [p for package in CODE for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]
    assert len(files) > 50
    offences = [o for p in files for o in _offences(p)]
    assert offences == []


def test_the_guard_sees_an_offence(tmp_path: Path) -> None:
    bad = tmp_path / "offender.py"
    bad.write_text("from sqlalchemy import update\nupdate(AuditEntry)\nSQL = 'delete  from audit_log'\n")
    assert len(_offences(bad)) == 2
