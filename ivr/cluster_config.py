"""A cluster's configuration: each node's settings and pjsip.conf, and the edge's
kamailio.cfg and dispatcher list, rendered from the same settings as one Asterisk.

The design (README "Growing past one machine"):
- Carriers and agents' phones talk to the edge (Kamailio) only. A carrier's INVITE for the
  hotline goes to one of the live nodes (dispatcher set 1, round robin); the edge probes
  every node with OPTIONS and takes one that stops answering out of the set, and a node
  that does not answer an INVITE in time is marked down and the next one tried.
- A node trusts the edge's address alone (its pjsip.conf identifies nothing else), and the
  edge tells it where a call came from in X-Hotline-Source (`trunk-<name>` or `phone`),
  which the edge strips from every request it receives: nobody else can set it.
- Agents' phones register with the edge (its registrar; digests read from the store's
  sip_phones table, never a password). A node rings an agent by sending the INVITE to the
  edge, which looks the phone up; a node's calls out go to the edge's trunk port, which
  only nodes may use, and leave through the outbound trunk.
- The edge record-routes and keeps no dialog state: a restart loses only calls being set
  up. Media flows between the carrier or phone and the node, never through the edge.
- Password guessing is banned at the edge (htable counts failed authentications per
  address, as fail2ban does for one Asterisk) and floods by pike; phones may register and
  call only from sip.phone_networks.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from core.cluster_settings import ClusterNode
from core.settings import Settings
from core.sip_phones import PhoneEntry
from core.sip_settings import SipSettings
from ivr.dialplan import CTX_EDGE, CTX_PHONES, SOURCE_HEADER, SOURCE_PHONE, SOURCE_TRUNK_PREFIX
from ivr.errors import AsteriskConfigError
from ivr.pjsip_config import HEADER, TRANSPORT_TCP, TRANSPORT_UDP, trunk_endpoint

EDGE_ENDPOINT: Final = "edge"
# Dispatcher sets: the nodes that answer the hotline.
SET_NODES: Final = 1
PHONES_TABLE: Final = "sip_phones"


@dataclass(frozen=True)
class EdgePaths:
    """Where the edge's files live on this host."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "kamailio.cfg"

    @property
    def dispatcher_list(self) -> Path:
        return self.directory / "dispatcher.list"

    @property
    def pid_file(self) -> Path:
        return self.directory / "kamailio.pid"

    @property
    def control_socket(self) -> Path:
        return self.directory / "kamailio-ctl.sock"

    @property
    def log(self) -> Path:
        return self.directory / "kamailio.log"


STATE_FILE: Final = "cluster.json"


def edge_paths(settings: Settings) -> EdgePaths:
    return EdgePaths(settings.asterisk.cache_dir.expanduser().resolve() / settings.cluster.name)


