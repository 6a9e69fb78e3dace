"""`hotline backup` and `hotline restore`: the store, the recordings and voice messages, the
settings and the audit chain's head, in one directory with a manifest of checksums.

A backup is a new directory (cron: `hotline backup /srv/hotline-backups/$(date +%F)`):

    manifest.json         every file below with its size and sha256; version, schema, head
    store.sqlite | store.pgdump
    recordings/...        recordings.dir file by file (calls/ and messages/)
    config/settings.json  the settings in effect (file and environment): secrets in clear
    config/<file>.toml    the settings file as it is, when one was read
    audit-head.txt        SEQ:HASH, for `hotline audit verify --expect-head` after a restore

Recordings are incremental: a file whose size and sha256 are in the previous backup (the
newest directory beside the new one with a manifest, or `--since DIR`) is hard-linked to
that backup's copy instead of copied; each backup is still complete on its own, and deleting
an old one frees only what no later one links. The manifest is written last: a directory
without one is an interrupted backup, never used as a base nor restored. Every file is mode
0600 and every directory 0700, since the settings hold the site's secrets.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from core.settings import DEFAULT_CONFIG, Settings
from hotline import backup_store
from hotline.errors import BackupCorrupt, BackupRefused

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
FORMAT = 1
RECORDINGS = "recordings"
HEAD_FILE = "audit-head.txt"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One file of a backup: its path in it, size and sha256; a recording's original mode."""

    path: str
    size: int
    sha256: str
    mode: int | None = None


@dataclass(frozen=True)
class Manifest:
    created_at: str
    platform_version: str
    database_kind: str
    database_file: str
    schema_revision: str | None
    audit_head: str
    since: str | None
    files: tuple[Entry, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self), "files": [asdict(e) for e in self.files]}

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        try:
            data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
            if data.pop("format") != FORMAT:
                raise BackupCorrupt(f"{directory / MANIFEST}: not a manifest of format {FORMAT}")
            files = tuple(Entry(**e) for e in data.pop("files"))
            return cls(**data, files=files)
        except FileNotFoundError:
            raise BackupCorrupt(f"{directory}: no {MANIFEST} (not a backup, or an interrupted one)") from None
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise BackupCorrupt(f"{directory / MANIFEST}: unreadable: {exc}") from None

    def recordings(self) -> Iterator[tuple[str, Entry]]:
        """(path relative to recordings.dir, entry) for each recording file."""
        prefix = RECORDINGS + "/"
        for e in self.files:
            if e.path.startswith(prefix):
                yield e.path.removeprefix(prefix), e


