"""The rooms of DESIGN.md: imports only run downwards, and the rooms on one floor never
import each other (a voice message is a row, not a call into `cases`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAY_IMPORT = {
    "core": set(),
    "ivr": {"core"},
    "sms": {"core"},
    "cases": {"core"},
    "reports": {"core"},
    "console": {"ivr", "sms", "cases", "reports", "core"},
    "hotline": {"console", "ivr", "sms", "cases", "reports", "core"},
}


def _imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        rooms.update(name.split(".")[0] for name in names if name.split(".")[0] in MAY_IMPORT)
    return rooms


@pytest.mark.parametrize("room", sorted(MAY_IMPORT))
def test_room_imports_only_what_design_allows(room: str) -> None:
    wrong = {}
    for path in sorted((ROOT / room).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        bad = _imported_rooms(path) - MAY_IMPORT[room] - {room}
        if bad:
            wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}, f"{room} imports rooms DESIGN.md does not allow: {wrong}"
