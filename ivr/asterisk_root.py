"""The Debian root that the local Asterisk 22 runs in (DESIGN.md, "Real parts").

Bookworm has no Asterisk, so `debootstrap` builds a minimal Debian sid with the
`asterisk` packages under the cache directory; `/proc`, `/dev` and `/dev/pts` are bound
into it and Asterisk runs chrooted, sharing the host's network namespace.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Final

from ivr.errors import AsteriskConfigError, AsteriskError, AsteriskNotInstalled, AsteriskProvisionFailed

logger = logging.getLogger(__name__)

ROOT_NAME: Final = "asterisk-22-root"
PARTIAL_SUFFIX: Final = ".partial"
PACKAGES: Final = ("asterisk", "asterisk-modules")
ASTERISK_BINARY: Final = "/usr/sbin/asterisk"
# Mounted in this order, unmounted in reverse. A plain --bind of /dev leaves out its
# submounts, hence dev/pts on its own.
BIND_MOUNTS: Final = ("proc", "dev", "dev/pts")
_MAX_SYMLINK_HOPS: Final = 40
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_DEBOOTSTRAP_STAGE = re.compile(
    r"I: (Retrieving (In)?Release|Checking|Valid Release|Resolving|Found|Installing|"
    r"(Unpacking|Configuring) (the|required)|Base system)"
)


def root_path(cache_dir: Path) -> Path:
    """Where the root lives: `<cache_dir>/asterisk-22-root`, symlinks resolved."""
    return cache_dir.expanduser().resolve() / ROOT_NAME


def root_present(root: Path) -> bool:
    return resolve_in_root(root, ASTERISK_BINARY).is_file()


def require_superuser() -> None:
    if os.geteuid() != 0:
        raise AsteriskError("the local Asterisk needs root (debootstrap, mount, chroot): run as root")


def provision(root: Path, suite: str, mirror: str, log_path: Path) -> None:
    """Build the root with debootstrap into `<root>.partial`, renamed only on success."""
    tool = shutil.which("debootstrap")
    if tool is None:
        raise AsteriskNotInstalled("debootstrap is not installed: apt-get install debootstrap")
    partial = root.with_name(root.name + PARTIAL_SUFFIX)
    if partial.exists():
        logger.info("removing half-built root %s", partial)
        remove_tree(partial)
    command = [tool, "--variant=minbase", "--include=" + ",".join(PACKAGES), suite, str(partial), mirror]
    logger.info("building the Asterisk root %s: debootstrap %s from %s (about a minute)", root, suite, mirror)
    returncode = _run_logged(command, log_path)
    unmount_under(partial)  # debootstrap normally unmounts its /proc and /sys, even on failure
    if returncode != 0:
        raise AsteriskProvisionFailed(
            f"debootstrap exited with {returncode}; its output is in {log_path}:\n{tail(log_path)}"
        )
    if not root_present(partial):
        raise AsteriskProvisionFailed(f"debootstrap succeeded but {partial} has no {ASTERISK_BINARY}")
    partial.rename(root)
    logger.info("Asterisk root ready at %s", root)


def _run_logged(command: list[str], log_path: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        log_path.open("w", encoding="utf-8") as log_file,
        subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            logger.log(_debootstrap_level(line), "debootstrap: %s", line.rstrip())
    return process.returncode


def _debootstrap_level(line: str) -> int:
    """Stage lines ("I: Installing core packages...") at INFO, per-package lines at DEBUG."""
    if line.startswith(("W:", "E:")):
        return logging.WARNING
    if _DEBOOTSTRAP_STAGE.match(line):
        return logging.INFO
    return logging.DEBUG


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def remove_tree(path: Path) -> None:
    """Delete a root, refusing while anything is mounted in it (a bound /dev would go too)."""
    unmount_under(path)
    still = mounts_under(path)
    if still:
        raise AsteriskError(f"refusing to delete {path}: still mounted: {', '.join(map(str, still))}")
    shutil.rmtree(path)


def mount_points() -> list[Path]:
    """Every mount point of this mount namespace, from /proc/self/mountinfo (proc(5))."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        field = line.split(" ")[4]
        points.append(Path(_OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)))
    return points


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest first (the order to unmount them)."""
    inside = [p for p in mount_points() if p == path or path in p.parents]
    return sorted(set(inside), key=lambda p: len(p.parts), reverse=True)


def mount_root(root: Path) -> None:
    """Bind /proc, /dev and /dev/pts into the root; already-bound ones are left alone."""
    present = set(mount_points())
    for name in BIND_MOUNTS:
        target = root / name
        if target in present:
            continue
        target.mkdir(parents=True, exist_ok=True)
        _run(["mount", "--bind", f"/{name}", str(target)])
        logger.debug("bound /%s into %s", name, root)


def bind_directory(root: Path, source: Path, inner: str, owner: tuple[int, int]) -> None:
    """Bind a host directory (recordings) at `inner` in the root, owned by Asterisk's account
    there so it may write; left alone when already bound."""
    source.mkdir(parents=True, exist_ok=True)
    share_with_asterisk(source, owner)
    target = root / PurePosixPath(inner).relative_to("/")
    if target in set(mount_points()):
        return
    target.mkdir(parents=True, exist_ok=True)
    _run(["mount", "--bind", str(source.resolve()), str(target)])
    logger.debug("bound %s at %s in %s", source, inner, root)


def share_with_asterisk(source: Path, owner: tuple[int, int]) -> None:
    """Make `source` Asterisk's to write. A directory given to a group of its own (`hotline
    install` gives the recordings and the notice speech to the `hotline` group) keeps that
    group, writable and setgid: `hotline serve`, running as `hotline`, deletes recordings
    past their retention and writes notice speech there, and what Asterisk writes inherits
    the group. A directory of root's group (the demo's, made by root) becomes Asterisk's."""
    group = source.stat().st_gid
    if group in (0, owner[1]):
        os.chown(source, *owner)
        return
    os.chown(source, owner[0], group)
    os.chmod(source, 0o2770)


def unmount_under(path: Path) -> None:
    for point in mounts_under(path):
        try:
            _run(["umount", str(point)])
        except AsteriskError as exc:
            # A bound /dev can stay "busy" for a moment after Asterisk exits (a descriptor
            # still closing): detach it now, and the kernel finishes when it is free.
            logger.warning("%s; detaching it lazily", exc)
            _run(["umount", "--lazy", str(point)])
        logger.debug("unmounted %s", point)


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise AsteriskNotInstalled(f"{command[0]} is not installed (package mount or coreutils)")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AsteriskError(f"{' '.join(command)} failed: {done.stderr.strip() or done.returncode}")


def resolve_in_root(root: Path, inner: str) -> Path:
    """The host path of `inner` as seen inside the root, following symlinks within it.

    An absolute symlink in the root (e.g. sounds/en -> /etc/alternatives/...) points into
    the root, not at the host's file of that name, so Path.resolve() would be wrong.
    """
    current = PurePosixPath("/")
    parts = list(PurePosixPath(inner).parts[1:])
    hops = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent
            continue
        host = root / (current / part).relative_to("/")
        if not host.is_symlink():
            current = current / part
            continue
        hops += 1
        if hops > _MAX_SYMLINK_HOPS:
            raise AsteriskConfigError(f"too many symlinks resolving {inner} in {root}")
        target = PurePosixPath(os.readlink(host))
        if target.is_absolute():
            current = PurePosixPath("/")
            parts = list(target.parts[1:]) + parts
        else:
            parts = list(target.parts) + parts
    return root / current.relative_to("/")


def account_ids(root: Path, user: str) -> tuple[int, int]:
    """(uid, gid) of `user` in the root's /etc/passwd (they differ from the host's)."""
    for line in _lines(root / "etc/passwd"):
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == user:
            return int(fields[2]), int(fields[3])
    raise AsteriskError(f"no user {user!r} in {root}/etc/passwd: is the asterisk package installed?")


def _lines(path: Path) -> Iterable[str]:
    return path.read_text(encoding="utf-8").splitlines()
