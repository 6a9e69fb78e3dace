"""Settings of the SIP side: transports, the carrier trunks, agents' phones and the softphone.

`hotline asterisk up` renders pjsip.conf, http.conf and rtp.conf from these (ivr/pjsip_config.py).
A trunk is the carrier's side of the hotline: the addresses it sends from, the numbers that
mean "the hotline" on it (carriers send 12333, the county's long number, with or without area
code or country code), and, for one trunk, the way out for callbacks and notices.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Names that become section names in pjsip.conf and parts of dialplan context names.
_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
# A called number as carriers send it in the Request-URI user part.
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_HEADER: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}")
# A department a softphone can transfer a caller to: an Asterisk queue, and its short number.
_QUEUE_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}")
_SHORT_NUMBER = re.compile(r"[0-9]{2,8}")
# What pjsip.conf can carry in a value: printable ASCII without the comment character.
_CONF_VALUE = re.compile(r"[!-~]*")
# Loopback and the private ranges (RFC 1918, RFC 4193): where phones may register from
# when the site names no network of its own.
PRIVATE_NETWORKS: Final = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7")


def config_name(value: str, what: str) -> str:
    """`value` if it may name `what` (a trunk, a node, a cluster) in pjsip.conf section
    names, dialplan context names and file names; ValueError otherwise."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"a {what} name is lower-case letters, digits and '-', starting with a letter")
    return value


def check_networks(value: tuple[str, ...]) -> tuple[str, ...]:
    """Each entry an IP address or network (`10.0.0.5`, `10.0.0.0/24`, `::1`), never a host name."""
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise ValueError(f"{entry!r} is no IP address or network") from exc
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _conf_safe(value: str, what: str) -> str:
    if not _CONF_VALUE.fullmatch(value) or any(c in value for c in ";[]\\"):
        raise ValueError(f"{what}: use printable ASCII without spaces, ';', '\\', '[' or ']'")
    return value


class SipTrunk(_Section):
    """One carrier connection (中继). Inbound calls are recognised by source address only."""

    name: str
    # Addresses or networks the carrier's INVITEs come from (PJSIP identify `match`).
    match: tuple[str, ...]
    # Where calls out go: the carrier's SIP server (host or address) and port.
    host: str = ""
    port: int = Field(5060, ge=1, le=65535)
    transport: Literal["udp", "tcp"] = "udp"
    # Called numbers that mean the hotline on this trunk; each is sent to the IVR as 12333.
    numbers: tuple[str, ...] = ("12333",)
    # Outbound registration, for carriers that want the hotline registered with them.
    registration: bool = False
    username: str = ""
    password: str = Field("", description="secret: the carrier's registration and outbound password")
    # Callbacks (and later voice notices) leave through the one trunk marked outbound.
    outbound: bool = False
    # The called number as this carrier wants it in calls out: the national form
    # (13812345678, 05711234567; most Chinese carriers) or E.164 (+8613812345678).
    dial_format: Literal["national", "e164"] = "national"
    codecs: tuple[Literal["alaw", "ulaw"], ...] = ("alaw", "ulaw")
    # rfc4733 (RFC 4733 telephone-events); auto also listens for in-band tones when the
    # carrier's SDP offers no telephone-event; inband only for carriers without RFC 4733.
    dtmf_mode: Literal["rfc4733", "auto", "inband"] = "rfc4733"
    # A SIP header in which this carrier's INVITE names the 12345 work order of a call 12345
    # transferred here (三方转接), e.g. "X-12345-Order"; empty: none is read. The trunk's
    # context keeps its value only if it is 1 to 40 of A-Z a-z 0-9 _ - (ivr/pjsip_config.py).
    order_header: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return config_name(value, "trunk")

    @field_validator("order_header")
    @classmethod
    def _header(cls, value: str) -> str:
        if value and not _HEADER.fullmatch(value):
            raise ValueError(f"{value[:64]!r}: a SIP header name (a letter, then letters, digits or '-'; 64 at most)")
        return value

    @field_validator("match")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a trunk needs the addresses its carrier sends from (match)")
        return check_networks(value)

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for number in value:
            if not _NUMBER.fullmatch(number):
                raise ValueError(f"{number!r}: a called number is digits, optionally after '+'")
        return value

    @field_validator("host", "username", "password")
    @classmethod
    def _safe(cls, value: str) -> str:
        return _conf_safe(value, "trunk host, username and password")

    @model_validator(mode="after")
    def _complete(self) -> SipTrunk:
        if (self.outbound or self.registration) and not self.host:
            raise ValueError(f"trunk {self.name}: outbound calls and registration need its host")
        if self.registration and not (self.username and self.password):
            raise ValueError(f"trunk {self.name}: registration needs username and password")
        return self


