"""Seals of the audit chain's head (core/audit_seal.py) on SQLite and PostgreSQL: a chain
rebuilt from a copy of the database (rows altered, every hash after them recomputed, as
someone without security.audit_key would) verifies as a chain but fails `hotline audit
verify`; forged and deleted seals are named; serve's log line carries the seal."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import audit, audit_seal
from core.audit_log import verify
from core.db import Store
from core.errors import AuditTailBroken
from core.models import AuditEntry
from hotline.cli import main
from hotline.serve import audit_key, log_audit_head
from tests.conftest import PEPPER, make_settings
from tests.waiting import until

KEY = "audit-key-kept-outside-the-db-0123456789"
THIEFS_KEY = b"a-key-the-thief-made-up-0123456789abcdef"


@pytest.fixture
def env(store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    monkeypatch.chdir(tmp_path)  # no hotline.toml of the developer's
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)
    monkeypatch.setenv("HOTLINE_SECURITY_PIN_PEPPER", PEPPER)
    monkeypatch.setenv("HOTLINE_SECURITY_AUDIT_KEY", KEY)
    return store


def _entries(store: Store, numbers: Sequence[int]) -> None:
    with store.transaction() as c:
        for n in numbers:
            audit.record(c, actor="ivr", action="read:pension", resident_id=n, call_id=f"call-{n}")


def _as_owner(store: Store, statements: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Statements run as the database's owner would: the audit triggers switched off meanwhile
    (SQLite has no switch: dropped and re-created)."""
    with store.engine.begin() as c:
        if c.dialect.name == "postgresql":
            c.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
            for sql, params in statements:
                c.exec_driver_sql(sql, params)
            c.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
            return
        triggers = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'"
        saved = {name: ddl for name, ddl in c.exec_driver_sql(triggers)}
        for name in saved:
            c.exec_driver_sql(f"DROP TRIGGER {name}")
        for sql, params in statements:
            c.exec_driver_sql(sql, params)
        for ddl in saved.values():
            c.exec_driver_sql(ddl)


def _placeholder(store: Store) -> str:
    return "%(v)s" if store.engine.dialect.name == "postgresql" else ":v"


def rebuild_from(store: Store, seq: int, detail: str) -> None:
    """The thief's rebuild: row `seq` gets another detail, and every hash from it on is
    recomputed with core.audit's own code, so the chain alone verifies again."""
    with store.session() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
    p = _placeholder(store)
    statements = []
    prev = audit.GENESIS
    for r in rows:
        fields = {name: getattr(r, name) for name in audit.LINK_FIELDS}
        fields["prev_hash"] = prev
        if r.seq == seq:
            fields["detail"] = detail
        digest = audit.ChainLink(**fields).row_hash()
        if r.seq >= seq:
            set_detail = f"detail = '{detail}', " if r.seq == seq else ""
            for column, value in (("prev_hash", prev), ("row_hash", digest)):
                sql = f"UPDATE audit_log SET {set_detail}{column} = {p.replace('v', 'x')} WHERE seq = {p}"
                statements.append((sql, {"x": value, "v": r.seq}))
                set_detail = ""
        prev = digest
    _as_owner(store, statements)


