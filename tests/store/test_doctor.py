"""`hotline doctor` says what is wrong with a site, in words, with its exit status: a store
with an intact chain and its schema, a serve that is not running, a chain changed behind
its triggers, a SQLite file that is not there (and is not made), a certificate near or
past its end."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.procs import free_port
from core.audit_log import head
from core.db import Store
from hotline import cli, doctor
from hotline.doctor import Level
from tests.conftest import make_settings
from tests.store.test_audit_chain import _behind_the_triggers, _entry

STORE_CHECKS = (doctor.check_database, doctor.check_serve, doctor.check_audit)


def _levels(findings: list[doctor.Finding]) -> dict[str, Level]:
    out: dict[str, Level] = {}
    for f in findings:
        out[f.check] = max(out.get(f.check, Level.OK), f.level)
    return out


def test_a_sound_store_without_serve_running_is_a_failure_named_as_such(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(1, 4):
        _entry(store, n)
    settings = make_settings(tmp_path, store.url, HOTLINE_WEB_PORT=str(free_port()))
    findings = doctor.run(settings, STORE_CHECKS, expect_head=str(head(store)))
    sqlite = store.engine.dialect.name == "sqlite"  # a warning: PostgreSQL is what a site runs
    # The audit key is not set in these settings: a warning that the seals go unchecked.
    assert _levels(findings) == {
        "database": Level.WARNING if sqlite else Level.OK,
        "serve": Level.FAILURE,
        "audit": Level.WARNING,
    }
    serve = next(f for f in findings if f.check == "serve")
    assert "not running" in serve.message
    audit = next(f for f in findings if f.check == "audit")
    assert "3 rows, chain intact and holds the kept head" in audit.message
    assert doctor.exit_status(findings) == 2


def test_a_chain_changed_behind_its_triggers_fails_the_audit_check(store: Store, tmp_path: Path) -> None:
    for n in range(1, 4):
        _entry(store, n)
    _behind_the_triggers(store, "UPDATE audit_log SET resident_id = 4242 WHERE seq = 2")
    settings = make_settings(tmp_path, store.url)
    [finding] = doctor.run(settings, (doctor.check_audit,))
    assert finding.level is Level.FAILURE and "chain BROKEN at seq 2" in finding.message


def test_a_missing_sqlite_file_is_named_and_not_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.db"
    settings = make_settings(tmp_path, f"sqlite:///{missing}")
    findings = doctor.run(settings, (doctor.check_database, doctor.check_audit, doctor.check_clock))
    assert [f.level for f in findings if f.check in ("database", "audit")] == [Level.FAILURE, Level.FAILURE]
    assert all(f"no SQLite database at {missing}" in f.message for f in findings if f.check == "database")
    assert not missing.exists()


def _certificate(path: Path, not_after: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotline.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=365))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.mark.parametrize(("days", "level"), [(200, Level.OK), (5, Level.WARNING), (-1, Level.FAILURE)])
def test_the_tls_certificate_is_checked_for_its_end(tmp_path: Path, days: int, level: Level) -> None:
    cert = tmp_path / "cert.pem"
    _certificate(cert, dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path}/h.db",
        HOTLINE_SIP_TLS_CERT=str(cert),
        HOTLINE_SIP_TLS_KEY=str(cert.with_suffix(".key")),
    )
    [finding] = doctor.run(settings, (doctor.check_certificate,))
    assert finding.level is level, finding.message


def test_the_command_prints_json_and_exits_with_the_worst_level(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, store.url, HOTLINE_WEB_PORT=str(free_port()))
    monkeypatch.setattr(doctor, "ALL", STORE_CHECKS)
    monkeypatch.setattr(cli, "load_settings", lambda *_a, **_k: settings)
    status = cli.main(["doctor", "--format", "json"])
    answer = json.loads(capsys.readouterr().out)
    assert status == answer["status"] == 2
    seen = {(f["check"], f["level"]) for f in answer["findings"]}
    assert {("database", "ok"), ("serve", "failure"), ("audit", "ok")} <= seen


def test_a_store_without_its_schema_fails_every_check_that_reads_it_and_the_rest_still_run(
    db_url: str, tmp_path: Path
) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()  # there, but empty
    settings = make_settings(tmp_path, db_url)
    findings = doctor.run(settings, (doctor.check_database, doctor.check_phones, doctor.check_disk))
    levels = _levels(findings)
    assert levels["database"] is Level.FAILURE and levels["phones"] is Level.FAILURE
    assert "disk" in levels
    database = next(f for f in findings if f.check == "database")
    assert "hotline db upgrade" in database.message
