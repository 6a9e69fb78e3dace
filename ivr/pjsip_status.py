"""Phones' registrations as the running Asterisk has them, read from its CLI.

The AMI alternatives (PJSIPShowContacts, PJSIPShowEndpoints) need the `system` write
class, which also grants restart and reload; the monitor's AMI user is kept without it
(dialplans/manager.conf). `hotline phones list` runs where `hotline asterisk up` does,
so it asks the local Asterisk's CLI instead: `pjsip show contacts` for the contacts and
their qualify status, `pjsip show contact <id>` for each one's user agent, source
address and expiry (res_pjsip's contact object fields, as Asterisk 22.10 prints them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

Cli = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Contact:
    """One registered contact of an AOR (a phone's endpoint and AOR share its name)."""

    aor: str
    uri: str
    status: str  # Avail, Unavail, NonQual (not qualified), Unknown
    address: str = ""  # where the REGISTER came from (via_addr:via_port)
    user_agent: str = ""
    expires: str | None = None  # ISO 8601 UTC


def parse_contacts(text: str) -> list[Contact]:
    """`pjsip show contacts` to contacts.

    >>> parse_contacts("  Contact:  1001/sip:1001-0x5@127.0.0.1:25170   cdd2479a75 Avail         0.670")
    [Contact(aor='1001', uri='sip:1001-0x5@127.0.0.1:25170', status='Avail', address='', user_agent='', expires=None)]
    """
    found = []
    for line in text.splitlines():
        key, _, rest = line.strip().partition(":")
        fields = rest.split()
        if key != "Contact" or len(fields) < 3 or fields[0].startswith("<"):
            continue
        aor, _, uri = fields[0].partition("/")
        found.append(Contact(aor, uri, fields[2]))
    return found


def parse_contact_detail(text: str) -> dict[str, str]:
    """`pjsip show contact <id>`'s `name : value` lines after its parameter table head."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" : ")
        name = name.strip()
        if sep and name and " " not in name and name != "ParameterName":
            values[name] = value.strip()
    return values


def _expiry(seconds: str) -> str | None:
    if not seconds.isdigit() or int(seconds) == 0:
        return None
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).isoformat()


def registrations(cli: Cli) -> dict[str, Contact]:
    """The registered contact of each AOR that has one (AORs allow one: max_contacts=1),
    with its details; the trunks' static contacts are left out (no REGISTER made them)."""
    found: dict[str, Contact] = {}
    for contact in parse_contacts(cli("pjsip show contacts")):
        detail = parse_contact_detail(cli(f"pjsip show contact {contact.aor}/{contact.uri}"))
        if not detail.get("via_addr") and not detail.get("user_agent") and not detail.get("call_id"):
            continue  # a configured contact (a trunk's aor `contact =`), not a registration
        port = detail.get("via_port", "")
        address = detail.get("via_addr", "") + (f":{port}" if port and port != "0" else "")
        found[contact.aor] = Contact(
            contact.aor,
            contact.uri,
            contact.status,
            address,
            detail.get("user_agent", ""),
            _expiry(detail.get("expiration_time", "")),
        )
    return found


def registration_states(text: str) -> dict[str, str]:
    """`pjsip show registrations` as {registration name: status}, status as Asterisk 22
    shows it (Registered, Unregistered, Rejected, Failed, Stopped, ...).

    >>> shown = '''
    ...  <Registration/ServerURI..............................>  <Auth....................>  <Status.......>
    ... ==========================================================================================
    ...
    ...  trunk-demo-registration/sip:127.0.0.2:5070              trunk-demo-auth             Registered (exp. 3585s)
    ...  trunk-b-registration/sip:10.0.0.9                        trunk-b-auth                Rejected
    ...
    ... Objects found: 2
    ... '''
    >>> registration_states(shown)
    {'trunk-demo-registration': 'Registered', 'trunk-b-registration': 'Rejected'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and "/" in words[0] and not words[0].startswith("<"):
            out[words[0].split("/", 1)[0]] = words[2]
    return out
