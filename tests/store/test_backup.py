"""`hotline backup` and `hotline restore` on SQLite and PostgreSQL: a store with calls, SMS,
work orders, audit entries and recordings goes into a backup and comes back on an empty
server with the same audit head, the same report and the same recording bytes; a second
backup links unchanged recordings; a tampered backup and a non-empty target are refused
before anything changes."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from cases.orders import create_order
from core import audit
from core.db import Store
from core.settings import load_settings
from hotline import simulate
from hotline.backup_store import kind_of as site_kind
from hotline.backup_store import tables
from hotline.cli import main
from reports import render
from reports.period import parse_period
from reports.report import build
from tests.conftest import PEPPER, PG_URL, _fresh_pg_database, postgres_only
from tests.recording_files import add_recording, add_voice_message, write_wav

pytestmark = pytest.mark.postgres
FIRST, LAST = dt.date(2026, 11, 2), dt.date(2026, 11, 8)
ZONE = "Asia/Shanghai"
AT = dt.datetime(2026, 11, 3, 2, 0, tzinfo=dt.UTC)
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def _point_at(monkeypatch: pytest.MonkeyPatch, url: str, recordings: Path) -> None:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", url)
    monkeypatch.setenv("HOTLINE_RECORDINGS_DIR", str(recordings))


@pytest.fixture
def site(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The source server: simulated calls and SMS, two work orders, audit entries, two call
    recordings and a voice message. Returns its recordings directory."""
    recordings = tmp_path / "recordings"
    monkeypatch.setenv("HOTLINE_SECURITY_PIN_PEPPER", PEPPER)
    monkeypatch.setenv("HOTLINE_QUEUE_TIMEZONE", ZONE)
    _point_at(monkeypatch, store.url, recordings)
    written = simulate.simulate(store, FIRST, LAST, ZONE, simulate.Traffic(calls_per_day=30, messages_per_day=20))
    assert written["calls"] > 50 and written["messages"] > 50
    add_recording(store, recordings, "rec-1", at=AT, seconds=1.0)
    add_recording(store, recordings, "rec-2", at=AT + dt.timedelta(hours=1), seconds=0.5)
    add_voice_message(store, recordings, "vm-1", at=AT, seconds=0.5)
    settings = load_settings(None)
    for summary in ("社保卡补办流程", "养老金到账查询"):
        create_order(store, settings, kind="call", category="how_to", summary=summary, created_by="cli:test")
    with store.transaction() as c:
        audit.record(c, actor="ivr", action="read:pension", resident_id=None, call_id="sim-call")
        audit.record(c, actor="console:1001", action="view:screen_pop", resident_id=None, call_id="sim-call")
    return recordings


