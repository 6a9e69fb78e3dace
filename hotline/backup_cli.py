"""`hotline backup DIR`, `hotline backup --verify DIR` and `hotline restore DIR`
(hotline/backup.py does the work). Refusals exit 2, a corrupt backup 1."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.settings import Settings
from hotline.errors import BackupRefused


def add_parsers(sub: Any) -> None:
    s = sub.add_parser(
        "backup", help="back up the store, recordings, settings (with secrets) and audit head into a new DIR"
    )
    s.add_argument("dir", type=Path, metavar="DIR", help="a new directory (e.g. /srv/hotline-backups/2026-12-07)")
    s.add_argument(
        "--since",
        type=Path,
        metavar="PREVIOUS_DIR",
        help="hard-link unchanged recordings to this backup (default: the newest backup beside DIR)",
    )
    s.add_argument("--full", action="store_true", help="copy every recording, linking none")
    s.add_argument("--verify", action="store_true", help="do not back up: check DIR's files against its manifest")
    s.set_defaults(func=run_backup)

    r = sub.add_parser("restore", help="restore a backup onto an empty server (store and recordings)")
    r.add_argument("dir", type=Path, metavar="DIR", help="a directory written by `hotline backup`")
    r.add_argument(
        "--force", action="store_true", help="even if the database has tables or the recordings directory has files"
    )
    r.set_defaults(func=run_restore)


def run_backup(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import backup

    if args.verify:
        manifest = backup.verify(args.dir)
        print(
            f"backup {args.dir}: {len(manifest.files)} files match the manifest ({manifest.database_kind} store, "
            f"schema {manifest.schema_revision}, audit head {manifest.audit_head}, made {manifest.created_at})"
        )
        return 0
    if args.full and args.since is not None:
        print("hotline backup: --full copies everything; --since names what to link to: give one", file=sys.stderr)
        return 2
    try:
        since = args.since
        manifest, tally = backup.backup(
            settings, args.dir, since=since, settings_file=backup.config_file(args.config), full=args.full
        )
    except BackupRefused as exc:
        print(f"hotline backup: {exc}", file=sys.stderr)
        return 2
    base = f", {tally.linked} linked to {manifest.since}" if manifest.since else ""
    print(
        f"backup {args.dir}: {manifest.database_kind} store (schema {manifest.schema_revision}), "
        f"{tally.copied} recordings copied ({tally.bytes_copied} bytes){base}; "
        f"audit head {manifest.audit_head}. It holds the site's secrets: keep it private."
    )
    return 0


def run_restore(settings: Settings, args: argparse.Namespace) -> int:
    from hotline import backup

    try:
        manifest = backup.restore(settings, args.dir, force=args.force)
    except BackupRefused as exc:
        print(f"hotline restore: {exc}", file=sys.stderr)
        return 2
    recordings = sum(1 for _ in manifest.recordings())
    print(
        f"restored {args.dir} (made {manifest.created_at}, platform {manifest.platform_version}): "
        f"{manifest.database_kind} store at schema {manifest.schema_revision}, {recordings} recordings.\n"
        f"Now check the audit chain: hotline audit verify --expect-head {manifest.audit_head}"
    )
    return 0
