"""Settings of the cluster: a SIP edge (Kamailio) in front of several Asterisk nodes.

`hotline cluster up` renders the edge's kamailio.cfg and each node's Asterisk configuration
from these and the rest of the settings (ivr/cluster_config.py). One machine runs the
edge and every node on loopback addresses of their own (`--nodes N`: 127.0.0.11, .12, …);
a site lists its nodes here, one Asterisk per machine, and the same rendering serves both.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.sip_settings import config_name

# Where `--nodes N` puts the nodes on one machine: 127.0.0.11, 127.0.0.12, …
LOCAL_FIRST_ADDRESS: Final = "127.0.0.11"
MAX_NODES: Final = 16


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _address(value: str, what: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError as exc:
        raise ValueError(f"{what}: {value!r} is no IP address (a node or edge has one of its own)") from exc
    if address.is_unspecified:
        raise ValueError(f"{what}: {value} listens everywhere; give the one address it answers on")
    return value


class ClusterNode(_Section):
    """One Asterisk of the cluster: where it answers SIP (from the edge only) and AMI."""

    name: str
    address: str
    sip_port: int = Field(5060, ge=1, le=65535)
    ami_port: int = Field(5038, ge=1, le=65535)
    # Its RTP ports: nodes on one machine need ranges of their own.
    rtp_start: int = Field(10000, ge=1024, le=65534)
    rtp_end: int = Field(20000, ge=1025, le=65535)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return config_name(value, "node")

    @field_validator("address")
    @classmethod
    def _ip(cls, value: str) -> str:
        return _address(value, "node address")

    @model_validator(mode="after")
    def _range(self) -> ClusterNode:
        if self.rtp_end <= self.rtp_start:
            raise ValueError(f"node {self.name}: rtp_end must be above rtp_start")
        return self


class ClusterSettings(_Section):
    # This cluster's name on this machine: its edge's files are under <cache_dir>/<name>/
    # (a test or a benchmark runs a cluster of its own beside the demo's).
    name: str = "cluster"
    # The edge: where carriers and phones send SIP. One address (the nodes listen on theirs
    # on the same port, so the edge cannot take 0.0.0.0).
    edge_address: str = "127.0.0.1"
    edge_port: int = Field(5060, ge=1, le=65535)
    # Whether `hotline serve` follows every node (one AMI link each, agents' changes sent to
    # all): on with a site's nodes below, or with the nodes `hotline cluster up` started here.
    enabled: bool = False
    # A site's nodes; empty: `hotline cluster up --nodes N` makes N on this machine, each
    # answering SIP on node_sip_port of its own address.
    nodes: tuple[ClusterNode, ...] = ()
    node_sip_port: int = Field(5060, ge=1, le=65535)
    # The edge asks every node with SIP OPTIONS this often; a node that does not answer
    # is out of the set at once and back after it answers again.
    probe_interval_s: int = Field(2, ge=1, le=60)
    # How long the edge waits for a node's first answer to an INVITE before it tries the next.
    node_answer_ms: int = Field(2000, ge=200, le=30000)
    # The Kamailio binary (Debian's package puts it in /usr/sbin).
    kamailio: str = "/usr/sbin/kamailio"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return config_name(value, "cluster")

    @field_validator("edge_address")
    @classmethod
    def _edge(cls, value: str) -> str:
        return _address(value, "cluster.edge_address")

    @model_validator(mode="after")
    def _distinct(self) -> ClusterSettings:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError("cluster node names must differ")
        places = [(n.address, n.sip_port) for n in self.nodes] + [(self.edge_address, self.edge_port)]
        if len(set(places)) != len(places):
            raise ValueError("the edge and each node need an address and SIP port of their own")
        return self

    def local_nodes(self, count: int, rtp_start: int, rtp_end: int) -> tuple[ClusterNode, ...]:
        """`count` nodes on this machine: loopback addresses from 127.0.0.11 on, the SIP and
        AMI ports of the settings, and the RTP range split between them."""
        if not 1 <= count <= MAX_NODES:
            raise ValueError(f"--nodes: 1 to {MAX_NODES}")
        first = ipaddress.ip_address(LOCAL_FIRST_ADDRESS)
        share = (rtp_end - rtp_start) // count
        if share < 100:
            raise ValueError(f"sip.rtp_start..rtp_end has too few ports for {count} nodes")
        share -= share % 2  # RTP on even ports, RTCP on the odd one above
        return tuple(
            ClusterNode(
                name=f"node{i + 1}",
                address=str(first + i),
                sip_port=self.node_sip_port,
                rtp_start=rtp_start + i * share,
                rtp_end=rtp_start + (i + 1) * share - 1,
            )
            for i in range(count)
        )
