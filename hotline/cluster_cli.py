"""`hotline cluster up|down|status`: the SIP edge (Kamailio) and the Asterisk nodes behind it
on this machine (README "Growing past one machine")."""

from __future__ import annotations

import argparse
import json
import sys

from core.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("cluster", help="the SIP edge (Kamailio) and several Asterisk nodes (needs PostgreSQL)")
    s.add_argument("action", choices=("up", "down", "status"))
    s.add_argument("--nodes", type=_count, help="nodes to start on this machine (127.0.0.11, .12, …; default 2)")
    s.add_argument("--format", choices=("json", "text"), default="text")
    s.set_defaults(func=run)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError("1 to 16 nodes")
    return value


def run(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.cluster import Cluster, require_postgresql
    from ivr.errors import AsteriskError

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
