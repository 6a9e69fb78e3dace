"""`hotline cluster up|down|status|bans|unban`: the SIP edge (Kamailio) and the Asterisk
nodes behind it on this machine (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable

from core.settings import Settings

log = logging.getLogger(__name__)


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], handler: Callable[[Settings, argparse.Namespace], int]
) -> None:
    """`handler` calls `run` with who runs the command (hotline.cli's actor, as for `sip`)."""
    s = sub.add_parser("cluster", help="the SIP edge (Kamailio) and several Asterisk nodes (needs PostgreSQL)")
    s.add_argument("action", choices=("up", "down", "status", "bans", "unban"))
    s.add_argument("address", nargs="?", help="unban: the address to let in again")
    s.add_argument("--nodes", type=_count, help="nodes to start on this machine (127.0.0.11, .12, …; default 2)")
    s.add_argument("--format", choices=("json", "text"), default="text")
    s.set_defaults(func=handler)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError("1 to 16 nodes")
    return value


def run(settings: Settings, args: argparse.Namespace, actor: str) -> int:
    from ivr.cluster import Cluster, require_postgresql
    from ivr.errors import AsteriskError

    if args.action in ("bans", "unban"):
        return _bans(settings, args, actor)
    try:
        if args.action == "up":
            require_postgresql(settings)  # before the store is opened for the phones
            from core.sip_phones import phone_entries
            from hotline.wiring import open_store

            cluster = Cluster(settings, phones=phone_entries(open_store(settings), settings))
            status = cluster.up(args.nodes)
        else:
            cluster = Cluster(settings)
            if args.action == "down":
                cluster.down()
            status = cluster.status()
    except AsteriskError as exc:
        print(f"hotline cluster {args.action}: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(status.as_json(), ensure_ascii=False, indent=2))
    else:
        edge = f"{status.edge_address}:{status.edge_port}"
        print(f"edge   {edge:<22} {'running, pid ' + str(status.edge_pid) if status.edge_pid else 'stopped'}")
        for n in status.nodes:
            calls = "" if n.calls is None else f", {n.calls} calls"
            pid = f"pid {n.pid}" if n.pid else "no Asterisk"
            print(f"{n.name:<6} {n.address + ':' + str(n.sip_port):<22} {n.state} ({pid}{calls})")
    if args.action == "down":
        return 0
    healthy = status.running and status.nodes and all(n.state == "active" for n in status.nodes)
    return 0 if healthy else 1


def _bans(settings: Settings, args: argparse.Namespace, actor: str) -> int:
    """The addresses the edge bans (its own counting of failed authentications and floods,
    as fail2ban does for one Asterisk), or one ban lifted."""
    from ivr.cluster import Cluster
    from ivr.errors import EdgeNotReady

    cluster = Cluster(settings)
    try:
        if args.action == "unban":
            if not args.address:
                print("hotline cluster unban: which address? (hotline cluster bans lists them)", file=sys.stderr)
                return 2
            if not cluster.unban(args.address):
                print(f"{args.address} was not banned at the edge")
                return 0
            log.warning("SIP edge: ban on %s lifted by %s", args.address, actor)
            print(f"{args.address} may reach the SIP edge again")
            return 0
        banned = cluster.bans()
    except ValueError:
        print(f"hotline cluster unban: {args.address!r} is no IP address", file=sys.stderr)
        return 2
    except EdgeNotReady as exc:
        print(f"hotline cluster {args.action}: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps({"bans": banned, "ban_s": settings.sip.ban_s}, indent=2))
    elif banned:
        print(f"banned at the SIP edge (each for {settings.sip.ban_s} s from when it was banned):")
        print("\n".join(f"  {address}" for address in banned))
    else:
        print("no address is banned at the SIP edge")
    return 0