def _verify_json(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["audit", "verify", "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_a_rebuilt_chain_verifies_as_a_chain_but_not_against_its_seal(
    env: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    store = env
    key = KEY.encode()
    _entries(store, range(1, 6))
    first = audit_seal.seal_head(store, key)
    _entries(store, range(6, 9))
    second = audit_seal.seal_head(store, key)
    assert first is not None and second is not None and (first.seq, second.seq) == (5, 8)
    assert audit_seal.seal_head(store, key) == second  # the head did not move: nothing new
    code, shown = _verify_json(capsys)
    assert code == 0 and shown["sealed"] == {
        "seals": 2,
        "seq": 8,
        "at": shown["sealed"]["at"],
        "unsealed_rows": 0,
    }
    rebuild_from(store, 3, "nothing to see here")
    assert verify(store).ok  # the chain alone cannot tell
    code, shown = _verify_json(capsys)
    assert code == 1
    broken = shown["broken"]
    assert broken["problem"] == "rewritten" and broken["seq"] == 5 and "its seal of" in broken["detail"]


def test_a_seal_made_without_the_key_is_forged(env: Store, capsys: pytest.CaptureFixture[str]) -> None:
    store = env
    _entries(store, range(1, 4))
    audit_seal.seal_head(store, KEY.encode())
    rebuild_from(store, 2, "rewritten")
    _entries(store, [4])
    head = audit_seal.seals(store)[-1]
    # The thief's seal of the rebuilt head, under a key of their own, in place of the real one.
    rebuilt = _row_hash(store, 4)
    with store.transaction() as c:
        c.execute(audit_seal.SEALS.delete())
        mac = audit_seal.seal_mac(THIEFS_KEY, 4, rebuilt)
        c.execute(audit_seal.SEALS.insert().values(seq=4, row_hash=rebuilt, sealed_at=head.sealed_at, mac=mac))
    code, shown = _verify_json(capsys)
    assert code == 1 and shown["broken"]["problem"] == "forged_seal"
    assert main(["audit", "verify"]) == 1
    assert "forged_seal" in capsys.readouterr().err


def _row_hash(store: Store, seq: int) -> str:
    with store.session() as s:
        return s.scalars(select(AuditEntry.row_hash).where(AuditEntry.seq == seq)).one()


def test_seals_deleted_leave_the_chain_unsealed(env: Store, capsys: pytest.CaptureFixture[str]) -> None:
    store = env
    _entries(store, range(1, 4))
    audit_seal.seal_head(store, KEY.encode())
    with store.transaction() as c:
        c.execute(audit_seal.SEALS.delete())
    rebuild_from(store, 1, "rebuilt from row 1")
    code, shown = _verify_json(capsys)
    assert code == 1 and shown["broken"]["problem"] == "unsealed"


def test_the_head_is_not_sealed_over_a_tail_rebuilt_since_the_last_seal(env: Store) -> None:
    store = env
    _entries(store, range(1, 4))
    audit_seal.seal_head(store, KEY.encode())
    _entries(store, range(4, 7))
    _as_owner(store, [(f"UPDATE audit_log SET detail = 'x' WHERE seq = {_placeholder(store)}", {"v": 5})])
    with pytest.raises(AuditTailBroken, match="row seq 5 altered"):
        audit_seal.seal_head(store, KEY.encode())
    assert [s.seq for s in audit_seal.seals(store)] == [3]


async def test_serve_seals_the_head_and_its_log_line_checks_with_the_key(
    env: Store, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    store = env
    _entries(store, range(1, 4))
    caplog.set_level(logging.INFO, logger="hotline.serve")
    stop = asyncio.Event()
    task = asyncio.create_task(log_audit_head(store, stop, every_s=0.05, key=KEY.encode()))
    await until(lambda: [r for r in caplog.records if "chain head" in r.getMessage()], "the chain head logged", 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    [line] = [r.getMessage() for r in caplog.records if "chain head" in r.getMessage()]
    sealed = line.rsplit("--expect-head ", 1)[1].rstrip(")")
    seq, digest, mac = sealed.split(":")
    assert (seq, mac) == ("3", audit_seal.seal_mac(KEY.encode(), 3, digest))
    assert main(["audit", "verify", "--expect-head", sealed]) == 0
    assert "1 seals hold, the last at seq 3" in capsys.readouterr().out
    tampered = f"{seq}:{digest}:{'0' * 64}"
    assert main(["audit", "verify", "--expect-head", tampered]) == 1
    assert "forged_seal" in capsys.readouterr().err


def test_without_a_key_outside_the_demo_it_is_said_loudly(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hotline.serve")
    assert audit_key(make_settings(tmp_path, store.url)) is None
    assert "security.audit_key (or security.audit_key_file) is NOT SET" in caplog.text
    caplog.clear()
    assert audit_key(make_settings(tmp_path, store.url, HOTLINE_SECURITY_DEMO="true")) is None
    assert not caplog.records
    key_file = tmp_path / "audit.key"
    key_file.write_text(KEY + "\n")
    assert audit_key(make_settings(tmp_path, store.url, HOTLINE_SECURITY_AUDIT_KEY_FILE=str(key_file))) == KEY.encode()


def test_verify_without_a_key_warns(
    env: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HOTLINE_SECURITY_AUDIT_KEY")
    _entries(env, [1])
    assert main(["audit", "verify"]) == 0
    assert "WARNING: security.audit_key is not set" in capsys.readouterr().err


def test_a_new_sites_first_rows_verify_before_the_next_hourly_seal(
    env: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    # `hotline serve` seals at start, on a new site an empty chain: the rows written before
    # its next hourly seal are not sealed yet, and that is no break; deleting every seal is.
    store = env
    genesis = audit_seal.seal_head(store, KEY.encode())
    assert genesis is not None and (genesis.seq, genesis.row_hash) == (0, audit.GENESIS)
    _entries(store, range(1, 5))
    code, shown = _verify_json(capsys)
    assert code == 0 and shown["sealed"]["unsealed_rows"] == 4, shown
    with store.transaction() as c:
        c.execute(audit_seal.SEALS.delete())
    code, shown = _verify_json(capsys)
    assert code == 1 and shown["broken"]["problem"] == "unsealed"
