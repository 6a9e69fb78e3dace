"""`hotline install|uninstall`: the units systemd accepts, the tree under --root with its
modes, a hotline.toml that loads with strong secrets and is never overwritten, --dry-run
changing nothing, and the serve unit's command line being one the CLI runs."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from core.cluster_settings import ClusterNode, ClusterSettings
from core.settings import AMI_SECRET_MIN, AUDIT_KEY_MIN, Settings, load_settings
from hotline import cli, install_cli
from hotline.install_config import Secrets, toml_text
from hotline.units import ASTERISK, BANS_DROPIN, CLUSTER, SERVE, Layout, render_units, serve_stop_timeout_s

REPO = Path(__file__).resolve().parents[2]
PROGRAM = Path(sys.executable).parent / "hotline"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


def _settings(**env: str) -> Settings:
    return load_settings(None, {"HOTLINE_AMI_SECRET": "x" * 24, **env})


def _cluster_settings() -> Settings:
    node = ClusterNode(name="node1", address="10.0.0.11")
    cluster = ClusterSettings(enabled=True, edge_address="10.0.0.10", nodes=(node,))
    return _settings().model_copy(update={"cluster": cluster})


def _verify(unit_dir: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    files = sorted(str(p) for p in unit_dir.iterdir())
    return subprocess.run([SYSTEMD_ANALYZE, "verify", *files], capture_output=True, text=True, timeout=30)


def _write_units(units: dict[str, str], unit_dir: Path) -> None:
    """Each unit as a file; a drop-in is appended to its unit, as systemd merges it (verify
    reads unit files only, not drop-in directories outside its search path)."""
    unit_dir.mkdir()
    for name, text in units.items():
        if "/" not in name:
            (unit_dir / name).write_text(text, encoding="utf-8")
    for name, text in units.items():
        if "/" in name:
            unit = unit_dir / name.split("/")[0].removesuffix(".d")
            unit.write_text(unit.read_text(encoding="utf-8") + text, encoding="utf-8")


@needs_systemd_analyze
@pytest.mark.parametrize("kind", ["single", "cluster"])
def test_rendered_units_pass_systemd_analyze_verify(kind: str, tmp_path: Path) -> None:
    settings = _cluster_settings() if kind == "cluster" else _settings()
    units = render_units(settings, Layout(program=PROGRAM))
    expected = {SERVE, CLUSTER} if kind == "cluster" else {SERVE, ASTERISK, BANS_DROPIN}
    assert set(units) == expected
    _write_units(units, tmp_path / "units")
    done = _verify(tmp_path / "units")
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_systemd_analyze
def test_systemd_analyze_verify_catches_a_bad_unit(tmp_path: Path) -> None:
    """The check above can fail: a program that is not there, a misspelt setting."""
    units = render_units(_settings(), Layout(program=tmp_path / "no-such-hotline"))
    units[SERVE] = units[SERVE].replace("Restart=on-failure", "Restart=sometimes")
    _write_units(units, tmp_path / "units")
    done = _verify(tmp_path / "units")
    assert done.returncode != 0
    assert "no-such-hotline" in done.stderr and "sometimes" in done.stderr


def _directives(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def test_serve_unit_runs_a_command_line_the_cli_accepts() -> None:
    units = render_units(_settings(), Layout(program=PROGRAM))
    serve = units[SERVE]
    [exec_start] = _directives(serve, "ExecStart")
    argv = shlex.split(exec_start)
    assert argv[0] == str(PROGRAM) and PROGRAM.is_file()
    args = cli.parser().parse_args(argv[1:])
    assert args.func is cli.cmd_serve and args.only is None and args.workers is None
    assert _directives(serve, "Environment") == ["HOTLINE_CONFIG=/etc/hotline/hotline.toml"]
    assert _directives(serve, "User") == ["hotline"]
    assert _directives(serve, "TimeoutStopSec") == [str(serve_stop_timeout_s())]
    assert "hotline-asterisk.service" in _directives(serve, "After")[0].split()
    asterisk = units[ASTERISK]
    for key, action in (("ExecStart", "up"), ("ExecStop", "down")):
        [line] = _directives(asterisk, key)
        parsed = cli.parser().parse_args(shlex.split(line)[1:])
        assert (parsed.func, parsed.action) == (cli.cmd_asterisk, action)


def test_serve_unit_of_a_cluster_waits_for_the_cluster() -> None:
    serve = render_units(_cluster_settings(), Layout(program=PROGRAM))[SERVE]
    assert _directives(serve, "Wants")[0].split()[-1] == CLUSTER


def _install(root: Path, *extra: str, config: Path | None = None) -> int:
    argv = ["--config", str(config)] if config is not None else []
    return cli.main([*argv, "install", "--root", str(root), *extra])


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_under_root_makes_the_tree_with_its_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert _install(root, config=REPO / "hotline.demo.toml") == 0
    out = capsys.readouterr().out
    config = root / "etc/hotline/hotline.toml"
    assert _mode(config) == 0o640 and _mode(config.parent) == 0o750
    for name in ("", "recordings", "notice-speech", "asterisk"):
        assert _mode(root / "var/lib/hotline" / name) == 0o750
    units = root / "etc/systemd/system"
    assert sorted(str(p.relative_to(units)) for p in units.rglob("*.conf")) == [BANS_DROPIN]
    for name in (SERVE, ASTERISK, BANS_DROPIN):
        assert _mode(units / name) == 0o644
    for skipped in ("useradd", "psql", "systemctl daemon-reload", "db upgrade"):
        assert any(line.startswith("skipped (--root)") and skipped in line for line in out.splitlines()), skipped

    settings = load_settings(config, environ={})
    assert not settings.security.demo  # the demo's file was the current settings; never a server's
    settings.require_strong_ami_secret()
    assert len(settings.ami.secret) >= AMI_SECRET_MIN and len(settings.security.audit_key) >= AUDIT_KEY_MIN
    assert len(settings.security.pin_pepper) >= 32 and len(settings.sip.softphone_secret) >= 32
    assert settings.database.url.startswith("postgresql+psycopg://hotline:")
    assert settings.recordings.dir == Path("/var/lib/hotline/recordings")
    assert settings.asterisk.cache_dir == Path("/var/lib/hotline/asterisk")
    demo = tomllib.loads((REPO / "hotline.demo.toml").read_text(encoding="utf-8"))
    assert settings.ami.secret != demo["ami"]["secret"]
    assert settings.web.metrics_token != demo["web"]["metrics_token"]
    assert not settings.hotline12345.enabled and not settings.hotline12345.counterparts  # the demo's published key
    assert settings.cmpp.secret == "" and settings.cmpp.sp_id == demo["cmpp"]["sp_id"]  # nor its CMPP secret
    assert settings.sip.trunks == load_settings(REPO / "hotline.demo.toml", environ={}).sip.trunks  # carried over
    # Secrets only in hotline.toml: not in a unit, not in what install printed.
    password = settings.database.url.split(":")[2].split("@")[0]
    secret_values = (settings.ami.secret, settings.security.pin_pepper, settings.security.audit_key, password)
    for unit in (p for p in units.rglob("*") if p.is_file()):
        text = unit.read_text(encoding="utf-8")
        assert not any(s in text for s in secret_values), unit
    assert not any(s in out for s in secret_values)


def test_install_never_overwrites_hotline_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert _install(root) == 0
    config = root / "etc/hotline/hotline.toml"
    first = config.read_text(encoding="utf-8")
    assert _install(root) == 0
    assert config.read_text(encoding="utf-8") == first
    assert "kept /etc/hotline/hotline.toml" in capsys.readouterr().out
    assert Secrets.generate() != Secrets.generate()


def test_dry_run_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert _install(root, "--dry-run") == 0
    assert list(root.iterdir()) == []
    out = capsys.readouterr().out
    assert "would do: settings with fresh secrets: /etc/hotline/hotline.toml (0640 root:hotline)" in out
    etc_before = Path("/etc/hotline").exists(), Path("/etc/systemd/system/hotline-serve.service").exists()
    assert cli.main(["install", "--dry-run"]) == 0
    assert (Path("/etc/hotline").exists(), Path("/etc/systemd/system/hotline-serve.service").exists()) == etc_before


def test_install_needs_root_without_root_or_dry_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(install_cli.os, "geteuid", lambda: 1000)
    # Were the check gone, nothing may reach this machine's /etc from a test.
    monkeypatch.setattr(install_cli, "apply", lambda *args, **kwargs: pytest.fail("a plan was applied"))
    assert cli.main(["install"]) == 2
    assert cli.main(["uninstall"]) == 2
    assert "needs root (or --dry-run, or --root DIR)" in capsys.readouterr().err


def test_uninstall_removes_the_units_and_keeps_settings_and_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    assert _install(root) == 0
    (root / "var/lib/hotline/recordings/r1.wav").write_bytes(b"RIFF")
    assert cli.main(["uninstall", "--root", str(root)]) == 0
    assert list((root / "etc/systemd/system").iterdir()) == []
    assert (root / "etc/hotline/hotline.toml").is_file()
    assert (root / "var/lib/hotline/recordings/r1.wav").read_bytes() == b"RIFF"
    out = capsys.readouterr().out
    assert "skipped (--root): stop and disable: systemctl disable --now" in out
    assert "left in place: /etc/hotline" in out


def test_toml_text_writes_what_settings_read() -> None:
    data = {"sip": {"departments": {"hotline-labour": "8002"}, "trunks": [{"name": "a", "match": ["10.0.0.1"]}]}}
    data["cases"] = {"departments": ["养老保险", 'a "quoted" one']}
    assert tomllib.loads(toml_text(data)) == data


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_installed_serve_unit_starts_and_answers_healthz(tmp_path: Path) -> None:
    """The serve unit's ExecStart with its Environment and WorkingDirectory, the installed
    hotline.toml, and only the database, ports and directories moved to temporary places."""
    import json
    import urllib.error
    import urllib.request

    root = tmp_path / "root"
    assert _install(root) == 0
    unit = (root / "etc/systemd/system" / SERVE).read_text(encoding="utf-8")
    [exec_start] = _directives(unit, "ExecStart")
    [environment] = _directives(unit, "Environment")
    config = environment.split("=", 1)[1]
    web_port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")},
        "HOTLINE_CONFIG": str(root / config.lstrip("/")),
        "HOTLINE_DATABASE_URL": f"sqlite:///{tmp_path}/hotline.db",
        "HOTLINE_WEB_PORT": str(web_port),
        "HOTLINE_AGI_PORT": str(_free_port()),
        "HOTLINE_AMI_PORT": str(_free_port()),
        "HOTLINE_SMPP_PORT": str(_free_port()),
        "HOTLINE_ASTERISK_CACHE_DIR": str(tmp_path / "asterisk"),
        "HOTLINE_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "HOTLINE_NOTICES_SPEECH_DIR": str(tmp_path / "speech"),
    }
    workdir = root / _directives(unit, "WorkingDirectory")[0].lstrip("/")
    proc = subprocess.Popen(
        shlex.split(exec_start), env=env, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        assert "hotline serve: ready" in proc.stdout.readline()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/healthz", timeout=5) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:  # 503: a component (AMI: no Asterisk here) is down
            assert exc.code == 503
            body = json.loads(exc.read())
        assert "components" in body or "ok" in body
    finally:
        proc.terminate()
        proc.wait(serve_stop_timeout_s())
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0


def test_a_command_runs_where_it_is_told_and_never_prints_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hotline.install import Action, Kind

    script = 'echo "url postgresql://hotline:s3cret-pw@localhost"; pwd; test -z "$FAIL" || exit 3'
    action = Action(Kind.COMMAND, "a step", argv=("sh", "-c", script), mask=("s3cret-pw",), cwd=tmp_path)
    install_cli.apply([action], None, dry_run=False)
    out = capsys.readouterr().out
    assert "hotline:***@localhost" in out and str(tmp_path) in out and "s3cret-pw" not in out
    failing = Action(Kind.COMMAND, "a step", argv=("sh", "-c", f"FAIL=1; {script}"), mask=("s3cret-pw",))
    with pytest.raises(install_cli.InstallFailed, match=r"a step: exit 3: url postgresql://hotline:\*\*\*@") as exc:
        install_cli.apply([failing], None, dry_run=False)
    assert "s3cret-pw" not in str(exc.value)
