"""AMI places calls through the trunk: `hotline serve` with its AMI component and `hotline
asterisk up` refuse a secret shorter than 16 characters, except in the local demo
(`security.demo`, set by hotline.demo.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import AMI_SECRET_MIN, load_settings
from hotline.cli import main
from ivr import asterisk

ROOT = Path(__file__).resolve().parents[2]
SHORT = "short-secret"  # 12 characters


@pytest.fixture
def short_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no hotline.toml of the developer's
    monkeypatch.setenv("HOTLINE_DATABASE_URL", f"sqlite:///{tmp_path}/t.db")
    monkeypatch.setenv("HOTLINE_SECURITY_PIN_PEPPER", "pepper")
    monkeypatch.setenv("HOTLINE_AMI_SECRET", SHORT)


def test_serve_with_ami_refuses_a_short_secret_naming_the_setting(
    short_secret: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["serve", "--only", "ami"]) == 1
    said = capsys.readouterr().err
    assert "ami.secret (or HOTLINE_AMI_SECRET) has 12 characters: at least 16" in said
    assert not (tmp_path / "t.db").exists()  # refused before anything was opened


def test_asterisk_up_refuses_a_short_secret_before_touching_asterisk(
    short_secret: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def went_on(*_: object) -> bool:
        raise AssertionError("asterisk up went past the secret's check")

    monkeypatch.setattr(asterisk.roots, "require_superuser", lambda: None)
    monkeypatch.setattr(asterisk.roots, "root_present", went_on)
    assert main(["asterisk", "up"]) == 1
    assert "ami.secret (or HOTLINE_AMI_SECRET) has 12 characters" in capsys.readouterr().err


def test_the_demo_and_a_long_enough_secret_are_accepted() -> None:
    demo = load_settings(ROOT / "hotline.demo.toml", {"HOTLINE_AMI_SECRET": SHORT})
    assert demo.security.demo is True
    demo.require_strong_ami_secret()
    site = load_settings(None, {"HOTLINE_AMI_SECRET": "x" * AMI_SECRET_MIN})
    assert site.security.demo is False
    site.require_strong_ami_secret()