@pytest.fixture
def empty_url(db_url: str, tmp_path: Path) -> str:
    """A database of the same kind as the source's, with nothing in it."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/restored/hotline.db"
    return _fresh_pg_database()


def _report() -> dict[str, Any]:
    """The supervisors' report of the simulated week as `hotline report --format json` gives
    it (its function: the command leaves its store's connections to the garbage collector)."""
    settings = load_settings(None)
    store = Store(settings.database.url)
    try:
        period = parse_period(FIRST.isoformat(), LAST.isoformat(), ZONE)
        data: dict[str, Any] = json.loads(render.as_json(build(store, period, settings.queue)))
    finally:
        store.dispose()
    data.pop("generated_at")
    return data


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _head(cli: Cli) -> str:
    code, out, err = cli("audit", "verify", "--format", "json")
    assert code == 0, err
    head = json.loads(out)["head"]
    return f"{head['seq']}:{head['hash']}"


def test_a_restore_onto_an_empty_server_holds_the_same_chain_report_and_recordings(
    site: Path, empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    report = _report()
    assert report["simulated_calls"] > 50 and report["casework"] and report["sms"]
    head = _head(cli)
    code, out, err = cli("backup", str(tmp_path / "b1"))
    assert code == 0, err
    assert f"audit head {head}" in out
    assert (tmp_path / "b1" / "audit-head.txt").read_text() == head + "\n"

    # Not into a database of the other kind (checked before connecting to it).
    other_kind = (
        "postgresql+psycopg://nobody@127.0.0.1:1/none"
        if site_kind(empty_url) == "sqlite"
        else f"sqlite:///{tmp_path}/x.db"
    )
    _point_at(monkeypatch, other_kind, tmp_path / "elsewhere")
    code, _, err = cli("restore", str(tmp_path / "b1"))
    assert code == 2 and "same kind of database" in err
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "elsewhere").exists()

    restored = tmp_path / "restored-recordings"
    _point_at(monkeypatch, empty_url, restored)
    code, out, err = cli("restore", str(tmp_path / "b1"))
    assert code == 0, err
    assert f"hotline audit verify --expect-head {head}" in out
    code, out, err = cli("audit", "verify", "--expect-head", head)
    assert code == 0, err
    assert f"head {head}" in out
    assert _report() == report
    assert _files(restored) == _files(site)
    assert len(_files(restored)) == 3


def test_a_second_backup_links_unchanged_recordings_and_copies_a_new_one(
    site: Path, tmp_path: Path, cli: Cli, store: Store
) -> None:
    backups = tmp_path / "backups"
    assert cli("backup", str(backups / "day1"))[0] == 0
    add_recording(store, site, "rec-3", at=AT + dt.timedelta(days=1), seconds=0.7)
    code, out, err = cli("backup", str(backups / "day2"))
    assert code == 0, err
    assert "1 recordings copied" in out and "3 linked to ../day1" in out
    day1, day2 = _files(backups / "day1" / "recordings"), _files(backups / "day2" / "recordings")
    assert set(day2) == set(day1) | {f"calls/{(AT + dt.timedelta(days=1)).date()}/rec-3.wav"}
    for name in day2:
        new = (backups / "day2" / "recordings" / name).stat()
        if name in day1:
            assert new.st_ino == (backups / "day1" / "recordings" / name).stat().st_ino, name
        else:
            assert new.st_nlink == 1
    # Private: the settings in it carry the secrets (the PIN pepper here).
    assert PEPPER in (backups / "day2" / "config" / "settings.json").read_text()
    for path in (backups / "day2").rglob("*"):
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    assert stat.S_IMODE((backups / "day2").stat().st_mode) == 0o700
    manifest = json.loads((backups / "day2" / "manifest.json").read_text())
    assert manifest["since"] == "../day1" and manifest["schema_revision"]
    assert {f["path"] for f in manifest["files"]} == {
        str(p.relative_to(backups / "day2")) for p in (backups / "day2").rglob("*") if p.is_file()
    } - {"manifest.json"}
    assert cli("backup", "--verify", str(backups / "day2"))[0] == 0


@pytest.mark.parametrize("victim", ["recording", "store"])
def test_a_tampered_backup_fails_verify_and_restore_before_anything_changes(
    site: Path, empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli, victim: str
) -> None:
    backup = tmp_path / "b1"
    assert cli("backup", str(backup))[0] == 0
    manifest = json.loads((backup / "manifest.json").read_text())
    name = manifest["database_file"] if victim == "store" else f"recordings/calls/{AT.date()}/rec-1.wav"
    data = bytearray((backup / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: only the sha256 tells
    (backup / name).write_bytes(bytes(data))

    code, _, err = cli("backup", "--verify", str(backup))
    assert code == 1 and f"{name}: sha256 differs" in err
    restored = tmp_path / "restored-recordings"
    _point_at(monkeypatch, empty_url, restored)
    code, _, err = cli("restore", str(backup))
    assert code == 1 and f"{name}: sha256 differs" in err
    assert not restored.exists()
    assert tables(empty_url) == []


def test_a_restore_onto_a_server_with_data_is_refused_unless_forced(
    site: Path, store: Store, empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    assert cli("backup", str(tmp_path / "b1"))[0] == 0
    head = (tmp_path / "b1" / "audit-head.txt").read_text().strip()
    with store.transaction() as c:
        audit.record(c, actor="ivr", action="read:medical", resident_id=None, call_id="after-backup")
    later = _head(cli)
    code, _, err = cli("restore", str(tmp_path / "b1"))
    assert code == 2 and "the database holds" in err and "--force" in err
    assert _head(cli) == later  # nothing changed

    # An empty database, but recordings left in the directory: refused too.
    leftover = write_wav(tmp_path / "busy" / "calls" / "old.wav", 0.1)
    _point_at(monkeypatch, empty_url, tmp_path / "busy")
    code, _, err = cli("restore", str(tmp_path / "b1"))
    assert code == 2 and "recordings directory" in err and "is not empty" in err
    assert tables(empty_url) == [] and os.listdir(tmp_path / "busy" / "calls") == [leftover.name]

    _point_at(monkeypatch, store.url, site)
    store.dispose()  # the fixture's pooled connections: not in the way of the restore
    code, _, err = cli("restore", "--force", str(tmp_path / "b1"))
    assert code == 0, err
    assert cli("audit", "verify", "--expect-head", head)[0] == 0  # the entry after the backup is gone


def test_a_backup_goes_into_a_new_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    _point_at(monkeypatch, f"sqlite:///{tmp_path}/hotline.db", tmp_path / "recordings")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    code, _, err = cli("backup", str(tmp_path / "used"))
    assert code == 2 and "not an empty directory" in err
    assert os.listdir(tmp_path / "used") == ["x"]


# PostgreSQL's roles and extensions.
@postgres_only
def test_a_database_owner_restores_where_a_superuser_created_pg_trgm(
    db_url: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    """The site's usual PostgreSQL: the hotline's user owns the database and is no superuser,
    and pg_trgm was created by a superuser beforehand (operations.md, "Migration 0023"). Only
    the extension's owner may COMMENT ON or DROP it, which the dump carries."""
    request.getfixturevalue("site")
    assert cli("backup", str(tmp_path / "b1"))[0] == 0
    head = (tmp_path / "b1" / "audit-head.txt").read_text().strip()
    role, database = f"r_{uuid.uuid4().hex[:10]}", f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", hide_parameters=True)
    with admin.connect() as c:
        c.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'secret-{role}'"))
        c.execute(text(f'CREATE DATABASE "{database}" OWNER {role}'))
    site_url = PG_URL.rsplit("/", 1)[0] + "/" + database
    superuser = create_engine(site_url, isolation_level="AUTOCOMMIT", hide_parameters=True)
    with superuser.connect() as c:
        c.execute(text("CREATE EXTENSION pg_trgm"))
    superuser.dispose()
    owner_url = site_url.replace("://hotline@", f"://{role}:secret-{role}@")
    try:
        _point_at(monkeypatch, owner_url, tmp_path / "restored")
        code, _, err = cli("restore", str(tmp_path / "b1"))
        assert code == 0, err
        assert cli("audit", "verify", "--expect-head", head)[0] == 0
        code, _, err = cli("restore", "--force", str(tmp_path / "b1"))
        assert code == 0, err
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            c.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()
