"""`hotline notices status|show`: notices over the channels residents chose
(docs/sms-and-notices.md, "Notice channels")."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from core.db import Store
from core.settings import Settings


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def counts(store: Store) -> dict[str, Any]:
    """Every notice by channel and state, with fallbacks, failures and those in flight."""
    from reports import notices

    with store.transaction() as c:
        figures = notices.build(c)
    return {**figures.as_dict(), "in_flight": figures.in_flight, "total": figures.total}


def pointer(figures: dict[str, Any]) -> str:
    """The one line `hotline sms status` shows about notices."""
    return (
        f"notices: {figures['total']} over chosen channels ({figures['in_flight']} in flight, "
        f"{figures['fallbacks']} fell back, {figures['failed']} failed): hotline notices status"
    )


def run(settings: Settings, args: argparse.Namespace, actor: str) -> int:
    if args.notices_action == "show":
        return _show(settings, args, actor)
    return _status(settings, args)


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.wiring import open_store

    store = open_store(settings)
    try:
        figures = counts(store)
    finally:
        store.dispose()
    if args.format == "json":
        _print_json(figures)
        return 0
    if not figures["total"]:
        print("notices: none yet (no resident with channel preferences has had a notice)")
        return 0
    print(pointer(figures).rsplit(":", 1)[0])
    for channel, states in figures["by_channel"].items():
        print(f"  {channel}: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    return 0


def _show(settings: Settings, args: argparse.Namespace, actor: str) -> int:
    from hotline.wiring import open_store
    from sms.notice_status import show_notice

    store = open_store(settings)
    try:
        with store.transaction() as c:
            notice = show_notice(c, args.id, actor=actor)
    finally:
        store.dispose()
    if notice is None:
        print(f"hotline notices show: no notice {args.id}", file=sys.stderr)
        return 1
    if args.format == "json":
        _print_json(notice)
        return 0
    print(
        f"notice {notice['id']} ({notice['event_type']}, {notice['category']}) to {notice['subject']}: "
        f"{notice['state']} on {notice['channel']}, plan {' > '.join(notice['plan'])}, "
        f"{notice['fallbacks']} fallbacks"
    )
    if notice["reason"]:
        print(f"  reason: {notice['reason']}")
    print(f"  text ({notice['language']}): {notice['text']}")
    for a in notice["attempts"]:
        print(f"  {a['channel']:<6} to {a['to']}: {a['status']}, {a['attempts']} attempts {a['detail']}".rstrip())
    print("  history:")
    for h in notice["history"]:
        print(f"    {h['at']}  {h['channel']:<6} {h['outcome']:<14} {h['detail']}".rstrip())
    return 0


def add_parser(sub: Any, handler: Callable[[Settings, argparse.Namespace], int]) -> None:
    s = sub.add_parser("notices", help="notices over the channels residents chose (voice, WeChat, SMS)")
    ns = s.add_subparsers(dest="notices_action", required=True)
    st = ns.add_parser("status", help="notices by channel and state, fallbacks, failed, in flight")
    st.add_argument("--format", choices=("json", "text"), default="text")
    st.set_defaults(func=handler)
    sh = ns.add_parser("show", help="one notice with every attempt on every channel (audited)")
    sh.add_argument("id", type=int)
    sh.add_argument("--format", choices=("json", "text"), default="text")
    sh.set_defaults(func=handler)