@dataclass
class Tally:
    copied: int = 0
    linked: int = 0
    bytes_copied: int = 0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy(source: Path, target: Path, mode: int) -> tuple[int, str]:
    """Copy, hashing what is written (a recording still growing is taken as read)."""
    h, size = hashlib.sha256(), 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(chunk)
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _private_dir(path: Path) -> None:
    """Make `path` and whichever of its parents are missing, each 0700 (not the umask's mode)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)


def _entry(directory: Path, path: Path, mode: int | None = None) -> Entry:
    return Entry(path.relative_to(directory).as_posix(), path.stat().st_size, _sha256(path), mode)


def previous(target: Path) -> Path | None:
    """The newest complete backup beside `target` (by its manifest's time), if any."""
    found: list[tuple[str, Path]] = []
    if target.parent.is_dir():
        for sibling in target.parent.iterdir():
            if sibling != target and (sibling / MANIFEST).is_file():
                try:
                    found.append((Manifest.read(sibling).created_at, sibling))
                except BackupCorrupt:
                    continue  # not a base: it will not be linked to
    return max(found)[1] if found else None


def _recording_files(root: Path) -> Iterator[Path]:
    """Regular files under recordings.dir, sorted; symbolic links are not followed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                yield path


def _back_up_recordings(
    root: Path, target: Path, base: Manifest | None, base_dir: Path | None
) -> tuple[list[Entry], Tally]:
    # The earlier copy of the same file by its path, else any with the same bytes (a file moved).
    known: dict[tuple[int, str], Path] = {}
    same_path: dict[str, tuple[int, str]] = {}
    if base is not None and base_dir is not None:
        for relative, e in base.recordings():
            known.setdefault((e.size, e.sha256), base_dir / e.path)
            same_path[relative] = (e.size, e.sha256)
    sizes = {size for size, _ in known}
    entries, tally = [], Tally()
    for source in _recording_files(root) if root.is_dir() else ():
        relative = source.relative_to(root).as_posix()
        dest = target / RECORDINGS / relative
        _private_dir(dest.parent)
        stat = source.stat()
        mode = stat.st_mode & 0o777
        if stat.st_size in sizes:
            digest = _sha256(source)
            key = (stat.st_size, digest)
            earlier = (
                base_dir / RECORDINGS / relative if same_path.get(relative) == key and base_dir else known.get(key)
            )
            if earlier is not None and _link(earlier, dest, stat.st_size):
                entries.append(Entry(f"{RECORDINGS}/{relative}", stat.st_size, digest, mode))
                tally.linked += 1
                continue
        size, digest = _copy(source, dest, 0o600)
        entries.append(Entry(f"{RECORDINGS}/{relative}", size, digest, mode))
        tally.copied += 1
        tally.bytes_copied += size
    return entries, tally


def _link(earlier: Path, dest: Path, size: int) -> bool:
    """Hard-link the earlier backup's copy; False (then it is copied) on another file system."""
    try:
        if earlier.stat().st_size != size:
            return False
        os.link(earlier, dest)
    except OSError:
        return False
    return True


def config_file(given: Path | None) -> Path | None:
    """The settings file `load_settings` read for the same `--config`, if any."""
    if given is not None:
        return given
    if os.environ.get("HOTLINE_CONFIG"):
        return Path(os.environ["HOTLINE_CONFIG"])
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def _write_private(path: Path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)


def _back_up_config(settings: Settings, settings_file: Path | None, target: Path) -> list[Entry]:
    config = target / "config"
    _private_dir(config)
    rendered = settings.model_dump(mode="json")
    # The audit seal key is kept outside the database and its backups (docs/audit.md, "Seals"):
    # whoever holds both could rebuild the chain and seal it again.
    rendered["security"]["audit_key"] = "" if not settings.security.audit_key else "<not backed up>"
    _write_private(config / "settings.json", json.dumps(rendered, ensure_ascii=False, indent=2) + "\n")
    written = [config / "settings.json"]
    if settings_file is not None and settings_file.is_file():
        copy = config / settings_file.name
        _write_private(copy, settings_file.read_text(encoding="utf-8"))
        written.append(copy)
    return [_entry(target, p) for p in written]


def _new_directory(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise BackupRefused(f"{target} exists and is not an empty directory: a backup goes into a new one")
    _private_dir(target)
    os.chmod(target, 0o700)


def _platform_version() -> str:
    try:
        return metadata.version("hotline12333")
    except metadata.PackageNotFoundError:
        return "unknown"


def backup(
    settings: Settings, target: Path, *, since: Path | None, settings_file: Path | None, full: bool = False
) -> tuple[Manifest, Tally]:
    """Back everything up into the new directory `target`; the manifest is written last.
    Recordings unchanged since the backup `since` (default: `previous`) are linked, unless `full`."""
    base_dir = None if full else since if since is not None else previous(target)
    base = Manifest.read(base_dir) if base_dir is not None else None
    _new_directory(target)
    try:
        dumped = backup_store.dump(settings.database.url, target)
        files = [_entry(target, target / dumped.file)]
        _write_private(target / HEAD_FILE, f"{dumped.head}\n")
        files.append(_entry(target, target / HEAD_FILE))
        files += _back_up_config(settings, settings_file, target)
        recordings, tally = _back_up_recordings(settings.recordings.dir, target, base, base_dir)
        manifest = Manifest(
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            platform_version=_platform_version(),
            database_kind=backup_store.kind_of(settings.database.url),
            database_file=dumped.file,
            schema_revision=dumped.revision,
            audit_head=str(dumped.head),
            since=None if base_dir is None else os.path.relpath(base_dir, target),
            files=(*files, *recordings),
        )
        partial = target / (MANIFEST + ".partial")
        _write_private(partial, json.dumps(manifest.as_json(), ensure_ascii=False, indent=1) + "\n")
        os.replace(partial, target / MANIFEST)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # half a backup must never pass for one
        raise
    log.info("backup %s: %d recordings copied, %d linked", target, tally.copied, tally.linked)
    return manifest, tally


def verify(directory: Path) -> Manifest:
    """Check every file of the backup against its manifest; BackupCorrupt names those that differ."""
    manifest = Manifest.read(directory)
    root = directory.resolve()
    wrong = []
    for e in manifest.files:
        path = (root / e.path).resolve()
        if not path.is_relative_to(root) or path == root:
            raise BackupCorrupt(f"{directory / MANIFEST}: names a file outside the backup: {e.path!r}")
        if not path.is_file():
            wrong.append(f"{e.path}: missing")
        elif path.stat().st_size != e.size:
            wrong.append(f"{e.path}: {path.stat().st_size} bytes, the manifest says {e.size}")
        elif _sha256(path) != e.sha256:
            wrong.append(f"{e.path}: sha256 differs from the manifest's")
    if wrong:
        shown = "; ".join(wrong[:10]) + (f"; and {len(wrong) - 10} more" if len(wrong) > 10 else "")
        raise BackupCorrupt(f"{directory}: {len(wrong)} of {len(manifest.files)} files do not match: {shown}")
    if manifest.database_file not in {e.path for e in manifest.files}:
        raise BackupCorrupt(f"{directory / MANIFEST}: the store's dump {manifest.database_file} is not listed")
    return manifest


def _refuse_unless_empty(settings: Settings, force: bool) -> None:
    held = backup_store.tables(settings.database.url)
    root = settings.recordings.dir
    recordings = root.is_dir() and any(root.iterdir())
    if force or not (held or recordings):
        return
    what = []
    if held:
        what.append(f"the database holds {len(held)} tables ({', '.join(held[:3])}{', ...' if len(held) > 3 else ''})")
    if recordings:
        what.append(f"the recordings directory {root} is not empty")
    raise BackupRefused(f"{' and '.join(what)}: restore onto an empty server, or give --force to overwrite")


def restore(settings: Settings, directory: Path, *, force: bool) -> Manifest:
    """Restore the backup in `directory` onto this server. Nothing is changed until the kinds
    match, every checksum holds and the target is empty (or `force`)."""
    manifest = Manifest.read(directory)
    kind = backup_store.kind_of(settings.database.url)
    if manifest.database_kind != kind:
        raise BackupRefused(
            f"{directory} holds a {manifest.database_kind} store and database.url is {kind}: "
            "a restore goes onto the same kind of database"
        )
    manifest = verify(directory)
    _refuse_unless_empty(settings, force)
    backup_store.restore(settings.database.url, directory / manifest.database_file, force=force)
    _restore_recordings(manifest, directory, settings.recordings.dir)
    log.info("restore from %s: store and %d recordings restored", directory, sum(1 for _ in manifest.recordings()))
    return manifest


def _restore_recordings(manifest: Manifest, directory: Path, root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for relative, e in manifest.recordings():
        dest = root / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".restoring")
        partial.unlink(missing_ok=True)
        _copy(directory / e.path, partial, 0o600)
        os.chmod(partial, 0o640 if e.mode is None else e.mode)
        os.replace(partial, dest)
