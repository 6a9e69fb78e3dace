"""pjsip.conf, rtp.conf and the trunks' dialplan, rendered from the settings and the phones.

What goes in, and why:
- UDP and TCP transports on one address and port: RFC 3261 §18.1.1 sends a request over
  1,300 bytes (a phone's INVITE with many codecs, a 200 OK with a large SDP) over TCP, and
  phones do switch; WSS for the softphone rides Asterisk's own TLS HTTP server (http.conf).
- A trunk is identified by source address only (`identify_by=ip`), a phone by user name
  only (`identify_by=username`) and always challenged, so a carrier's caller whose number
  happens to be an agent id is never taken for that agent's phone.
- No anonymous endpoint: res_pjsip answers a request from an address no trunk matches and
  with no valid credentials with 401 and a challenge nobody can meet, the same answer
  whether the user name exists or not (what chan_sip's `alwaysauthreject` did), and logs a
  security event.
- Each trunk has its own dialplan context: the called numbers listed for it go to the IVR
  as 12333; any other number is refused with cause 1 (SIP 404, unallocated number).

Secrets: phones carry only `password_digest` (MD5 and SHA-256 of user:realm:password);
a trunk's registration password must be sent in clear to the carrier, so pjsip.conf is
written readable by the asterisk group only, like manager.conf.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Final

from core.settings import Settings
from core.sip_phones import PhoneEntry
from core.sip_settings import SipSettings, SipTrunk
from ivr.dialplan import (
    CTX_ENTRY,
    CTX_PHONES,
    CTX_QUEUE,
    DEPARTMENTS_CONTEXT,
    EXTEN_HOTLINE,
    GLOBAL_CALLER_ID_NAME,
    GLOBAL_HOTLINE_NUMBER,
    GLOBAL_OUTBOUND_LIMIT,
    GLOBAL_OUTBOUND_RING_S,
    GLOBAL_OUTBOUND_TRUNK,
    ORDER_12345_PATTERN,
    TRUNK_CONTEXT_PREFIX,
    VAR_QUEUE,
    VAR_TRANSFER_ORDER,
)

PJSIP_FILE: Final = "pjsip.conf"
RTP_FILE: Final = "rtp.conf"
TRUNKS_DIALPLAN_FILE: Final = "extensions_hotline_trunks.conf"
TRANSPORT_UDP: Final = "transport-udp"
TRANSPORT_TCP: Final = "transport-tcp"
TRANSPORT_WSS: Final = "transport-wss"
TRUNK_PREFIX: Final = "trunk-"
# Each rendered file starts with this line.
HEADER: Final = "; Written by `hotline asterisk up` from the settings and the phones in the store; do not edit.\n"


def trunk_endpoint(trunk: SipTrunk) -> str:
    return TRUNK_PREFIX + trunk.name


def render_pjsip(settings: Settings, phones: Sequence[PhoneEntry]) -> str:
    sip = settings.sip
    parts = [HEADER, _global(sip), _transports(sip)]
    parts += [_trunk(sip, t) for t in sip.trunks]
    parts += [_phone(sip, p) for p in phones]
    return "\n".join(parts)


def _section(name: str, options: Iterable[tuple[str, str | int]]) -> str:
    lines = [f"[{name}]"] + [f"{key} = {value}" for key, value in options]
    return "\n".join(lines) + "\n"


def _global(sip: SipSettings) -> str:
    return _section(
        "global",
        [
            ("type", "global"),
            ("endpoint_identifier_order", ",".join(sip.identify_order)),
            ("user_agent", "hotline-12333"),
            ("default_realm", sip.realm),
        ],
    )


def _nat(sip: SipSettings) -> list[tuple[str, str | int]]:
    if not sip.external_address:
        return []
    options: list[tuple[str, str | int]] = [
        ("external_media_address", sip.external_address),
        ("external_signaling_address", sip.external_address),
    ]
    options += [("local_net", net) for net in sip.local_networks]
    return options


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _transports(sip: SipSettings) -> str:
    sections = [
        _section(
            TRANSPORT_UDP, [("type", "transport"), ("protocol", "udp"), ("bind", _bind(sip.bind, sip.port))] + _nat(sip)
        ),
        _section(
            TRANSPORT_TCP, [("type", "transport"), ("protocol", "tcp"), ("bind", _bind(sip.bind, sip.port))] + _nat(sip)
        ),
    ]
    if sip.webrtc:
        # WSS listens on http.conf's TLS server; this transport only names the protocol.
        sections.append(_section(TRANSPORT_WSS, [("type", "transport"), ("protocol", "wss"), ("bind", "0.0.0.0")]))
    return "\n".join(sections)


def _dtmf(mode: str) -> str:
    return {"rfc4733": "rfc4733", "auto": "auto", "inband": "inband"}[mode]


def _trunk(sip: SipSettings, trunk: SipTrunk) -> str:
    name = trunk_endpoint(trunk)
    transport = TRANSPORT_TCP if trunk.transport == "tcp" else TRANSPORT_UDP
    endpoint: list[tuple[str, str | int]] = [
        ("type", "endpoint"),
        ("transport", transport),
        ("context", TRUNK_CONTEXT_PREFIX + trunk.name),
        ("disallow", "all"),
        ("allow", ",".join(trunk.codecs)),
        ("dtmf_mode", _dtmf(trunk.dtmf_mode)),
        ("identify_by", "ip"),
        ("direct_media", "no"),
        ("rtp_symmetric", "yes"),
        ("rewrite_contact", "yes"),
        ("aors", name),
        # Calls out show the hotline's number as the From user; nothing from a phone leaks
        # out. No `callerid` here: PJSIP gives an endpoint's `callerid` to its incoming calls
        # as well, in place of the From user, and every caller would be recorded as 12333.
        ("from_user", sip.hotline_number),
        ("trust_id_outbound", "no"),
        ("send_pai", "no"),
    ]
    if trunk.host:
        endpoint.append(("from_domain", trunk.host))
    sections = []
    if trunk.username and trunk.password:
        endpoint.append(("outbound_auth", name + "-auth"))
        sections.append(
            _section(
                name + "-auth",
                [("type", "auth"), ("auth_type", "digest"), ("username", trunk.username), ("password", trunk.password)],
            )
        )
    aor: list[tuple[str, str | int]] = [("type", "aor")]
    if trunk.host:
        transport_param = ";transport=tcp" if trunk.transport == "tcp" else ""
        aor += [("contact", f"sip:{_bind(trunk.host, trunk.port)}{transport_param}"), ("qualify_frequency", 60)]
    sections.insert(0, _section(name, endpoint))
    sections.append(_section(name, aor))
    sections.append(_section(name, [("type", "identify"), ("endpoint", name)] + [("match", m) for m in trunk.match]))
    if trunk.registration:
        sections.append(
            _section(
                name + "-registration",
                [
                    ("type", "registration"),
                    ("transport", transport),
                    ("outbound_auth", name + "-auth"),
                    ("server_uri", f"sip:{_bind(trunk.host, trunk.port)}"),
                    ("client_uri", f"sip:{trunk.username}@{_bind(trunk.host, trunk.port)}"),
                    ("contact_user", sip.hotline_number),
                    ("retry_interval", 60),
                    ("forbidden_retry_interval", 600),
                    ("expiration", 3600),
                    ("line", "yes"),
                    ("endpoint", name),
                ],
            )
        )
    return "\n".join(sections)


def _phone(sip: SipSettings, phone: PhoneEntry) -> str:
    name = phone.endpoint
    endpoint: list[tuple[str, str | int]] = [
        ("type", "endpoint"),
        ("context", CTX_PHONES),
        ("disallow", "all"),
        ("allow", "opus,alaw,ulaw" if phone.webrtc else ",".join(sip.phone_codecs)),
        ("identify_by", "username"),
        ("auth", name),
        ("aors", name),
        ("direct_media", "no"),
        ("rtp_symmetric", "yes"),
        ("force_rport", "yes"),
        ("rewrite_contact", "yes"),
        ("dtmf_mode", "rfc4733"),
        # Busy while on a call: app_queue does not ring it for a second caller.
        ("device_state_busy_at", 1),
    ]
    if phone.caller_name:
        endpoint.append(("callerid", f'"{phone.caller_name}" <{name}>'))
    if phone.webrtc:
        # webrtc=yes: AVPF, DTLS-SRTP with a generated certificate, ICE, rtcp-mux, and
        # replies over the WebSocket the request came in on.
        endpoint += [("transport", TRANSPORT_WSS), ("webrtc", "yes"), ("dtls_auto_generate_cert", "yes")]
    endpoint += phone_acl(sip, webrtc=phone.webrtc)
    auth = [("type", "auth"), ("auth_type", "digest"), ("username", name), ("realm", sip.realm)]
    auth += [("password_digest", d) for d in phone.digests]
    aor: list[tuple[str, str | int]] = [
        ("type", "aor"),
        # One registration per phone, and the first keeps it: a second REGISTER from
        # another contact (someone else with the password) gets 403 and Asterisk logs
        # "will exceed max contacts" with its address, instead of taking the agent's calls.
        # A phone that restarted with a new contact gets in once its old one stops
        # answering qualify (remove_unavailable); a phone closing cleanly unregisters, and
        # a WebSocket's contact goes with its connection.
        ("max_contacts", 1),
        ("remove_existing", "no"),
        ("remove_unavailable", "yes"),
        ("qualify_frequency", 30),
    ]
    return "\n".join([_section(name, endpoint), _section(name, auth), _section(name, aor)])


def _deny_all(key: str) -> list[tuple[str, str | int]]:
    return [(key, "0.0.0.0/0.0.0.0"), (key, "::/0")]


def phone_acl(sip: SipSettings, *, webrtc: bool) -> list[tuple[str, str | int]]:
    """Where a phone may send from (`deny`/`permit`: the request's source address) and, for
    a desk phone, what it may register (`contact_deny`/`contact_permit`: its Contact).

    res_pjsip checks both before authentication (pjsip_distributor.c, apply_acls): a request
    failing them is handled as from an unknown endpoint (401 and a challenge nobody can
    meet) and raises a FailedACL security event, which counts towards a ban. Rules are read
    in order and the last match wins, so everything is denied first. A softphone gets no
    contact ACL: its Contact names a random `.invalid` host (RFC 7118 §5.2), and Asterisk
    resolves a Contact's host for the check (netsock2.c ast_sockaddr_resolve), a DNS lookup
    and an ERROR in `messages` at every REGISTER.
    """
    nets = sip.phone_nets()
    options = _deny_all("deny") + [("permit", net) for net in nets]
    if webrtc:
        return options
    return options + _deny_all("contact_deny") + [("contact_permit", net) for net in nets]


def render_rtp(sip: SipSettings) -> str:
    options: list[tuple[str, str | int]] = [("rtpstart", sip.rtp_start), ("rtpend", sip.rtp_end)]
    if sip.webrtc:
        # ICE host candidates only: no STUN server is reachable from a county's network
        # unless the site configures one; browsers on the same network need no more.
        options += [("icesupport", "yes")]
    return HEADER + _section("general", options)


def outbound_globals(sip: SipSettings) -> dict[str, str]:
    """The dialplan globals of calls out (hotline-outbound): an empty trunk refuses them all."""
    trunk = sip.outbound_trunk()
    return {
        GLOBAL_OUTBOUND_TRUNK: trunk_endpoint(trunk) if trunk else "",
        GLOBAL_OUTBOUND_LIMIT: str(sip.outbound_channels),
        GLOBAL_OUTBOUND_RING_S: str(sip.outbound_ring_s),
        GLOBAL_HOTLINE_NUMBER: sip.hotline_number,
        GLOBAL_CALLER_ID_NAME: sip.caller_id_name,
    }


def render_trunk_dialplan(sip: SipSettings) -> str:
    """One context per trunk: its hotline numbers go to the IVR as 12333, others get 404."""
    blocks = [HEADER]
    for trunk in sip.trunks:
        lines = [f"[{TRUNK_CONTEXT_PREFIX}{trunk.name}]"]
        for number in dict.fromkeys((*trunk.numbers, sip.hotline_number)):
            lines += _order_header(number, trunk.order_header) if trunk.order_header else []
            step = " same => n(keep)" if trunk.order_header else f"exten => {number},1"
            lines.append(f"{step},Goto({CTX_ENTRY},{EXTEN_HOTLINE},1)")
        lines += [
            "; Any other called number: unallocated (cause 1, SIP 404), logged for the operator.",
            "exten => _[+0-9a-zA-Z*#].,1,Log(NOTICE,trunk " + trunk.name + " called ${EXTEN}: no hotline number)",
            " same => n,Hangup(1)",
        ]
        blocks.append("\n".join(lines) + "\n")
    blocks.append(_departments(sip))
    return "\n".join(blocks)


def _order_header(number: str, header: str) -> list[str]:
    """A call 12345 transferred: the order's number from the carrier's header, kept only if
    the whole value fits ORDER_12345_PATTERN. The raw value is only ever a Set() value and
    REGEX's subject, never part of an application's arguments or an expression, so what the
    carrier sends cannot change the dialplan's path beyond keep or drop (the IVR checks the
    value it is given again: ivr.screenpop.transferred_order)."""
    return [
        f"exten => {number},1,Set({VAR_TRANSFER_ORDER}=${{PJSIP_HEADER(read,{header})}})",
        f' same => n,GotoIf($[${{REGEX("{ORDER_12345_PATTERN}" ${{{VAR_TRANSFER_ORDER}}})}}]?keep)',
        f" same => n,Set({VAR_TRANSFER_ORDER}=)",
    ]


def _departments(sip: SipSettings) -> str:
    """The departments' numbers: the caller joins that department's queue (entered as
    12333, so the caller's CDR row keeps dst=12333, as for a caller queued by the IVR)."""
    lines = [f"[{DEPARTMENTS_CONTEXT}]"]
    for queue, number in sorted(sip.departments.items(), key=lambda item: item[1]):
        lines.append(f"exten => {number},1,Set({VAR_QUEUE}={queue})")
        lines.append(f" same => n,Goto({CTX_QUEUE},{EXTEN_HOTLINE},1)")
    return "\n".join(lines) + "\n"


def overlaps_loopback(trunk: SipTrunk) -> bool:
    """Whether the trunk's `match` covers 127.0.0.1, where phones on the same host register from."""
    here = ipaddress.ip_address("127.0.0.1")
    return any(here in ipaddress.ip_network(m, strict=False) for m in trunk.match)


def identify_warnings(sip: SipSettings, phones: Sequence[PhoneEntry]) -> list[str]:
    """What makes this host's phones be taken for a trunk: res_pjsip tries the identifiers
    in endpoint_identifier_order, so with `ip` first a trunk whose `match` covers 127.0.0.1
    takes every REGISTER and INVITE from a phone on this host (its AOR is then not found,
    404), whatever the phone's user name."""
    if not phones or sip.identify_order[0] != "ip":
        return []
    return [
        f"trunk {t.name} matches 127.0.0.1, where this host's phones register from: they would be taken for "
        "the trunk; narrow its match or set sip.identify_order = ['username', 'ip']"
        for t in sip.trunks
        if overlaps_loopback(t)
    ]
