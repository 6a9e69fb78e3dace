"""`hotline callers block|unblock|list`: the nuisance list (docs/agents-and-console.md,
"Nuisance callers") from the command line. Every change is audited as cli:<user>; input the
list cannot take exits 2 with one line saying what is wrong."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import BlockRefused
from core.settings import Settings

USAGE = 2  # bad input, as argparse exits


def add_parser(sub: Any, handler: Callable[[Settings, argparse.Namespace], int]) -> None:
    s = sub.add_parser("callers", help="the nuisance list: numbers whose calls never reach an agent (audited)")
    cs = s.add_subparsers(dest="callers_action", required=True)
    b = cs.add_parser("block", help="list a number, with a reason, until an expiry (again: new reason and expiry)")
    b.add_argument("number", help="the calling number (13812345678, +86 138 1234 5678, 0571-87654321, +44...)")
    b.add_argument("--reason", required=True, help="why, for the supervisors who review the list")
    b.add_argument("--until", required=True, help="a local date (blocked through it), 2027-01-31T18:00, or 30d / 12h")
    u = cs.add_parser("unblock", help="lift a number's block")
    u.add_argument("number")
    ls = cs.add_parser("list", help="the numbers blocked now")
    ls.add_argument("--all", action="store_true", help="also the blocks that have expired")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    pr = cs.add_parser("proposed", help="numbers proposed for the list: many calls in 24 h, or flagged abusive")
    pr.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=handler)


def run(settings: Settings, args: argparse.Namespace, actor: str) -> int:
    from core.models import utcnow
    from hotline.wiring import open_store

    store = open_store(settings)
    try:
        return _run(settings, store, args, actor, utcnow())
    except BlockRefused as exc:
        print(f"hotline callers {args.callers_action}: {exc}", file=sys.stderr)
        return USAGE
    finally:
        store.dispose()


def _run(settings: Settings, store: Any, args: argparse.Namespace, actor: str, now: Any) -> int:
    from core import blocked_callers as bc
    from core.masking import mask_phone

    zone = settings.queue.timezone
    if args.callers_action == "block":
        until = bc.parse_until(args.until, now, zone)
        done = bc.block(store, args.number, reason=args.reason, until=until, actor=actor, now=now, channel="cli")
        print(f"{mask_phone(done.number)} blocked until {_local(done.until, zone)}: {done.reason}")
        return 0
    if args.callers_action == "unblock":
        gone = bc.unblock(store, args.number, actor=actor, channel="cli")
        print(f"{mask_phone(gone.number)} unblocked")
        return 0
    if args.callers_action == "proposed":
        return _proposed(settings, store, args, now)
    blocks = bc.listed(store, now, expired=args.all)
    if args.format == "json":
        print(json.dumps([b.as_json(now) for b in blocks], ensure_ascii=False, indent=2))
        return 0
    if not blocks:
        print("no number is blocked")
    for b in blocks:
        state = "" if b.active(now) else "  (expired)"
        print(f"{b.number:<16} until {_local(b.until, zone)}  by {b.blocked_by}  {b.reason}{state}")
    return 0


def _proposed(settings: Settings, store: Any, args: argparse.Namespace, now: Any) -> int:
    from core import blocked_callers as bc

    found = bc.proposals(store, now, calls_per_day=settings.ivr.nuisance_calls_per_day)
    if args.format == "json":
        print(json.dumps([p.as_json() for p in found], indent=2))
        return 0
    if not found:
        print("no number is proposed")
    for p in found:
        print(f"{p.number:<16} {p.calls} calls in 24 h, flagged abusive {p.flagged} times in 30 days")
    return 0


def _local(at: Any, zone: str) -> str:
    return f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M}"
