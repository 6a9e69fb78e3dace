"""`hotline sip bans|unban`: the addresses the SIP bans' fail2ban holds off the SIP and WSS
ports (docs/security.md), and lifting one."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from core.settings import Settings
from ivr.sip_bans import BanState

log = logging.getLogger("hotline")


def ban_state(settings: Settings) -> BanState:
    """The bans as the local fail2ban has them (`hotline status` shows this too)."""
    from ivr.asterisk import LocalAsterisk

    return LocalAsterisk(settings).sip_bans().state()


def run(settings: Settings, args: argparse.Namespace, actor: str) -> int:
    if args.sip_action == "unban":
        return _unban(settings, args.address, actor)
    state = ban_state(settings)
    if args.format == "json":
        print(json.dumps(state.as_json(), ensure_ascii=False, indent=2))
    else:
        print(_as_text(state))
    return 0 if state.state in ("active", "off") else 1


def _as_text(state: BanState) -> str:
    if state.state != "active" or not state.bans:
        return state.as_text()
    lines = [f"{'address':<40} {'banned at':<19}  until"]
    for ban in state.bans:
        at = f"{ban.banned_at:%F %T}" if ban.banned_at else "?"
        until = f"{ban.until:%F %T}" if ban.until else "?"
        lines.append(f"{ban.address:<40} {at:<19}  {until}")
    if state.recent:
        lines.append("recent bans and unbans:")
        lines += [f"  {e.at:%F %T} {e.what:<5} {e.address}" for e in state.recent]
    return "\n".join(lines)


def _unban(settings: Settings, address: str, actor: str) -> int:
    from ivr.asterisk import LocalAsterisk

    try:
        lifted = LocalAsterisk(settings).sip_bans().unban(address)
    except ValueError:
        print(f"hotline sip unban: {address!r} is no IP address", file=sys.stderr)
        return 2
    if not lifted:
        print(f"{address} was not banned")
        return 1
    log.warning("SIP ban on %s lifted by %s", address, actor)
    print(f"{address} unbanned")
    return 0


def add_parser(sub: Any, handler: Callable[[Settings, argparse.Namespace], int]) -> None:
    s = sub.add_parser("sip", help="SIP security: the addresses banned for password guessing")
    sp = s.add_subparsers(dest="sip_action", required=True)
    bans = sp.add_parser("bans", help="addresses banned from the SIP and WSS ports now, and until when")
    bans.add_argument("--format", choices=("json", "text"), default="text")
    bans.set_defaults(func=handler)
    unban = sp.add_parser("unban", help="lift the ban on one address")
    unban.add_argument("address", metavar="ADDR", help="an IPv4 or IPv6 address")
    unban.set_defaults(func=handler)
