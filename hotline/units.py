"""The systemd units of an installed hotline, rendered from its settings (`hotline install`).

Pure: each function returns a unit's text. No secret ever goes into a unit: the programs
read them from the file `HOTLINE_CONFIG` names (units are world-readable, and their
command lines show in `ps` and `systemctl status`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.settings import Settings
from hotline.install_config import DATA_DIR
from ivr.fail2ban_config import JAIL, NFT_TABLE, BanFiles

SERVE: Final = "hotline-serve.service"
ASTERISK: Final = "hotline-asterisk.service"
CLUSTER: Final = "hotline-cluster.service"
BANS_DROPIN: Final = f"{ASTERISK}.d/sip-bans.conf"
# Every file `hotline install` may have put in the unit directory (uninstall removes these).
ALL_UNIT_FILES: Final = (SERVE, ASTERISK, CLUSTER, BANS_DROPIN)
# `hotline serve`'s own bound on its shutdown, and a margin for the interpreter's exit:
# systemd's SIGKILL only comes if that bound failed.
STOP_MARGIN_S: Final = 2
# The first `hotline asterisk up` builds the Asterisk root with debootstrap (a download of
# a Debian base system and Asterisk's packages): minutes, not seconds.
ASTERISK_START_TIMEOUT: Final = "20min"
# `hotline asterisk down`: `core stop now` (up to 15 s), then 10 s after each of SIGTERM
# and SIGKILL, then fail2ban's stop; its worst case, rounded up.
ASTERISK_STOP_TIMEOUT_S: Final = 60
# A thousand calls per FastAGI process are a thousand sockets, over systemd's soft limit of 1024.
NOFILE: Final = 65536


@dataclass(frozen=True)
class Layout:
    """Where an installed hotline's pieces are (paths as the server sees them)."""

    program: Path  # the `hotline` script of the installed package
    config: Path = Path("/etc/hotline/hotline.toml")
    data_dir: Path = DATA_DIR
    user: str = "hotline"


def serve_stop_timeout_s() -> int:
    from hotline.serve import SHUTDOWN_DEADLINE_S, SHUTDOWN_FORCE_AFTER_S

    return math.ceil(SHUTDOWN_DEADLINE_S + SHUTDOWN_FORCE_AFTER_S) + STOP_MARGIN_S


def is_cluster(settings: Settings) -> bool:
    """A site whose Asterisks are the cluster's nodes, behind the SIP edge (docs/cluster.md)."""
    return settings.cluster.enabled and bool(settings.cluster.nodes)


def _under_home(path: Path) -> bool:
    return any(path == home or home in path.parents for home in (Path("/home"), Path("/root"), Path("/run/user")))


def _hardening(settings: Settings, layout: Layout, *, strict: bool) -> list[str]:
    # ProtectHome=yes hides /home and /root; a package installed there (a venv in a home)
    # must stay readable, so then they are only made read-only.
    homes = "read-only" if any(_under_home(p) for p in _read_paths(settings, layout)) else "yes"
    return [
        "NoNewPrivileges=yes",
        # strict: the whole file system read-only but the data directory. full (Asterisk):
        # /usr, /boot and /etc read-only; `asterisk up` mounts, runs debootstrap and
        # fail2ban, whose every path would otherwise need listing.
        f"ProtectSystem={'strict' if strict else 'full'}",
        f"ReadWritePaths={' '.join(_writable(settings, layout))}",
        "PrivateTmp=yes",
        f"ProtectHome={homes}",
    ]


def _writable(settings: Settings, layout: Layout) -> list[str]:
    """The data directory, and any directory the settings put elsewhere ("-": a missing
    one does not stop the unit; the program says what is wrong with it)."""
    out = [str(layout.data_dir)]
    for path in (settings.asterisk.cache_dir, settings.recordings.dir, settings.notices.speech_dir):
        if path.is_absolute() and layout.data_dir not in (path, *path.parents):
            out.append(f"-{path}")
    return out


def _read_paths(settings: Settings, layout: Layout) -> tuple[Path, ...]:
    return (layout.program, settings.ivr.prompts_dir, settings.ivr.menu_file)


def _environment(layout: Layout) -> list[str]:
    return [f"Environment=HOTLINE_CONFIG={layout.config}", f"WorkingDirectory={layout.data_dir}"]


def _journal(name: str) -> list[str]:
    return ["StandardOutput=journal", "StandardError=journal", f"SyslogIdentifier={name}"]