class SipSettings(_Section):
    # Transports: UDP and TCP on the same address and port (RFC 3261 §18.1.1: a request
    # within 200 bytes of the path MTU, or over 1,300 bytes, must go over TCP).
    bind: str = "0.0.0.0"
    port: int = Field(5060, ge=1, le=65535)
    # Behind NAT: the public address to put in SIP and SDP, and the networks that are local.
    external_address: str = ""
    local_networks: tuple[str, ...] = ()
    rtp_start: int = Field(10000, ge=1024, le=65534)
    rtp_end: int = Field(20000, ge=1025, le=65535)
    # The hotline's own number: what callers dial, the caller ID of calls out.
    hotline_number: str = Field("12333", pattern=r"^[0-9]{3,20}$")
    caller_id_name: str = "12333"
    # Calls out at once through the outbound trunk, so inbound callers keep their lines.
    outbound_channels: int = Field(10, ge=0, le=1000)
    # How long a call out rings the resident before it counts as not answered.
    outbound_ring_s: int = Field(40, ge=5, le=300)
    # Numbers written without a country code are in this one (the dial form of calls out).
    country_code: str = Field("86", pattern=r"^[1-9][0-9]{0,2}$")
    trunks: tuple[SipTrunk, ...] = ()
    # Agents' phones: the realm of their digest credentials (password_digest is computed
    # over username:realm:password, so changing it invalidates every stored credential).
    realm: str = Field("hotline", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    phone_codecs: tuple[Literal["alaw", "ulaw", "opus", "g722"], ...] = ("alaw", "ulaw")
    # PJSIP tries identifiers in this order; `ip` first means a trunk matching the phones'
    # address takes their calls, so sites with both on one host put `username` first.
    identify_order: tuple[Literal["ip", "username"], ...] = ("ip", "username")
    # The softphone: SIP over secure WebSocket to Asterisk's HTTP server (TLS).
    webrtc: bool = True
    https_bind: str = "0.0.0.0"
    https_port: int = Field(8089, ge=1, le=65535)
    # A site's certificate; empty: `hotline asterisk up` makes a self-signed one for the demo.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Derives each agent's softphone password (HMAC); never stored, only its digest is.
    softphone_secret: str = Field("", description="secret: set it in the TOML file or HOTLINE_SIP_SOFTPHONE_SECRET")
    # Where an agent may blind-transfer a caller (SIP REFER from a phone): queue name ->
    # short number, e.g. {"hotline-labour" = "8002"}. Only these numbers and 12333 are
    # reachable from a phone; nothing leads to the outbound trunk.
    departments: dict[str, str] = Field(default_factory=dict)
    # Where agents' phones and softphones may register and call from (PJSIP permit/deny and
    # contact ACLs). Empty: sip.local_networks; both empty: loopback and the private ranges,
    # so a server reachable from the Internet never takes a phone's registration from there.
    phone_networks: tuple[str, ...] = ()
    # Password guessing (docs/security.md): fail2ban, started by `hotline asterisk up`,
    # bans an address from the SIP and WSS ports for ban_s after ban_after authentication
    # failures within ban_window_s, as Asterisk's security log shows them. The trunks'
    # addresses, this host's own and ban_ignore are never banned.
    bans: bool = True
    ban_after: int = Field(10, ge=1, le=1000)
    ban_window_s: int = Field(600, ge=10, le=7 * 86400)
    ban_s: int = Field(3600, ge=5, le=365 * 86400)
    ban_ignore: tuple[str, ...] = ()

    @field_validator("departments")
    @classmethod
    def _departments(cls, value: dict[str, str]) -> dict[str, str]:
        for queue, number in value.items():
            if not _QUEUE_NAME.fullmatch(queue):
                raise ValueError(f"departments: {queue!r} is no queue name (lower-case letters, digits, '-')")
            if not _SHORT_NUMBER.fullmatch(number):
                raise ValueError(f"departments: {queue} = {number!r}: a department number is 2 to 8 digits")
        if len(set(value.values())) != len(value):
            raise ValueError("departments: each department needs a number of its own")
        return value

    @field_validator("local_networks", "phone_networks", "ban_ignore")
    @classmethod
    def _local(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_networks(value)

    @field_validator("bind", "https_bind", "external_address")
    @classmethod
    def _safe(cls, value: str) -> str:
        return _conf_safe(value, "sip addresses")

    @field_validator("caller_id_name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in ';[]\\"<>') or not value.isprintable():
            raise ValueError("caller_id_name: printable text without ';', '[', ']', '\\', '\"', '<' or '>'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SipSettings:
        if self.rtp_end <= self.rtp_start:
            raise ValueError("rtp_end must be above rtp_start")
        names = [t.name for t in self.trunks]
        if len(set(names)) != len(names):
            raise ValueError("trunk names must differ")
        if sum(t.outbound for t in self.trunks) > 1:
            raise ValueError("at most one trunk is marked outbound")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("set both tls_cert and tls_key, or neither (a self-signed pair is made)")
        if self.hotline_number in self.departments.values():
            raise ValueError("departments: a department number cannot be the hotline number")
        if len(set(self.identify_order)) != len(self.identify_order) or not self.identify_order:
            raise ValueError("identify_order names ip and/or username, each once")
        return self

    def phone_nets(self) -> tuple[str, ...]:
        """Where phones may register from: phone_networks, else local_networks, else private."""
        return self.phone_networks or self.local_networks or PRIVATE_NETWORKS

    def outbound_trunk(self) -> SipTrunk | None:
        return next((t for t in self.trunks if t.outbound), None)
