"""`hotline audit` and `hotline audit verify` on SQLite and PostgreSQL: ID numbers checked
and shown masked, the search itself audited, a broken chain named and exited on."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

import pytest
from sqlalchemy import select

from core import audit, sample
from core.db import Store
from core.masking import mask_id
from core.models import AuditEntry
from core.sample_port import SampleBusinessPort
from hotline.cli import main
from hotline.serve import log_audit_head
from tests.conftest import PEPPER
from tests.store.test_audit_chain import _behind_the_triggers
from tests.waiting import until

RESIDENTS = 2  # each costs a PIN hash to load


@pytest.fixture
def env(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)
    monkeypatch.setenv("HOTLINE_SECURITY_PIN_PEPPER", PEPPER)
    return store


@pytest.fixture
def cli(env: Store) -> Any:
    store = env
    sample.load(store, PEPPER, residents=RESIDENTS)
    port = SampleBusinessPort(store, PEPPER)
    people = sample.generate(residents=RESIDENTS)[1]
    rids = [port.resident_of(p.id_number) for p in people]
    with store.transaction() as c:
        audit.record(c, actor="ivr", action="identify", resident_id=rids[0], call_id="call-1")
        audit.record(c, actor="ivr", action="read:pension", resident_id=rids[0], call_id="call-1")
        audit.record(c, actor="sms", action="read:medical", resident_id=rids[1], call_id="sms-1")
        audit.record(c, actor="console:1001", action="view:screen_pop", resident_id=rids[0], call_id="call-1")
    return people, rids


def test_by_resident_shows_their_entries_masked_and_audits_the_search(
    store: Store, cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    people, rids = cli
    assert main(["audit", "--resident", people[0].id_number, "--format", "json"]) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)
    assert [(r["channel"], r["action"]) for r in rows][:3] == [
        ("ivr", "identify"),
        ("ivr", "read:pension"),
        ("screen_pop", "view:screen_pop"),
    ]
    assert {r["resident"] for r in rows} == {mask_id(people[0].id_number)}
    assert people[0].id_number not in out.out + out.err
    with store.session() as s:
        last = s.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(2)).scalars().all()
    assert [(e.action, e.channel, e.resident_id) for e in reversed(last)] == [
        ("lookup:resident", "cli", rids[0]),
        ("view:audit_log", "cli", rids[0]),
    ]
    assert all(e.actor.startswith("cli") for e in last)
    assert people[0].id_number not in last[0].detail + last[1].detail


def test_by_user_channel_and_days_in_csv(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--user", "sms", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "seq,at,actor,action,channel,resident,call_id,detail"
    assert len(lines) == 2 and ",sms,read:medical,sms_reply," in lines[1]
    assert main(["audit", "--channel", "screen_pop", "--format", "json"]) == 0
    assert [r["actor"] for r in json.loads(capsys.readouterr().out)] == ["console:1001"]
    assert main(["audit", "--user", "ivr", "--from", "2001-01-01", "--to", "2001-01-31", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resident", "330523198001010012"], "is not an ID number (bad_check)"),
        (["--resident", "12345"], "is not an ID number (too_short)"),
        (["--from", "2026-13-01"], "from '2026-13-01': not a date"),
        (["--from", "2026-12-02", "--to", "2026-12-01"], "end (2026-12-01) before they start"),
    ],
)
def test_bad_filters_are_refused_without_echoing_the_number(
    env: Store, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["audit", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "330523198001010012" not in err


def test_the_id_number_may_come_from_stdin_out_of_the_process_list(
    store: Store, cli: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    people, _ = cli
    monkeypatch.setattr("sys.stdin", io.StringIO(people[0].id_number + "\n"))
    assert main(["audit", "--resident", "-", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["resident"] for r in rows} == {mask_id(people[0].id_number)}


def test_an_id_number_nobody_holds_is_said_and_its_look_up_audited(
    store: Store, cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "--resident", "110101199003070011", "--format", "json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out) == [] and "nobody holds that ID number" in out.err
    with store.session() as s:
        looked = s.scalars(select(AuditEntry).where(AuditEntry.action == "lookup:resident")).one()
    assert looked.resident_id is None and looked.detail == "110101********0011: nobody holds it"


def test_verify_passes_then_names_the_altered_row_and_exits_non_zero(
    store: Store, cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify"]) == 0
    assert "4 rows, chain intact; head 4:" in capsys.readouterr().out
    _behind_the_triggers(store, "UPDATE audit_log SET action = 'read:medical' WHERE seq = 2")
    assert main(["audit", "verify", "--format", "json"]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["ok"] is False and verdict["rows"] == 1
    assert (verdict["broken"]["seq"], verdict["broken"]["problem"]) == (2, "altered")
    assert main(["audit", "verify"]) == 1
    assert "chain BROKEN at row id" in capsys.readouterr().err


def test_a_head_kept_outside_shows_rows_deleted_from_the_end_or_a_rebuilt_chain(
    store: Store, cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", "verify", "--format", "json"]) == 0
    kept = json.loads(capsys.readouterr().out)["head"]
    head = f"{kept['seq']}:{kept['hash']}"
    assert main(["audit", "verify", "--expect-head", head]) == 0
    assert "holds the head kept (4)" in capsys.readouterr().out
    assert main(["audit", "verify", "--expect-head", "4:abc"]) == 1
    assert "--expect-head: not a chain head '4:abc'" in capsys.readouterr().err
    # The last row deleted behind the triggers: the chain alone still verifies, the kept head does not.
    _behind_the_triggers(store, "DELETE FROM audit_log WHERE seq = 4")
    assert main(["audit", "verify"]) == 0
    capsys.readouterr()
    assert main(["audit", "verify", "--expect-head", head, "--format", "json"]) == 1
    broken = json.loads(capsys.readouterr().out)["broken"]
    assert broken["problem"] == "truncated" and "ends at seq 3" in broken["detail"]
    # A different row 3 hash than the one kept: rebuilt from some row on.
    assert main(["audit", "verify", "--expect-head", f"3:{'0' * 64}"]) == 1
    assert "rewritten" in capsys.readouterr().err


async def test_serve_writes_the_chain_head_into_the_log(
    store: Store, cli: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO, logger="hotline.serve")
    stop = asyncio.Event()
    task = asyncio.create_task(log_audit_head(store, stop, every_s=0.05))
    await until(lambda: [r for r in caplog.records if "chain head" in r.getMessage()], "the chain head logged", 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    [line] = [r.getMessage() for r in caplog.records if "chain head" in r.getMessage()]  # once: it did not move
    assert main(["audit", "verify", "--format", "json"]) == 0
    kept = json.loads(capsys.readouterr().out)["head"]
    assert f"--expect-head {kept['seq']}:{kept['hash']}" in line
