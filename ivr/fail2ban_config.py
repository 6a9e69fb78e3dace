"""fail2ban's configuration for the SIP bans, rendered from `[sip]`, and what its client says.

The hotline runs a fail2ban server of its own (not Debian's fail2ban service, which a site
may run for ssh): its configuration directory, socket, pid file, database and log live
under `<asterisk.cache_dir>/fail2ban`. Its one jail reads Asterisk's security log (the
`security` channel of dialplans/logger.conf) with fail2ban's stock `asterisk` filter,
which matches the security events of failed authentication (ChallengeResponseFailed,
InvalidPassword), unknown accounts (InvalidAccountID) and ACL refusals (FailedACL) with
their `RemoteAddress`, and bans through fail2ban's stock `nftables` action in a table of
its own, on the SIP port (UDP and TCP) and the softphone's WSS port.

Nothing here does I/O; ivr/sip_bans.py writes these files and drives the server.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.sip_settings import SipSettings

JAIL: Final = "hotline-sip"
# An nftables table of our own (family inet), so a site's own fail2ban (table f2b-table)
# and ours never touch each other's rules.
NFT_TABLE: Final = "hotline-bans"
FILTER: Final = "asterisk"  # /etc/fail2ban/filter.d/asterisk.conf, Debian's package
ACTION: Final = "nftables"  # /etc/fail2ban/action.d/nftables.conf
# `fail2ban-client get JAIL banip --with-time` (fail2ban 1.0):
#   127.0.0.7 \t2026-12-07 05:40:01 + 3600 = 2026-12-07 06:40:01
_BAN_LINE: Final = re.compile(
    r"^(?P<address>[0-9A-Fa-f:.]+)\s+(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*\+\s*(?P<seconds>-?\d+)\s*="
    r"\s*(?P<until>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)"
)
_TIME: Final = "%Y-%m-%d %H:%M:%S"
# fail2ban's own log (its actions at NOTICE):
#   2026-12-07 05:36:57,020 fail2ban.actions        [17922]: NOTICE  [hotline-sip] Ban 127.0.0.99
_EVENT_LINE: Final = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ fail2ban\.actions\s+\[\d+\]:\s+NOTICE\s+"
    r"\[(?P<jail>[^\]]+)\] (?P<what>Ban|Unban) (?P<address>[0-9A-Fa-f:.]+)\s*$"
)


@dataclass(frozen=True)
class BanFiles:
    """Where our fail2ban keeps its things, under `<cache_dir>/fail2ban`."""

    base: Path

    @property
    def conf_dir(self) -> Path:
        return self.base / "conf"

    @property
    def socket(self) -> Path:
        return self.base / "fail2ban.sock"

    @property
    def pid_file(self) -> Path:
        return self.base / "fail2ban.pid"

    @property
    def db_file(self) -> Path:
        return self.base / "fail2ban.sqlite3"

    @property
    def log_file(self) -> Path:
        return self.base / "fail2ban.log"


@dataclass(frozen=True)
class Ban:
    """An address banned now, since when and until when (the host's local time)."""

    address: str
    banned_at: dt.datetime | None
    until: dt.datetime | None

    def as_json(self) -> dict[str, str | None]:
        return {
            "address": self.address,
            "banned_at": self.banned_at.isoformat(timespec="seconds") if self.banned_at else None,
            "until": self.until.isoformat(timespec="seconds") if self.until else None,
        }


@dataclass(frozen=True)
class BanEvent:
    """A ban or an unban, as fail2ban's log has it (the host's local time)."""

    at: dt.datetime
    what: str  # "ban" or "unban"
    address: str

    def as_json(self) -> dict[str, str]:
        return {"at": self.at.isoformat(timespec="seconds"), "what": self.what, "address": self.address}


def parse_events(text: str, jail: str = JAIL) -> list[BanEvent]:
    """The bans and unbans of `jail` in fail2ban's log, in order.

    >>> line = "2026-12-07 05:36:57,020 fail2ban.actions        [17922]: NOTICE  [hotline-sip] Ban 127.0.0.7"
    >>> parse_events(line)[0].what
    'ban'
    """
    events = []
    for line in text.splitlines():
        match = _EVENT_LINE.match(line)
        if match and match["jail"] == jail:
            at = dt.datetime.strptime(match["at"], _TIME)
            events.append(BanEvent(at, match["what"].lower(), match["address"]))
    return events


def render_server(files: BanFiles) -> str:
    """fail2ban.conf: the server's socket, pid file, database and log, all ours."""
    return "\n".join(
        [
            "# Written by `hotline asterisk up`; do not edit.",
            "[Definition]",
            "loglevel = INFO",
            f"logtarget = {files.log_file}",
            "syslogsocket = auto",
            "allowipv6 = auto",
            f"socket = {files.socket}",
            f"pidfile = {files.pid_file}",
            f"dbfile = {files.db_file}",
            # Bans survive a restart of the server while they last (the database).
            "dbpurgeage = 1d",
            "",
        ]
    )


def banned_ports(sip: SipSettings) -> tuple[int, ...]:
    """The SIP port (UDP and TCP) and, with the softphone, its WSS port."""
    ports = [sip.port]
    if sip.webrtc and sip.https_port != sip.port:
        ports.append(sip.https_port)
    return tuple(ports)


def never_banned(sip: SipSettings) -> tuple[str, ...]:
    """The trunks' addresses (a carrier is identified by address and never authenticates,
    and banning it would take the hotline off the air) and `sip.ban_ignore`."""
    seen = [m for t in sip.trunks for m in t.match] + list(sip.ban_ignore)
    return tuple(dict.fromkeys(seen))


def render_jail(sip: SipSettings, security_log: Path, log_timezone: str | None) -> str:
    """jail.conf with the one jail: `ban_after` failures within `ban_window_s` ban the
    address for `ban_s` from the SIP and WSS ports. fail2ban also ignores this host's own
    addresses (ignoreself), so a phone or a test on this host is never banned by mistake.

    `log_timezone`: the offset Asterisk writes its log times in (its chroot's zone), when
    it differs from the host's: fail2ban reads log times as local time otherwise, and lines
    that look hours old are too old to count.
    """
    ports = ",".join(str(p) for p in banned_ports(sip))
    action = f'{ACTION}[name={JAIL}, port="{ports}", protocol="tcp,udp", table="{NFT_TABLE}", blocktype=drop]'
    lines = [
        "# Written by `hotline asterisk up` from [sip]; do not edit.",
        "[DEFAULT]",
        "ignoreself = true",
        f"ignoreip = {' '.join(never_banned(sip))}",
        "",
        f"[{JAIL}]",
        "enabled = true",
        f"filter = {FILTER}",
        f"logpath = {security_log}",
        "backend = auto",
        f"maxretry = {sip.ban_after}",
        f"findtime = {sip.ban_window_s}",
        f"bantime = {sip.ban_s}",
        f"action = {action}",
    ]
    if log_timezone:
        lines.append(f"logtimezone = {log_timezone}")
    return "\n".join(lines) + "\n"


def utc_offset_name(offset: dt.timedelta) -> str:
    """fail2ban's spelling of a fixed offset: `UTC`, `UTC+0800`, `UTC-0330`.

    >>> utc_offset_name(dt.timedelta(hours=8)), utc_offset_name(dt.timedelta(0))
    ('UTC+0800', 'UTC')
    """
    if not offset:
        return "UTC"
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}{minutes % 60:02d}"


def parse_bans(text: str) -> list[Ban]:
    """The output of `fail2ban-client get JAIL banip --with-time`, one ban a line.

    >>> parse_bans("127.0.0.7 \\t2026-12-07 05:40:01 + 15 = 2026-12-07 05:40:16\\n")[0].address
    '127.0.0.7'
    """
    bans = []
    for line in text.splitlines():
        match = _BAN_LINE.match(line.strip())
        if match:
            at = dt.datetime.strptime(match["at"], _TIME)
            until = dt.datetime.strptime(match["until"], _TIME)
            bans.append(Ban(match["address"], at, until))
        elif line.strip():
            bans.append(Ban(line.split()[0], None, None))
    return bans
