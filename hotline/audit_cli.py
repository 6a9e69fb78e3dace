"""`hotline audit`: the audit trail by resident, user, days and channel; `hotline audit
verify`: walk its hash chain. Imports the store only when run (`--help` stays quick)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

CHANNELS = ("ivr", "screen_pop", "sms_reply", "work_order", "recording", "cli", "console")  # core.audit.CHANNELS


def add_parser(sub: Any, func: Callable[..., int]) -> None:
    s = sub.add_parser("audit", help="who saw or changed which resident's data (audited); `audit verify`: the chain")
    s.add_argument("action", nargs="?", choices=("verify",), help="verify the hash chain instead of searching")
    s.add_argument(
        "--resident",
        metavar="ID_NUMBER",
        help="the resident's full ID number (checked, then looked up); '-' reads it from stdin or a prompt, "
        "out of the process list and the shell's history",
    )
    s.add_argument("--user", metavar="NAME", help="a console user, CLI user or actor (ivr, sms)")
    s.add_argument("--from", dest="from_", metavar="DATE", default="", help="first day, YYYY-MM-DD (local)")
    s.add_argument("--to", metavar="DATE", default="", help="last day, included, YYYY-MM-DD (local)")
    s.add_argument("--channel", choices=CHANNELS)
    s.add_argument("--format", choices=("text", "json", "csv"), default="text")
    s.add_argument(
        "--expect-head",
        metavar="SEQ:HASH",
        help="with verify: a head written down earlier (the output of verify, or hotline serve's hourly log line)",
    )
    s.set_defaults(func=func)


def run(settings: Any, args: argparse.Namespace, actor: str) -> int:
    from hotline.wiring import open_store

    store = open_store(settings)
    try:
        if args.action == "verify":
            return _verify(settings, store, args.format, args.expect_head)
        return _search(settings, store, args, actor)
    finally:
        store.dispose()


def _verify(settings: Any, store: Any, fmt: str, expect_head: str | None) -> int:
    from core.audit_log import Head, verify
    from core.audit_seal import verify_sealed
    from hotline.errors import UsageError

    try:
        expect = Head.parse(expect_head) if expect_head else None
    except ValueError as exc:
        raise UsageError(f"--expect-head: {exc}") from exc
    key = settings.security.audit_seal_key()
    if key is None:
        if expect is not None and expect.mac:
            raise UsageError("--expect-head: a sealed head (SEQ:HASH:MAC) needs security.audit_key to check")
        if not settings.security.demo:
            print(
                "audit log: WARNING: security.audit_key is not set: the seals are not checked, and a chain "
                "rebuilt from a copy of the database would verify",
                file=sys.stderr,
            )
    verdict = verify(store, expect) if key is None else verify_sealed(store, key, expect)
    if fmt == "json":
        print(json.dumps(verdict.as_json(), ensure_ascii=False, indent=2))
    elif verdict.broken is None:
        kept = f"; it holds the head kept ({expect.seq})" if expect else ""
        print(
            f"audit log: {verdict.rows} rows, chain intact{kept}{_sealed(verdict)}; head "
            f"{verdict.head_seq}:{verdict.head_hash} (keep it outside the database: verify --expect-head)"
        )
    else:
        b = verdict.broken
        print(
            f"audit log: chain BROKEN at row id {b.id} (seq {b.seq}): {b.problem}: {b.detail}; "
            f"the {verdict.rows} rows before it verify (up to seq {verdict.head_seq})",
            file=sys.stderr,
        )
    return 0 if verdict.ok else 1


def _sealed(verdict: Any) -> str:
    if verdict.seals is None:
        return ""
    after = verdict.head_seq - verdict.sealed_seq
    tail = f", {after} rows after it not sealed yet" if after else ""
    when = f"{verdict.sealed_at:%Y-%m-%d %H:%M} UTC"
    return f"; {verdict.seals} seals hold, the last at seq {verdict.sealed_seq} ({when}){tail}"


def _id_number_from_stdin() -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("resident's ID number: ").strip()
    return sys.stdin.readline().strip()


def _search(settings: Any, store: Any, args: argparse.Namespace, actor: str) -> int:
    from core.audit_search import Ask, as_csv, rows, search
    from hotline.wiring import business_port

    resident = _id_number_from_stdin() if args.resident == "-" else args.resident or ""
    ask = Ask(resident, args.user or "", args.from_, args.to, args.channel or "")
    zone = settings.queue.timezone
    found = search(store, business_port(settings, store), ask, viewer=actor, channel="cli", zone=zone)
    table = rows(found, zone)
    if args.resident and found.resident_id is None:
        print("audit: nobody holds that ID number (the look-up is audited)", file=sys.stderr)
    if found.truncated:
        print(f"audit: only the first {len(table)} rows; narrow the search (--from/--to)", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(table, ensure_ascii=False, indent=2))
    elif args.format == "csv":
        sys.stdout.write(as_csv(table))
    else:
        for r in table:
            print(
                f"{r['at']}  {r['channel']:<10} {r['actor']:<16} {r['action']:<22} {r['resident']:<18} "
                f"{r['call_id']} {r['detail']}".rstrip()
            )
        print(f"{len(table)} entries", file=sys.stderr)
    return 0
