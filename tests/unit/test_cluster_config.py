"""A cluster's rendering from the settings: the nodes on one machine, each node's settings
and pjsip.conf, the edge's kamailio.cfg, and what the edge's control socket says."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.cluster_settings import ClusterNode, ClusterSettings
from core.models import node_of
from core.settings import Settings, load_settings
from core.sip_phones import PhoneEntry, password_digests
from core.sip_settings import SipSettings, SipTrunk
from ivr.ami_monitor import Monitors
from ivr.cluster import EdgePhones, _active_calls, parse_dispatcher_list, parse_registrations, require_postgresql
from ivr.cluster_config import (
    EdgePaths,
    ami_targets,
    kamailio_db_url,
    node_settings,
    render_dispatcher,
    render_kamailio,
    render_node_pjsip,
)
from ivr.errors import AsteriskConfigError, ClusterRefused, EdgeNotReady

PG = "postgresql+psycopg://hotline:pw@10.1.0.5:5432/hotline"


def _settings(**cluster: object) -> Settings:
    base = load_settings(None, {"HOTLINE_DATABASE_URL": PG, "HOTLINE_AMI_SECRET": "x" * 24})
    carrier = SipTrunk(name="carrier", match=("192.0.2.0/28",), host="192.0.2.1", numbers=("12333",), outbound=True)
    sip = SipSettings(trunks=(carrier,), phone_networks=("10.2.0.0/16",), ban_after=7, ban_s=900, outbound_channels=12)
    return base.model_copy(
        update={
            "sip": sip,
            "agi": base.agi.model_copy(update={"servers": ("10.1.0.21:4573", "10.1.0.22:4573")}),
            "cluster": ClusterSettings.model_validate({"edge_address": "10.1.0.10", **cluster}),
        }
    )


def test_local_nodes_get_addresses_of_their_own_and_share_the_rtp_range() -> None:
    nodes = ClusterSettings(node_sip_port=5160).local_nodes(3, 10000, 20000)
    assert [(n.name, n.address, n.sip_port) for n in nodes] == [
        ("node1", "127.0.0.11", 5160),
        ("node2", "127.0.0.12", 5160),
        ("node3", "127.0.0.13", 5160),
    ]
    ranges = [(n.rtp_start, n.rtp_end) for n in nodes]
    assert all(start % 2 == 0 and end > start for start, end in ranges)
    assert all(a_end < b_start for (_, a_end), (b_start, _) in itertools.pairwise(ranges))
    with pytest.raises(ValueError, match="1 to 16"):
        ClusterSettings().local_nodes(17, 10000, 20000)


@pytest.mark.parametrize(
    ("values", "why"),
    [
        ({"edge_address": "0.0.0.0"}, "listens everywhere"),
        ({"edge_address": "edge.example"}, "no IP address"),
        ({"nodes": [{"name": "a", "address": "10.0.0.1"}, {"name": "a", "address": "10.0.0.2"}]}, "names must differ"),
        ({"nodes": [{"name": "a", "address": "127.0.0.1"}]}, "address and SIP port of their own"),
        ({"nodes": [{"name": "Node 1", "address": "10.0.0.1"}]}, "lower-case"),
    ],
)
def test_bad_cluster_settings_are_refused_with_the_reason(values: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        ClusterSettings.model_validate(values)


def test_each_node_gets_its_address_and_the_fastagi_servers_in_an_order_of_its_own() -> None:
    settings = _settings()
    nodes = (ClusterNode(name="node1", address="10.1.0.11"), ClusterNode(name="node2", address="10.1.0.12"))
    first, second = (node_settings(settings, n, i) for i, n in enumerate(nodes))
    assert (first.sip.bind, first.ami.host, first.sip.webrtc) == ("10.1.0.11", "10.1.0.11", False)
    assert first.agi.servers == ("10.1.0.21:4573", "10.1.0.22:4573")
    assert second.agi.servers == ("10.1.0.22:4573", "10.1.0.21:4573")


def test_ami_targets_are_the_one_asterisk_unless_the_cluster_is_enabled() -> None:
    nodes = [{"name": "node1", "address": "10.1.0.11"}, {"name": "node2", "address": "10.1.0.12"}]
    assert [node for node, _ in ami_targets(_settings(nodes=nodes))] == [None]
    targets = ami_targets(_settings(nodes=nodes, enabled=True))
    assert [(node.name if node else None, s.ami.host) for node, s in targets] == [
        ("node1", "10.1.0.11"),
        ("node2", "10.1.0.12"),
    ]


def test_a_node_answers_the_edge_alone_and_reaches_phones_and_the_carrier_through_it() -> None:
    settings = _settings()
    node = ClusterNode(name="node1", address="10.1.0.11")
    phone = PhoneEntry("1001", password_digests("1001", "hotline", "secret-1001-pw"))
    text = render_node_pjsip(node_settings(settings, node, 0), node, [phone])
    assert "endpoint_identifier_order = ip\n" in text
    assert "bind = 10.1.0.11:5060" in text
    identifies = [block.strip() for block in text.split("\n\n") if "type = identify" in block]
    assert identifies == ["[edge]\ntype = identify\nendpoint = edge\nmatch = 10.1.0.10"]
    assert "contact = sip:1001@10.1.0.10:5060" in text
    assert "contact = sip:10.1.0.10:5062" in text  # calls out: the edge's trunk port
    # No password or digest on a node: the edge authenticates phones.
    assert "password" not in text and "auth =" not in text


def test_the_edge_config_names_nodes_trunks_phone_networks_and_bans(tmp_path: Path) -> None:
    settings = _settings()
    nodes = (ClusterNode(name="node1", address="10.1.0.11"), ClusterNode(name="node2", address="10.1.0.12"))
    text = render_kamailio(settings, EdgePaths(tmp_path), "s" * 32)
    assert "listen=udp:10.1.0.10:5060" in text and "listen=tcp:10.1.0.10:5060" in text
    assert "listen=udp:10.1.0.10:5062" in text
    # Nodes are known from the dispatcher list alone: adding one is a reload, not a restart.
    assert 'ds_is_from_list("1", "3")' in text and "10.1.0.11" not in text
    assert 'is_in_subnet("$si", "192.0.2.0/28")) { $var(source) = "trunk-carrier"' in text
    assert 'is_in_subnet("$si", "10.2.0.0/16")) { $var(source) = "phones"' in text
    assert ">= 7 &&" in text and "autoexpire=900;" in text
    assert "$var(fails) = $shtinc(authfail=>$si);" in text  # an integer, not "1" + 1
    assert 'modparam("cfgutils", "lock_set_size", 8)' in text  # lock() works only with a set
    assert "$var(out) >= 12" in text
    assert '"postgres://hotline:pw@10.1.0.5:5432/hotline"' in text
    assert '$ru = "sip:" + $rU + "@192.0.2.1:5060"' in text
    assert render_dispatcher(nodes).splitlines()[1:] == [
        "1 sip:10.1.0.11:5060 0 0 name=node1",
        "1 sip:10.1.0.12:5060 0 0 name=node2",
    ]


def test_a_cluster_needs_postgresql() -> None:
    with pytest.raises(AsteriskConfigError, match="PostgreSQL"):
        kamailio_db_url("sqlite:///var/demo.db")
    sqlite = load_settings(None, {"HOTLINE_DATABASE_URL": "sqlite:///x.db"})
    with pytest.raises(ClusterRefused, match="needs PostgreSQL"):
        require_postgresql(sqlite)


def test_what_the_edge_and_a_node_say_is_read() -> None:
    listed = """{
	NRSETS: 1
	RECORDS: {
		SET: {
			ID: 1
			TARGETS: {
				DEST: {
					URI: sip:127.0.0.12:5160
					FLAGS: AP
					PRIORITY: 0
				}
				DEST: {
					URI: sip:127.0.0.11:5160
					FLAGS: IP
					PRIORITY: 0
				}
			}
		}
	}
}"""
    assert parse_dispatcher_list(listed) == {"127.0.0.12": "active", "127.0.0.11": "inactive"}
    assert _active_calls("3 active channels\n2 active calls\n41 calls processed\n") == 2
    assert node_of("node2-1796650815.0") == "node2"
    assert node_of("1796650815.0") is None


# `kamcmd ul.dump` from Kamailio 5.6 with one phone registered at the edge (2026-12-07).
UL_DUMP = """{
\tDomains: {
\t\tDomain: {
\t\t\tDomain: location
\t\t\tSize: 1024
\t\t\tAoRs: {
\t\t\t\tInfo: {
\t\t\t\t\tAoR: 1001
\t\t\t\t\tHashID: 924766748
\t\t\t\t\tContacts: {
\t\t\t\t\t\tContact: {
\t\t\t\t\t\t\tAddress: sip:1001@127.0.0.1:40638
\t\t\t\t\t\t\tExpires: 60
\t\t\t\t\t\t\tQ: -1
\t\t\t\t\t\t\tCall-ID: 1-29354@127.0.0.1
\t\t\t\t\t\t\tCSeq: 2
\t\t\t\t\t\t\tUser-Agent: hotline-tests-sipp
\t\t\t\t\t\t\tReceived: [not set]
\t\t\t\t\t\t\tPath: [not set]
\t\t\t\t\t\t\tState: CS_NEW
\t\t\t\t\t\t\tSocket: udp:127.0.0.1:5180
\t\t\t\t\t\t}
\t\t\t\t\t}
\t\t\t\t}
\t\t\t\tInfo: {
\t\t\t\t\tAoR: 1002
\t\t\t\t\tContacts: {
\t\t\t\t\t\tContact: {
\t\t\t\t\t\t\tAddress: sip:1002@192.168.1.20:5060;transport=udp
\t\t\t\t\t\t\tExpires: 3580
\t\t\t\t\t\t\tUser-Agent: Yealink SIP-T46U 108.86.0.45
\t\t\t\t\t\t\tReceived: sip:203.0.113.9:61002
\t\t\t\t\t\t}
\t\t\t\t\t\tContact: {
\t\t\t\t\t\t\tAddress: sip:1002@192.168.1.21:5060
\t\t\t\t\t\t\tExpires: 10
\t\t\t\t\t\t}
\t\t\t\t\t}
\t\t\t\t}
\t\t\t}
\t\t\tStats: {
\t\t\t\tRecords: 2
\t\t\t\tMax-Slots: 1
\t\t\t}
\t\t}
\t}
}
"""


def test_the_edges_registrations_read_from_its_location_table() -> None:
    now = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
    seen = parse_registrations(UL_DUMP, now)
    assert sorted(seen) == ["1001", "1002"]
    one, two = seen["1001"], seen["1002"]
    assert (one.uri, one.address, one.user_agent, one.expires) == (
        "sip:1001@127.0.0.1:40638",
        "127.0.0.1:40638",
        "hotline-tests-sipp",
        "2026-12-07T08:01:00+00:00",
    )
    # Behind NAT: where it came from, not what it wrote in its Contact; the first contact.
    assert (two.address, two.user_agent) == ("203.0.113.9:61002", "Yealink SIP-T46U 108.86.0.45")
    assert two.expires == "2026-12-07T08:59:40+00:00"
    assert parse_registrations("{\n\tDomains: {\n\t}\n}\n", now) == {}


class _Edge:
    """Stands for ivr.cluster.Cluster: the edge's answers in turn (a dict, or EdgeNotReady)."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)

    def registrations(self) -> object:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_console_sees_a_phone_registered_as_the_edge_has_it() -> None:
    now = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
    edge = _Edge(parse_registrations(UL_DUMP, now), EdgeNotReady("no answer"))
    phones = EdgePhones(edge, every_s=0.01)  # type: ignore[arg-type]
    assert phones.phone_registered("PJSIP/1001") is None  # not read yet: unknown
    monitors = Monitors([], phones=phones)
    seen: list[tuple[bool | None, bool | None]] = []

    async def watch() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(phones.run(stop))
        for _ in range(200):
            await asyncio.sleep(0.005)
            now_seen = (monitors.phone_registered("PJSIP/1001"), monitors.phone_registered("PJSIP/1003"))
            if not seen or seen[-1] != now_seen:
                seen.append(now_seen)
            if len(seen) == 3:
                break
        stop.set()
        await task

    asyncio.run(watch())
    # Registered 1001, not 1003; then the edge stops answering: unknown, not "unregistered".
    assert seen[-2:] == [(True, False), (None, None)], seen
