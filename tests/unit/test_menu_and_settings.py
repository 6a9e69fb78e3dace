from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import SettingsError
from core.settings import load_settings
from ivr.catalogue import load_catalogue
from ivr.errors import MenuError
from ivr.menu import DEFAULT_MENU, load_menu

CAT = load_catalogue()


def test_the_shipped_menu_is_complete_in_both_languages() -> None:
    menu = load_menu(catalogue=CAT)
    for node in menu.nodes.values():
        for pid in node.prompts():
            assert CAT.has(pid, "en"), f"{node.id}: {pid} has no English"
            if pid != "lang.english":
                assert CAT.has(pid, "zh"), f"{node.id}: {pid} has no Mandarin"
    assert {"si", "emp", "lab", "per", "card"} <= set(menu.node("main").options.values())


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_MENU.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "menu.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"1" = "si"', '"1" = "nowhere"', "target 'nowhere' does not exist"),
        ('"1" = "si"', '"0" = "si"', "reserved"),
        ('type = "play"', 'type = "dance"', "unknown type 'dance'"),
        ('validate = "id_number"', 'validate = "passport"', "unknown validator"),
        ('prompt = "goodbye"', 'prompt = "no.such.prompt"', "not in the catalogue"),
        ("retries = 3", "retries = 0", "retries must be"),
    ],
)
def test_a_broken_menu_is_refused_with_a_clear_message(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(MenuError, match=message):
        load_menu(_broken(tmp_path, old, new), CAT)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text('[agi]\nport = 4600\n[database]\nurl = "sqlite:///x.db"\n', encoding="utf-8")
    s = load_settings(cfg, {"HOTLINE_AGI_PORT": "4700", "HOTLINE_AMI_SECRET": "s3"})
    assert s.agi.port == 4700 and s.ami.secret == "s3" and s.database.url == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HOTLINE_AGI_PORT": "seventy"}, "agi.port"),
        ({"HOTLINE_AGI_PORT": "70000"}, "agi.port"),
        ({"HOTLINE_DATABASE_URL": "mysql://x"}, "database.url"),
        ({"HOTLINE_AGI_COLOUR": "blue"}, "agi has no setting 'colour'"),
        ({"HOTLINE_NOPE": "1"}, "unknown setting"),
    ],
)
def test_bad_settings_are_refused_clearly(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, environ)


def test_missing_secret_is_named(tmp_path: Path) -> None:
    s = load_settings(None, {})
    with pytest.raises(SettingsError, match="HOTLINE_AMI_SECRET"):
        s.require_secrets("ami.secret")


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "h.toml"
    cfg.write_text("[agi\nport=1", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(cfg, {})
