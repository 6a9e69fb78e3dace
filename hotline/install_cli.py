"""`hotline install|uninstall [--root DIR] [--dry-run]`: the thin executor of the plans
in hotline/install.py (docs/operations.md, "Running it on a server")."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import HotlineError, SettingsError
from core.settings import Settings, load_settings
from hotline.install import UNIT_DIR, Action, Facts, Kind, install_plan, uninstall_plan
from hotline.install_config import Secrets
from hotline.units import ALL_UNIT_FILES, Layout

# A command of the plan that hangs (a PostgreSQL that does not answer) fails the install.
COMMAND_TIMEOUT_S = 300.0


class InstallFailed(HotlineError):
    """A step of `hotline install` or `uninstall` failed; the message says which."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, help_text in (
        ("install", "install as Debian services: user, /etc/hotline/hotline.toml, systemd units, PostgreSQL"),
        ("uninstall", "remove the systemd units (settings, data and the database stay)"),
    ):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("--dry-run", action="store_true", help="print every action and change nothing")
        s.add_argument(
            "--root",
            type=Path,
            metavar="DIR",
            help="put the files under DIR (every path prefixed); no user, PostgreSQL or systemctl",
        )
        s.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    root: Path | None = args.root.resolve() if args.root is not None else None
    if root is None and not args.dry_run and os.geteuid() != 0:
        print(f"hotline {args.command}: needs root (or --dry-run, or --root DIR)", file=sys.stderr)
        return 2
    program = installed_program()
    if program is None:
        print(f"hotline {args.command}: cannot find the `hotline` program beside {sys.executable}", file=sys.stderr)
        return 2
    layout = Layout(program=program)
    facts = read_facts(layout, root)
    if args.command == "install":
        plan = install_plan(settings, layout, facts, Secrets.generate(), dt.datetime.now(dt.UTC))
        needs_psql = any(a.run_as == "postgres" for a in plan)
        if needs_psql and root is None and not args.dry_run and shutil.which("psql") is None:
            print("hotline install: PostgreSQL is not installed: apt-get install postgresql", file=sys.stderr)
            return 2
    else:
        plan = uninstall_plan(layout, facts)
    try:
        apply(plan, root, dry_run=args.dry_run)
    except InstallFailed as exc:
        print(f"hotline {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def installed_program() -> Path | None:
    """The `hotline` script of this interpreter's environment (what the units start)."""
    beside = Path(sys.executable).parent / "hotline"
    if beside.is_file():
        return beside
    found = shutil.which("hotline")
    return Path(found).resolve() if found else None


def under(root: Path | None, path: Path) -> Path:
    return path if root is None else root / path.relative_to("/")


def _exists(path: Path) -> bool:
    """Whether something is there; a directory we may not search (--dry-run as a user,
    /etc/hotline is root:hotline 0750) counts as holding it."""
    try:
        return path.exists()
    except PermissionError:
        return True


def read_facts(layout: Layout, root: Path | None) -> Facts:
    config = under(root, layout.config)
    installed = None
    exists = _exists(config)
    if exists:
        try:
            installed = load_settings(config, environ={})
        except (SettingsError, OSError):
            installed = None  # unreadable here (--dry-run as a user): units from the current settings
    try:
        pwd.getpwnam(layout.user)
        user_exists = True
    except KeyError:
        user_exists = False
    units = tuple(n for n in ALL_UNIT_FILES if _exists(under(root, UNIT_DIR / n)))
    return Facts(exists, installed, user_exists, units)


def apply(plan: Sequence[Action], root: Path | None, *, dry_run: bool, out: Callable[[str], None] = print) -> None:
    """Carry out the plan in order (or only print it); InstallFailed at the first failure."""
    if root is not None:
        out(f"working under {root}: owners are not set, system actions are skipped")
    for action in plan:
        line = _masked(action.describe(), action.mask)  # plans put no secret in argv; in case one does
        if action.kind is Kind.NOTE:
            out(line)
        elif dry_run:
            out(f"would {'skip (--root)' if action.system and root is not None else 'do'}: {line}")
        elif action.system and root is not None:
            out(f"skipped (--root): {line}")
        else:
            out(_do(action, root) + line)


def _do(action: Action, root: Path | None) -> str:
    """Carry out one action; returns the word that starts its line."""
    assert action.kind is Kind.COMMAND or action.kind is Kind.USER or action.path is not None
    if action.kind in (Kind.COMMAND, Kind.USER):
        _command(action)
        return "done: "
    assert action.path is not None
    target = under(root, action.path)
    if action.kind is Kind.REMOVE:
        return _remove(target)
    owner = None if root is not None else (action.owner, action.group)
    assert action.mode is not None
    if action.kind is Kind.DIRECTORY:
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(action.mode)
        if owner is not None:
            shutil.chown(target, *owner)
        return "ready: "
    return "wrote: " if _write(target, action, owner) else "kept (exists): "


def _write(target: Path, action: Action, owner: tuple[str, str] | None) -> bool:
    """Write the file with its mode from the start (a secret is never readable by others,
    not even for a moment); False if it exists and may not be replaced."""
    assert action.mode is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.new")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, action.mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), action.mode)  # the umask may have taken bits off
        if owner is not None:
            shutil.chown(temp, *owner)
        f.write(action.text)
    if action.replace:
        temp.replace(target)
        return True
    try:
        os.link(temp, target)  # atomic, and fails if the file appeared meanwhile
    except FileExistsError:
        return False
    finally:
        temp.unlink()
    return True


def _remove(target: Path) -> str:
    if target.is_dir():
        try:
            target.rmdir()
        except OSError:
            return "kept (not empty): "
        return "removed: "
    if not target.exists():
        return "absent: "
    target.unlink()
    return "removed: "


def _command(action: Action) -> None:
    argv = list(action.argv)
    if action.run_as:
        argv = ["runuser", "-u", action.run_as, "--", *argv]
    try:
        done = subprocess.run(
            argv,
            input=action.stdin or None,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
            cwd=action.cwd,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallFailed(f"{action.what}: {argv[0]}: {exc}") from None
    said = _masked(done.stdout + done.stderr, action.mask).strip()
    if done.returncode != 0:
        raise InstallFailed(f"{action.what}: exit {done.returncode}: {said[-2000:]}")
    if said:
        print(said)


def _masked(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