def _low_ports(*ports: int) -> bool:
    return any(port < 1024 for port in ports)


def render_serve(settings: Settings, layout: Layout) -> str:
    """hotline-serve.service: `hotline serve`, all its components, as the hotline user."""
    telephony = CLUSTER if is_cluster(settings) else ASTERISK
    after = ["network-online.target", telephony]
    if settings.database.url.startswith("postgresql"):
        after.insert(1, "postgresql.service")
    caps = ["CapabilityBoundingSet="]  # serve needs no capability: its ports are above 1023
    if _low_ports(settings.web.port, settings.agi.port):
        caps = ["CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE"]
    lines = [
        "[Unit]",
        "Description=12333 hotline: FastAGI, AMI monitor, web console and SMS gateway (hotline serve)",
        "Documentation=man:systemd.service(5)",
        # Wants, not Requires: serve answers FastAGI and the console without Asterisk, and
        # its AMI watcher keeps trying (with backoff) until Asterisk answers.
        f"After={' '.join(after)}",
        f"Wants={' '.join(after)}",
        "",
        "[Service]",
        # serve prints "ready" but speaks no sd_notify: simple is the honest type.
        "Type=simple",
        f"User={layout.user}",
        f"Group={layout.user}",
        *_environment(layout),
        "# FastAGI processes: agi.workers in hotline.toml, read by serve (a --workers here",
        "# would be a second copy of it, stale after the next edit of hotline.toml).",
        f"ExecStart={layout.program} serve",
        "Restart=on-failure",
        "RestartSec=5",
        "# SIGTERM to serve alone: it stops its FastAGI workers itself once the calls in",
        "# progress had their grace period, and exits within its own bound (hotline/serve.py,",
        "# SHUTDOWN_DEADLINE_S + SHUTDOWN_FORCE_AFTER_S); systemd's SIGKILL comes only after that.",
        "KillMode=mixed",
        f"TimeoutStopSec={serve_stop_timeout_s()}",
        f"LimitNOFILE={NOFILE}",
        *_journal("hotline-serve"),
        *_hardening(settings, layout, strict=True),
        *caps,
        "ProtectKernelModules=yes",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


# What `hotline asterisk up|down` (as root) needs, and why; nothing else is kept.
_ASTERISK_CAPS: Final = (
    ("CAP_SYS_CHROOT", "chroot into the Asterisk root, for Asterisk and for `asterisk -rx`"),
    ("CAP_SYS_ADMIN", "mount and unmount the root's /proc, /dev, /dev/pts and the recordings' binds"),
    ("CAP_SETUID CAP_SETGID", "Asterisk drops to its account (-U/-G asterisk); apt in debootstrap to _apt"),
    ("CAP_CHOWN", "the run, recordings and speech directories given to Asterisk's account; debootstrap"),
    ("CAP_FOWNER", "debootstrap and the configuration set modes on files that are not root's"),
    ("CAP_DAC_OVERRIDE", "root writes Asterisk's configuration into directories of Asterisk's account"),
    ("CAP_KILL", "SIGTERM/SIGKILL to an Asterisk that no longer runs as root, when `core stop now` fails"),
    ("CAP_MKNOD", "debootstrap makes the root's device nodes on the first start"),
)


def _capability_lines(settings: Settings, *, edge: bool) -> list[str]:
    lines = []
    for caps, why in _ASTERISK_CAPS:
        lines += [f"# {caps}: {why}", f"CapabilityBoundingSet={caps}"]
    ports = [settings.sip.port, settings.sip.https_port]
    if edge:
        ports.append(settings.cluster.edge_port)
    if _low_ports(*ports):
        lines += ["# SIP or WSS below port 1024 (hotline.toml)", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"]
    return lines


def render_asterisk(settings: Settings, layout: Layout) -> str:
    """hotline-asterisk.service: the chrooted Asterisk that `hotline asterisk up` starts."""
    # Where `asterisk up` writes it (ivr/asterisk.py, LocalAsterisk.pid_file).
    pid_file = settings.asterisk.cache_dir.expanduser() / "asterisk-22.pid"
    lines = [
        "[Unit]",
        "Description=12333 hotline: Asterisk 22, chrooted, and its SIP bans (hotline asterisk up)",
        # `asterisk up` reads the agents' phones from the store into pjsip.conf.
        "After=network-online.target postgresql.service",
        "Wants=network-online.target postgresql.service",
        "",
        "[Service]",
        "# `hotline asterisk up` starts Asterisk in a session of its own, waits until AMI",
        "# accepts the login and Asterisk is fully booted, writes Asterisk's pid to its pid",
        "# file and returns: a daemon that forks, as Type=forking expects. Unlike a oneshot",
        "# with RemainAfterExit, systemd then knows the main process and restarts Asterisk if",
        "# it dies; ExecStop (`hotline asterisk down`) runs then too: fail2ban stopped, unmounted.",
        "Type=forking",
        f"PIDFile={pid_file}",
        *_environment(layout),
        f"ExecStart={layout.program} asterisk up",
        f"ExecStop={layout.program} asterisk down",
        "Restart=on-failure",
        "RestartSec=10",
        f"TimeoutStartSec={ASTERISK_START_TIMEOUT}",
        f"TimeoutStopSec={ASTERISK_STOP_TIMEOUT_S}",
        f"LimitNOFILE={NOFILE}",
        *_journal("hotline-asterisk"),
        # Root, as `asterisk up` requires, with only these capabilities. Its mounts are
        # made in this unit's own mount namespace (made by the options below): the host
        # does not see the root's /proc and /dev, and they go with the unit.
        *_capability_lines(settings, edge=False),
        *_hardening(settings, layout, strict=False),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def render_bans_dropin(settings: Settings, layout: Layout) -> str:
    """hotline-asterisk.service.d/sip-bans.conf: what the SIP bans add to the Asterisk unit."""
    files = BanFiles(settings.asterisk.cache_dir.expanduser() / "fail2ban")  # as SipBans has them
    lines = [
        "# The SIP bans (docs/security.md). `hotline asterisk up` writes the jail",
        f"# {JAIL} that ivr/fail2ban_config.py renders into {files.conf_dir}",
        "# and starts the hotline's own fail2ban server on it; `hotline asterisk down` stops it.",
        "# So the server runs in hotline-asterisk.service: a unit of its own would start a second",
        f"# server on the same socket ({files.socket}). Its log: {files.log_file}.",
        "[Unit]",
        # nftables.service flushes the whole ruleset when it starts: the bans' table
        # (inet NFT_TABLE) must be made after that, not wiped by it.
        "After=nftables.service",
        "",
        "[Service]",
        f"# CAP_NET_ADMIN: fail2ban's nftables action adds and removes the table inet {NFT_TABLE}",
        "CapabilityBoundingSet=CAP_NET_ADMIN",
        "",
    ]
    return "\n".join(lines)


def render_cluster(settings: Settings, layout: Layout) -> str:
    """hotline-cluster.service: the SIP edge (Kamailio) and the nodes' Asterisks, which
    `hotline cluster up` starts together and `down` stops together (ivr/cluster.py); a
    unit per node would need a command that starts one node, which there is not."""
    lines = [
        "[Unit]",
        "Description=12333 hotline: the SIP edge (Kamailio) and the Asterisk nodes (hotline cluster up)",
        # The edge keeps its registrations and dispatcher in PostgreSQL.
        "After=network-online.target postgresql.service",
        "Wants=network-online.target postgresql.service",
        "",
        "[Service]",
        # `cluster up` starts the edge and every node, each in a session of its own, waits
        # until they answer and returns; there is no one main process for systemd to watch,
        # so a oneshot that stays active, and `cluster down` stops them.
        "Type=oneshot",
        "RemainAfterExit=yes",
        *_environment(layout),
        f"ExecStart={layout.program} cluster up",
        f"ExecStop={layout.program} cluster down",
        # A oneshot restarts only when ExecStart fails; a node that dies later is out of
        # the edge's set until `hotline cluster up` (or a restart of this unit) brings it back.
        "Restart=on-failure",
        "RestartSec=10",
        f"TimeoutStartSec={ASTERISK_START_TIMEOUT}",
        f"TimeoutStopSec={ASTERISK_STOP_TIMEOUT_S * 2}",
        f"LimitNOFILE={NOFILE}",
        *_journal("hotline-cluster"),
        *_capability_lines(settings, edge=True),
        *_hardening(settings, layout, strict=False),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def render_units(settings: Settings, layout: Layout) -> dict[str, str]:
    """Every unit file (and drop-in) for these settings, by its path under the unit directory."""
    units = {SERVE: render_serve(settings, layout)}
    if is_cluster(settings):
        units[CLUSTER] = render_cluster(settings, layout)
    else:
        units[ASTERISK] = render_asterisk(settings, layout)
        if settings.sip.bans:
            units[BANS_DROPIN] = render_bans_dropin(settings, layout)
    return units
