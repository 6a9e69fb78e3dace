"""A directory bound into the Asterisk root: Asterisk's to write, and, when a site gave it
a group of its own (hotline install: `hotline`), still that group's to write too."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ivr.asterisk_root import share_with_asterisk

ASTERISK = (64010, 64010)  # the root's asterisk account, as the host sees its ids
HOTLINE = 64020  # the group hotline install gives the data directories

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (make test runs as root)")


def test_a_root_owned_directory_becomes_asterisks(tmp_path: Path) -> None:
    made = tmp_path / "recordings"
    made.mkdir(mode=0o755)
    share_with_asterisk(made, ASTERISK)
    info = made.stat()
    assert (info.st_uid, info.st_gid) == ASTERISK
    assert stat.S_IMODE(info.st_mode) == 0o755


def test_a_directory_of_the_hotline_group_stays_the_groups_to_write(tmp_path: Path) -> None:
    made = tmp_path / "recordings"
    made.mkdir(mode=0o750)
    os.chown(made, 0, HOTLINE)
    share_with_asterisk(made, ASTERISK)
    info = made.stat()
    assert (info.st_uid, info.st_gid) == (ASTERISK[0], HOTLINE)
    assert stat.S_IMODE(info.st_mode) == 0o2770  # group-writable; setgid: new files are the group's
    (made / "call.wav").write_bytes(b"RIFF")
    assert (made / "call.wav").stat().st_gid == HOTLINE