def saved_nodes(settings: Settings) -> tuple[ClusterNode, ...]:
    """The nodes `hotline cluster up` last started on this machine (its cluster.json)."""
    try:
        saved = json.loads((edge_paths(settings).directory / STATE_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return ()
    return tuple(ClusterNode.model_validate(n) for n in saved.get("nodes", ()))


def cluster_nodes(settings: Settings) -> tuple[ClusterNode, ...]:
    """The nodes the platform serves: none (one Asterisk) unless cluster.enabled; then the
    site's listed nodes, else those started on this machine."""
    if not settings.cluster.enabled:
        return ()
    return settings.cluster.nodes or saved_nodes(settings)


def ami_targets(settings: Settings) -> list[tuple[ClusterNode | None, Settings]]:
    """Each Asterisk the platform talks AMI to, with the settings that reach it: the one
    Asterisk, or every node of the cluster."""
    nodes = cluster_nodes(settings)
    if not nodes:
        return [(None, settings)]
    return [(node, node_settings(settings, node, i)) for i, node in enumerate(nodes)]


def edge_trunk_port(settings: Settings) -> int:
    """The edge's port for the nodes' calls out (to the carrier): the SIP port + 2."""
    return settings.cluster.edge_port + 2


def node_settings(settings: Settings, node: ClusterNode, index: int) -> Settings:
    """The settings one node's Asterisk is rendered from: its address for SIP and AMI, its
    RTP range, no softphone server (phones are the edge's), and the FastAGI servers in an
    order of its own (node i starts with server i), so the nodes share the servers' load."""
    servers = settings.agi.dial_servers()
    turn = index % len(servers)
    sip = settings.sip.model_copy(
        update={
            "bind": node.address,
            "port": node.sip_port,
            "rtp_start": node.rtp_start,
            "rtp_end": node.rtp_end,
            "webrtc": False,
            "external_address": "",
        }
    )
    return settings.model_copy(
        update={
            "sip": SipSettings.model_validate(sip.model_dump()),
            "ami": settings.ami.model_copy(update={"host": node.address, "port": node.ami_port}),
            "agi": settings.agi.model_copy(update={"servers": servers[turn:] + servers[:turn]}),
        }
    )


def _section(name: str, options: Sequence[tuple[str, str | int]]) -> str:
    return "\n".join([f"[{name}]"] + [f"{key} = {value}" for key, value in options]) + "\n"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def render_node_pjsip(settings: Settings, node: ClusterNode, phones: Sequence[PhoneEntry]) -> str:
    """A node's pjsip.conf: transports on its own address; one endpoint for the edge,
    identified by the edge's address and nothing else; the agents' phones and the outbound
    trunk as destinations reached through the edge (never identified: a request from
    anywhere but the edge meets the 401 nobody can answer)."""
    sip, cluster = settings.sip, settings.cluster
    edge = _hostport(cluster.edge_address, cluster.edge_port)
    codecs = ",".join(dict.fromkeys([*sip.phone_codecs, *(c for t in sip.trunks for c in t.codecs), "alaw", "ulaw"]))
    parts = [
        HEADER,
        _section(
            "global",
            [
                ("type", "global"),
                ("endpoint_identifier_order", "ip"),
                ("user_agent", f"hotline-12333-{node.name}"),
                ("default_realm", sip.realm),
            ],
        ),
    ]
    for name, protocol in ((TRANSPORT_UDP, "udp"), (TRANSPORT_TCP, "tcp")):
        bind = _hostport(node.address, node.sip_port)
        parts.append(_section(name, [("type", "transport"), ("protocol", protocol), ("bind", bind)]))
    parts.append(
        _section(
            EDGE_ENDPOINT,
            [
                ("type", "endpoint"),
                ("transport", TRANSPORT_UDP),
                ("context", CTX_EDGE),
                ("disallow", "all"),
                ("allow", codecs),
                ("dtmf_mode", "rfc4733"),
                ("direct_media", "no"),
                ("rtp_symmetric", "yes"),
                ("aors", EDGE_ENDPOINT),
            ],
        )
    )
    parts.append(_section(EDGE_ENDPOINT, [("type", "aor"), ("contact", f"sip:{edge}")]))
    parts.append(
        _section(EDGE_ENDPOINT, [("type", "identify"), ("endpoint", EDGE_ENDPOINT), ("match", cluster.edge_address)])
    )
    trunk = sip.outbound_trunk()
    if trunk is not None:
        out = _hostport(cluster.edge_address, edge_trunk_port(settings))
        name = trunk_endpoint(trunk)
        parts.append(
            _section(
                name,
                [
                    ("type", "endpoint"),
                    ("transport", TRANSPORT_UDP),
                    ("context", CTX_EDGE),
                    ("disallow", "all"),
                    ("allow", ",".join(trunk.codecs)),
                    ("dtmf_mode", trunk.dtmf_mode),
                    ("direct_media", "no"),
                    ("from_user", sip.hotline_number),
                    ("trust_id_outbound", "no"),
                    ("send_pai", "no"),
                    ("aors", name),
                ],
            )
        )
        parts.append(_section(name, [("type", "aor"), ("contact", f"sip:{out}")]))
    for phone in phones:
        if phone.webrtc:
            continue  # softphones register with a node's own WSS server: not in a cluster yet
        parts.append(
            _section(
                phone.endpoint,
                [
                    ("type", "endpoint"),
                    ("transport", TRANSPORT_UDP),
                    ("context", CTX_PHONES),
                    ("disallow", "all"),
                    ("allow", ",".join(sip.phone_codecs)),
                    ("dtmf_mode", "rfc4733"),
                    ("direct_media", "no"),
                    ("device_state_busy_at", 1),
                    ("aors", phone.endpoint),
                ],
            )
        )
        parts.append(_section(phone.endpoint, [("type", "aor"), ("contact", f"sip:{phone.endpoint}@{edge}")]))
    return "\n".join(parts)


def render_dispatcher(nodes: Sequence[ClusterNode]) -> str:
    """dispatcher.list: `setid destination flags priority`; every node answers the hotline."""
    lines = ["# Written by `hotline cluster up` from the settings; do not edit."]
    lines += [f"{SET_NODES} sip:{_hostport(n.address, n.sip_port)} 0 0 name={n.name}" for n in nodes]
    return "\n".join(lines) + "\n"


def kamailio_db_url(url: str) -> str:
    """The store's SQLAlchemy URL as Kamailio's db_postgres wants it (postgres://…)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        raise AsteriskConfigError("a cluster needs PostgreSQL: its edge reads the phones' digests from the store")
    return "postgres://" + parts.netloc + parts.path


def _kamailio_string(value: str, what: str) -> str:
    if any(c in value for c in '"\\\n\r'):
        raise AsteriskConfigError(f"{what}: no quotes, backslashes or line breaks")
    return value


def _subnets(networks: Sequence[str]) -> str:
    return ",".join(str(ipaddress.ip_network(n, strict=False)) for n in networks)


def render_kamailio(settings: Settings, paths: EdgePaths, auth_secret: str) -> str:
    """The edge's kamailio.cfg (Kamailio 5.6 native language)."""
    sip, cluster = settings.sip, settings.cluster
    edge, port, out_port = cluster.edge_address, cluster.edge_port, edge_trunk_port(settings)
    db_url = _kamailio_string(kamailio_db_url(settings.database.url), "database.url")
    realm = sip.realm
    trunk_tests = "\n".join(
        f'    if (is_in_subnet("$si", "{_subnets(t.match)}")) {{ '
        f'$var(source) = "{SOURCE_TRUNK_PREFIX}{t.name}"; return; }}'
        for t in sip.trunks
    )
    ignore = [*sip.ban_ignore, *(n for t in sip.trunks for n in t.match)] or ["255.255.255.255/32"]
    trunk = sip.outbound_trunk()
    if trunk is not None:
        carrier = (
            f'    $ru = "sip:" + $rU + "@{_hostport(trunk.host, trunk.port)}'
            + (';transport=tcp"' if trunk.transport == "tcp" else '"')
            + ";\n    route(RELAY);"
        )
    else:
        carrier = '    sl_send_reply("503", "No Outbound Trunk");'
    fr_ms = cluster.node_answer_ms
    return f"""#!KAMAILIO
# The hotline's SIP edge. Written by `hotline cluster up` from the settings; do not edit.

debug=2
log_stderror=yes
log_facility=LOG_LOCAL0
fork=yes
children=4
tcp_children=2
auto_aliases=no
listen=udp:{_hostport(edge, port)}
listen=tcp:{_hostport(edge, port)}
# The nodes' calls out to the carrier come in here; nobody else may use it.
listen=udp:{_hostport(edge, out_port)}
alias="{_hostport(edge, port)}"
server_header="Server: hotline-edge"
user_agent_header="User-Agent: hotline-edge"
# An answer bigger than UDP carries goes over TCP (RFC 3261 §18.1.1).
udp_mtu=1300
udp_mtu_try_proto=TCP

mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "kex.so"
loadmodule "corex.so"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "ctl.so"
loadmodule "cfg_rpc.so"
loadmodule "dispatcher.so"
loadmodule "ipops.so"
loadmodule "pike.so"
loadmodule "htable.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "db_postgres.so"
loadmodule "auth_db.so"
loadmodule "dialog.so"
loadmodule "cfgutils.so"

modparam("ctl", "binrpc", "unix:{paths.control_socket}")
# No answer at all from a node (or phone) within this: the next node is tried.
modparam("tm", "fr_timer", {fr_ms})
modparam("tm", "fr_inv_timer", 120000)
modparam("rr", "append_fromtag", 1)

modparam("dispatcher", "list_file", "{paths.dispatcher_list}")
modparam("dispatcher", "flags", 2)
modparam("dispatcher", "ds_ping_method", "OPTIONS")
modparam("dispatcher", "ds_ping_from", "sip:edge@{_hostport(edge, port)}")
modparam("dispatcher", "ds_ping_interval", {cluster.probe_interval_s})
modparam("dispatcher", "ds_probing_mode", 1)
modparam("dispatcher", "ds_probing_threshold", 1)
modparam("dispatcher", "ds_inactive_threshold", 1)
modparam("dispatcher", "ds_ping_reply_codes", "class=2")

modparam("usrloc", "db_mode", 0)
modparam("registrar", "max_contacts", 1)
modparam("registrar", "max_expires", 3600)
modparam("auth", "secret", "{auth_secret}")
modparam("auth_db", "db_url", "{db_url}")
modparam("auth_db", "user_column", "endpoint")
modparam("auth_db", "password_column", "md5_digest")
modparam("auth_db", "calculate_ha1", 0)
modparam("auth_db", "use_domain", 0)
modparam("auth_db", "version_table", 0)

# Calls through the edge that must be counted across nodes: an agent's phone rings for one
# call at a time, and calls out stay within the cluster's cap. A dialog whose node stopped
# answering in-dialog OPTIONS (a node gone) is ended with a BYE, so the agent is free again.
modparam("dialog", "profiles_with_value", "agent")
modparam("dialog", "profiles_no_value", "outbound")
modparam("dialog", "default_timeout", 14400)
modparam("dialog", "send_bye", 1)
modparam("dialog", "ka_timer", 10)
modparam("dialog", "ka_interval", 30)

# Password guessing: failures per address over the window, then a ban for ban_s.
# The agents' locks (route FROM_NODE): 2^8 of them, an agent's chosen by its name's hash.
# Without a set, lock() does nothing but log an error and two nodes may ring one phone.
modparam("cfgutils", "lock_set_size", 8)
modparam("htable", "htable", "authfail=>size=8;autoexpire={sip.ban_window_s};")
modparam("htable", "htable", "ipban=>size=8;autoexpire={sip.ban_s};")
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", 60)
modparam("pike", "remove_latency", 4)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!sanity_check("17895", "7")) {{
        exit;
    }}
    route(SOURCE);
    if ($var(source) == "" || $var(source) == "phones") {{
        route(GUARD);
    }}
    # Only the edge says where a call came from.
    remove_hf_re("^X-Hotline-");
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (has_totag()) {{
        route(IN_DIALOG);
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("ACK")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    # A retransmission of a request already being handled is absorbed here.
    t_check_trans();
    if ($var(source) == "node") {{
        route(FROM_NODE);
    }} else if ($(var(source){{s.substr,0,{len(SOURCE_TRUNK_PREFIX)}}}) == "{SOURCE_TRUNK_PREFIX}") {{
        route(FROM_TRUNK);
    }} else {{
        route(FROM_PHONE);
    }}
    exit;
}}

route[SOURCE] {{
    $var(source) = "";
    # A node: any address of the dispatcher list (port and protocol aside), so the list can
    # change with a reload, without a restart.
    if (ds_is_from_list("{SET_NODES}", "3")) {{ $var(source) = "node"; return; }}
{trunk_tests}
    if (is_in_subnet("$si", "{_subnets(sip.phone_nets())}")) {{ $var(source) = "phones"; return; }}
}}

# Everyone but the nodes and the trunks: banned addresses dropped, floods banned.
route[GUARD] {{
    if (is_in_subnet("$si", "{_subnets(ignore)}")) {{
        return;
    }}
    if ($sht(ipban=>$si) != $null) {{
        exit;
    }}
    if (!pike_check_req()) {{
        $sht(ipban=>$si) = 1;
        xlog("L_WARN", "SIP edge: banned $si for {sip.ban_s} s: request flood\\n");
        exit;
    }}
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

route[IN_DIALOG] {{
    if (!loose_route()) {{
        sl_send_reply("404", "Not Here");
        exit;
    }}
    dlg_manage();
    # Only a node's requests may lead anywhere but to a node: nobody steers a made-up
    # in-dialog request through the edge to the carrier.
    if ($var(source) != "node") {{
        if ($du != $null) {{
            $var(next) = $(du{{uri.host}});
        }} else {{
            $var(next) = $rd;
        }}
        if (!ds_is_from_list("{SET_NODES}", "3", "sip:$var(next)")) {{
            sl_send_reply("403", "Forbidden");
            exit;
        }}
    }}
    route(RELAY);
}}

route[FROM_TRUNK] {{
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    record_route();
    append_hf("{SOURCE_HEADER}: $var(source)\\r\\n");
    route(TO_NODES);
}}

route[TO_NODES] {{
    if (!ds_select_dst("{SET_NODES}", "4")) {{
        xlog("L_ERR", "SIP edge: no hotline node answers: $rm from $si refused\\n");
        sl_send_reply("503", "Service Unavailable");
        exit;
    }}
    t_on_failure("NODE_FAILED");
    route(RELAY);
}}

failure_route[NODE_FAILED] {{
    if (t_is_canceled()) {{
        exit;
    }}
    if (t_branch_timeout() || t_check_status("^(500|503)$")) {{
        xlog("L_WARN", "SIP edge: node $du did not take the call ($T_reply_code): trying the next\\n");
        ds_mark_dst("ip");
        if (ds_next_dst()) {{
            t_on_failure("NODE_FAILED");
            t_relay();
        }}
    }}
}}

route[FROM_PHONE] {{
    if ($var(source) != "phones") {{
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    if (is_method("REGISTER")) {{
        route(AUTHENTICATE);
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        route(AUTHENTICATE);
        record_route();
        append_hf("{SOURCE_HEADER}: {SOURCE_PHONE}\\r\\n");
        route(TO_NODES);
    }}
    sl_send_reply("405", "Method Not Allowed");
    exit;
}}

route[AUTHENTICATE] {{
    auth_check("{realm}", "{PHONES_TABLE}", "1");
    $var(rc) = $rc;
    if ($var(rc) > 0) {{
        consume_credentials();
        return;
    }}
    # A wrong password or an unknown user name (the same challenge follows either way).
    if ($var(rc) == -2 || $var(rc) == -3 || $var(rc) == -8) {{
        # $shtinc: an integer item incremented atomically across the worker processes, once
        # it exists (the sum `$sht(...) + 1` made a string of it: "1" + 1 is "11", a ban at
        # the second failure).
        if ($sht(authfail=>$si) == $null) {{
            $sht(authfail=>$si) = 0;
        }}
        $var(fails) = $shtinc(authfail=>$si);
        xlog("L_NOTICE", "SIP edge: failed authentication from $si ($var(fails))\\n");
        if ($var(fails) >= {sip.ban_after} && !is_in_subnet("$si", "{_subnets(ignore)}")) {{
            $sht(ipban=>$si) = 1;
            xlog("L_WARN", "SIP edge: banned $si for {sip.ban_s} s: {sip.ban_after} failed authentications\\n");
            exit;
        }}
    }}
    if (is_method("REGISTER")) {{
        www_challenge("{realm}", "0");
    }} else {{
        proxy_challenge("{realm}", "0");
    }}
    exit;
}}

route[FROM_NODE] {{
    if (!is_method("INVITE")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    record_route();
    if ($Rp == {out_port}) {{
        route(TO_CARRIER);
        exit;
    }}
    # A node rings an agent: the phone registered here, unless it is on a call or ringing
    # for one already (another node's, maybe): app_queue hears busy and tries the next agent.
    $var(agent) = $rU;
    if (!lookup("location")) {{
        sl_send_reply("480", "Phone Not Registered");
        exit;
    }}
    # Checked and counted under the agent's lock: two nodes' INVITEs in the same moment,
    # in two of the edge's processes, must not both find the phone free.
    lock("$var(agent)");
    get_profile_size("agent", "$var(agent)", "$var(busy)");
    if ($var(busy) > 0) {{
        unlock("$var(agent)");
        sl_send_reply("486", "Busy Here");
        exit;
    }}
    dlg_manage();
    set_dlg_profile("agent", "$var(agent)");
    unlock("$var(agent)");
    dlg_set_property("ka-src");
    route(RELAY);
}}

route[TO_CARRIER] {{
    get_profile_size("outbound", "$var(out)");
    if ($var(out) >= {sip.outbound_channels}) {{
        xlog("L_WARN", "SIP edge: a call out refused: {sip.outbound_channels} calls out already\\n");
        sl_send_reply("503", "Lines Full");
        exit;
    }}
    dlg_manage();
    set_dlg_profile("outbound");
{carrier}
}}
"""
