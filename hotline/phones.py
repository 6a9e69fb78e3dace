"""`hotline phones`: agents' SIP phones in the store, rendered into pjsip.conf, and what
the running Asterisk says of their registrations."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import asdict
from typing import Any

from core import sip_phones
from core.db import Store
from core.settings import Settings
from hotline.errors import UsageError

log = logging.getLogger("hotline")


def _password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        raise UsageError("give the phone's password on standard input (--password-stdin), or --softphone")
    return sys.stdin.readline().rstrip("\n")


def _apply(settings: Settings, store: Store) -> str:
    """Rewrite pjsip.conf and have a running Asterisk read it; say which happened."""
    from ivr.asterisk import LocalAsterisk
    from ivr.cluster import Cluster
    from ivr.cluster_config import cluster_nodes

    phones = sip_phones.phone_entries(store, settings)
    if cluster_nodes(settings):
        # The edge reads the phones' digests from the store at each REGISTER; the nodes
        # ring a phone by its endpoint, so theirs are rewritten.
        cluster = Cluster(settings, phones=phones)
        running = [a for a in cluster.asterisks(cluster.nodes()) if a.running_pid() is not None]
        for asterisk in running:
            asterisk.reload_sip(phones)
        return f"the edge takes it at the phone's next REGISTER; {len(running)} running node(s) reloaded"
    local = LocalAsterisk(settings, phones=phones)
    if not local.status().running:
        return "Asterisk is not running: the change takes effect at the next `hotline asterisk up`"
    local.reload_sip(local.phones)
    return "pjsip.conf rewritten and reloaded by the running Asterisk"


def add(settings: Settings, store: Store, args: argparse.Namespace, actor: str) -> dict[str, Any]:
    if args.softphone:
        phone = sip_phones.add_softphone(store, settings, args.agent)
    else:
        phone = sip_phones.add_phone(store, settings, args.agent, _password(args))
    # Like console accounts (`users add`), phone credentials are logged, not audited: the
    # audit trail records who saw or changed residents' data.
    log.info("SIP %s %s of agent %s saved by %s", phone.kind, phone.endpoint, phone.agent_id, actor)
    return {**asdict(phone), "asterisk": _apply(settings, store)}


def remove(settings: Settings, store: Store, args: argparse.Namespace, actor: str) -> dict[str, Any]:
    phone = sip_phones.remove_phone(store, args.agent, softphone=args.softphone)
    log.info("SIP %s %s of agent %s removed by %s", phone.kind, phone.endpoint, phone.agent_id, actor)
    return {**asdict(phone), "removed": True, "asterisk": _apply(settings, store)}


def listing(settings: Settings, store: Store) -> list[dict[str, Any]]:
    """Each stored phone with its registration as the running Asterisk has it, or in a
    cluster the SIP edge (none when it is not running: `registered` is then null, not
    false)."""
    running, seen = _registrations(settings)
    rows = []
    for phone in sip_phones.list_phones(store):
        contact = seen.get(phone.endpoint)
        rows.append(
            {
                "endpoint": phone.endpoint,
                "agent": phone.agent_id,
                "kind": phone.kind,
                "registered": (contact is not None) if running else None,
                "status": contact.status if contact else None,
                "contact": contact.uri if contact else None,
                "address": contact.address if contact else None,
                "user_agent": contact.user_agent if contact else None,
                "expires": contact.expires if contact else None,
            }
        )
    return rows


def _registrations(settings: Settings) -> tuple[bool, dict[str, Any]]:
    """Whether the registrar answers, and the contacts it holds by endpoint."""
    if settings.cluster.enabled:
        from ivr.cluster import Cluster
        from ivr.errors import EdgeNotReady

        try:
            return True, Cluster(settings).registrations()
        except EdgeNotReady:
            return False, {}
    from ivr.asterisk import LocalAsterisk
    from ivr.pjsip_status import registrations

    local = LocalAsterisk(settings)
    running = local.status().running
    return running, (registrations(local.cli) if running else {})


def as_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no phones (hotline phones add AGENT_ID --password-stdin)"
    lines = []
    for r in rows:
        state = {True: "registered", False: "not registered", None: "unknown (registrar not running)"}[r["registered"]]
        where = ""
        if r["registered"]:
            where = f" from {r['address']} ({r['user_agent'] or 'no user agent'}), expires {r['expires']}"
        lines.append(f"{r['endpoint']:<12} agent {r['agent']:<8} {r['kind']:<10} {state}{where}")
    return "\n".join(lines)
