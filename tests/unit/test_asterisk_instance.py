"""asterisk.instance: whose Asterisk records these are. The demo, the tests and the
benchmarks share one local root; each gets its own log directory, and the dialplan marks
its calls with it (the CDR accountcode that the monitor's catch-up imports by)."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import pytest

from core.settings import SettingsError, load_settings
from ivr import asterisk
from ivr.asterisk import LocalAsterisk, log_directory
from ivr.asterisk_config import DIALPLANS_DIR, install_local_layout, render, template_values

SECRET = {"HOTLINE_AMI_SECRET": "test-ami-secret-0123456789"}

# What `core show settings` printed here, Asterisk 22.10, for the tests' instance (excerpt).
CORE_SHOW_SETTINGS = """\
* Directories
  -------------
  Configuration file:          /etc/asterisk/asterisk.conf
  Configuration directory:     /etc/asterisk
  Module directory:            /usr/lib/x86_64-linux-gnu/asterisk/modules
  Spool directory:             /var/spool/asterisk
  Log directory:               /var/log/asterisk/tests
  Run/Sockets directory:       /var/run/asterisk
"""


def test_the_doctest() -> None:
    assert doctest.testmod(asterisk).failed == 0


def test_the_running_log_directory_is_read_from_core_show_settings() -> None:
    assert log_directory(CORE_SHOW_SETTINGS) == "/var/log/asterisk/tests"
    assert log_directory("No such command 'core show settings'") is None


def test_each_instance_has_its_own_records(tmp_path: Path) -> None:
    demo = load_settings(
        None, {**SECRET, "HOTLINE_ASTERISK_CACHE_DIR": str(tmp_path), "HOTLINE_ASTERISK_INSTANCE": "demo"}
    )
    bench = load_settings(
        None, {**SECRET, "HOTLINE_ASTERISK_CACHE_DIR": str(tmp_path), "HOTLINE_ASTERISK_INSTANCE": "bench"}
    )
    files = {s.asterisk.instance: (LocalAsterisk(s).queue_log, LocalAsterisk(s).cdr_csv) for s in (demo, bench)}
    root = tmp_path / "asterisk-22-root"
    assert files["demo"] == (
        root / "var/log/asterisk/demo/queue_log",
        root / "var/log/asterisk/demo/cdr-csv/Master.csv",
    )
    assert files["bench"][0] == root / "var/log/asterisk/bench/queue_log"


def test_the_dialplan_marks_calls_into_12333_with_the_instance() -> None:
    settings = load_settings(None, {**SECRET, "HOTLINE_ASTERISK_INSTANCE": "demo"})
    source = DIALPLANS_DIR / "extensions.conf"
    text = render(source.read_text(encoding="utf-8"), template_values(settings), source.name)
    context = text.split("[hotline-12333]", 1)[1].split("\n[", 1)[0]
    marks = [line for line in context.splitlines() if "CHANNEL(accountcode)" in line]
    assert marks == [" same => n,Set(CHANNEL(accountcode)=demo)"]
    # Before the IVR runs: a call the IVR never reached is marked too.
    assert context.index("accountcode") < context.index("Gosub(hotline-agi")


@pytest.mark.parametrize("bad", ["", "Demo", "demo/../etc", "a b", "x" * 33, "-demo"])
def test_an_instance_that_is_no_directory_name_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match=r"asterisk\.instance"):
        load_settings(None, {**SECRET, "HOTLINE_ASTERISK_INSTANCE": bad})


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (make test runs as root)")
def test_the_local_layout_names_the_log_directory_and_makes_it(tmp_path: Path) -> None:
    (tmp_path / "etc/asterisk").mkdir(parents=True)
    install_local_layout(tmp_path, "tests", (os.getuid(), os.getgid()))
    conf = (tmp_path / "etc/asterisk/asterisk.conf").read_text(encoding="utf-8")
    assert "[directories]\nastlogdir => /var/log/asterisk/tests\n" in conf
    assert (tmp_path / "var/log/asterisk/tests/cdr-csv").is_dir()  # cdr_csv writes there, never creates it
