"""Writing `dialplans/` and the built prompts into the Asterisk root.

Our .conf files replace Debian's of the same name; every other Debian file stays, but for
DISABLED_FILES, set aside because they only make Asterisk log warnings. Our files are
templates: `@AMI_SECRET@` and friends are filled in from the settings here, so
no secret lives in the repository.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from core.cluster_settings import ClusterNode
from core.settings import Settings
from core.sip_phones import PhoneEntry
from ivr.asterisk_root import resolve_in_root
from ivr.cluster_config import render_node_pjsip
from ivr.destinations_dialplan import render_destinations
from ivr.dialplan import AGI_SERVER_SEPARATOR, GLOBAL_AGI_SERVERS, GLOBAL_RECORDINGS_DIR, SOUNDS_SUBDIR
from ivr.errors import AsteriskConfigError
from ivr.pjsip_config import (
    PJSIP_FILE,
    RTP_FILE,
    TRUNKS_DIALPLAN_FILE,
    identify_warnings,
    outbound_globals,
    render_pjsip,
    render_rtp,
    render_trunk_dialplan,
)
from ivr.skills import RULES_FILE, SKILLS_FILE, queuerules_conf, queues_conf
from ivr.webrtc_config import HTTP_FILE, install_tls, render_http

logger = logging.getLogger(__name__)

DIALPLANS_DIR: Final = Path(__file__).resolve().parent.parent / "dialplans"
ETC_DIR: Final = "/etc/asterisk"
GLOBALS_FILE: Final = "extensions_hotline_globals.conf"
# Readable by the asterisk group only: they hold a secret.
SECRET_FILES: Final = frozenset({"manager.conf"})
# Debian files set aside (renamed to <name>.disabled): pbx_config logs "users.conf is
# deprecated" at every start while users.conf exists, even empty.
DISABLED_FILES: Final = ("users.conf",)
_TOKEN = re.compile(r"@([A-Z][A-Z0-9_]*)@")
_USER = re.compile(r"[A-Za-z0-9_.-]+")


def template_values(settings: Settings) -> dict[str, str]:
    """What the `@NAME@` tokens of dialplans/*.conf stand for."""
    ami = settings.ami
    if not _USER.fullmatch(ami.user):
        raise AsteriskConfigError(f"ami.user {ami.user!r}: use letters, digits, '_', '.', '-' only")
    # In Asterisk's .conf syntax ';' starts a comment and whitespace is trimmed.
    if any(not 33 <= ord(c) <= 126 or c in ";\\[]" for c in ami.secret):
        raise AsteriskConfigError("ami.secret: use printable ASCII without spaces, ';', '\\', '[' or ']'")
    try:
        bind = str(ipaddress.ip_address(ami.host))
    except ValueError:
        bind = "127.0.0.1"  # a host name: AMI stays on loopback, as before nodes had addresses
    permit = "\n".join(f"permit = {ipaddress.ip_network(net, strict=False).with_netmask}" for net in ami.permit)
    return {
        "AMI_BIND": bind,
        "AMI_PORT": str(ami.port),
        "AMI_USER": ami.user,
        "AMI_SECRET": ami.secret,
        "AMI_PERMIT": permit,
        # The CDR accountcode of every call into 12333: whose records these are (the
        # monitor's catch-up imports only its own instance's calls).
        "ASTERISK_INSTANCE": settings.asterisk.instance,
    }


def render(text: str, values: dict[str, str], source: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise AsteriskConfigError(f"{source}: unknown template token @{name}@")
        return values[name]

    return _TOKEN.sub(substitute, text)


def agi_address(settings: Settings) -> str:
    """host:port that Asterisk dials for FastAGI (same network namespace as the server)."""
    return settings.agi.address()


# A node's own directories in the shared root (asterisk.conf [directories]); the rest
# (modules, sounds, music on hold) is shared.
LOG_DIR: Final = "/var/log/asterisk"
NODE_DIRECTORIES: Final = {
    "astetcdir": ETC_DIR,
    "astrundir": "/var/run/asterisk",
    "astlogdir": LOG_DIR,
    "astspooldir": "/var/spool/asterisk",
    "astdbdir": "/var/lib/asterisk",
    "astcachedir": "/var/cache/asterisk",
}


def node_dir(path: str, node: str) -> str:
    """A node's own copy of one of Asterisk's directories: /var/log/asterisk -> /var/log/asterisk-node1."""
    return f"{path.rstrip('/')}-{node}"


def install_node_layout(root: Path, node: str, owner: tuple[int, int]) -> None:
    """A node's directories in the root, Debian's configuration files copied into its
    /etc/asterisk-<node> (ours are written over them next), and its asterisk.conf naming
    its own directories and its system name, which prefixes every UNIQUEID, so call ids of
    different nodes never collide. Everything else (modules, sounds, keys) keeps Asterisk's
    compiled-in places, as the local Asterisk does: Debian's asterisk.conf only lists them
    in a template section, which Asterisk does not apply."""
    source_etc = resolve_in_root(root, ETC_DIR)
    etc = resolve_in_root(root, node_dir(ETC_DIR, node))
    etc.mkdir(parents=True, exist_ok=True)
    for conf in sorted(source_etc.iterdir()):
        target = etc / conf.name
        if conf.is_file() and not conf.name.startswith("."):
            shutil.copy2(conf, target)
            stat = conf.stat()
            os.chown(target, stat.st_uid, stat.st_gid)  # some are readable by the asterisk group only
    lines = ["; Written by `hotline cluster up`; do not edit.", "[directories]"]
    for key, directory_path in NODE_DIRECTORIES.items():
        inner = node_dir(directory_path, node)
        lines.append(f"{key} => {inner}")
        if key != "astetcdir":
            _mirror_directories(resolve_in_root(root, directory_path), resolve_in_root(root, inner), owner)
    lines += ["[options]", f"systemname = {node}"]
    _write(etc / "asterisk.conf", "\n".join(lines) + "\n", owner[1], secret=False)


def instance_log_dir(instance: str) -> str:
    """The local Asterisk's log directory for one instance (asterisk.instance), inside the
    root: its queue_log, cdr-csv/Master.csv, messages and security log."""
    return f"{LOG_DIR}/{instance}"


def install_local_layout(root: Path, instance: str, owner: tuple[int, int]) -> None:
    """The local Asterisk's asterisk.conf, naming this instance's own log directory (made
    here, with the cdr-csv directory that cdr_csv writes into but does not create): the
    demo, the tests and a benchmark take turns with the one root, and each imports only
    the records its own calls wrote. Read at start only: a running Asterisk writing
    elsewhere is restarted by `LocalAsterisk.up`."""
    log_dir = instance_log_dir(instance)
    for inner in (log_dir, f"{log_dir}/cdr-csv"):
        directory = resolve_in_root(root, inner)
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, *owner)
    lines = [
        "; Written by `hotline asterisk up` from asterisk.instance; do not edit.",
        "; Everything but the log directory keeps Asterisk's compiled-in places.",
        "[directories]",
        f"astlogdir => {log_dir}",
        "[options]",
    ]
    _write(resolve_in_root(root, f"{ETC_DIR}/asterisk.conf"), "\n".join(lines) + "\n", owner[1], secret=False)


def _mirror_directories(source: Path, target: Path, owner: tuple[int, int]) -> None:
    """`target` and the subdirectories Debian made in `source` (cdr-csv, outgoing, tmp …),
    owned by Asterisk's user; not the platform's bind-mounted recordings and speech, which
    every node shares at their own paths."""
    for directory in [target, *(target / d.name for d in _subdirectories(source))]:
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, *owner)


def _subdirectories(path: Path) -> list[Path]:
    if not path.is_dir():
        return []
    return [d for d in path.iterdir() if d.is_dir() and not d.is_symlink() and not d.name.startswith("hotline")]


def agi_servers(settings: Settings) -> tuple[str, ...]:
    """The FastAGI servers Asterisk tries in order: agi.servers, else this host's own."""
    return settings.agi.dial_servers()


def install_config(
    root: Path,
    settings: Settings,
    group_id: int,
    sources_dir: Path = DIALPLANS_DIR,
    phones: Sequence[PhoneEntry] = (),
    *,
    etc_dir: str = ETC_DIR,
    node: ClusterNode | None = None,
) -> None:
    """Copy dialplans/*.conf (rendered), the generated globals and the SIP configuration
    (pjsip.conf with the trunks and `phones`, rtp.conf, the trunks' contexts) into the
    root's /etc/asterisk, or a cluster node's /etc/asterisk-<node>."""
    values = template_values(settings)
    etc = resolve_in_root(root, etc_dir)
    sources = sorted(sources_dir.glob("*.conf"))
    if not sources:
        raise AsteriskConfigError(f"no .conf files in {sources_dir}")
    for source in sources:
        text = render(source.read_text(encoding="utf-8"), values, source.name)
        _write(etc / source.name, text, group_id, secret=source.name in SECRET_FILES)
    globals_text = (
        "; Written by `hotline asterisk up` from the settings; do not edit.\n"
        f"{GLOBAL_AGI_SERVERS}={AGI_SERVER_SEPARATOR.join(agi_servers(settings))}\n"
        f"{GLOBAL_RECORDINGS_DIR}={settings.recordings.asterisk_dir.rstrip('/')}\n"
    ) + "".join(f"{name}={value}\n" for name, value in outbound_globals(settings.sip).items())
    _write(etc / GLOBALS_FILE, globals_text, group_id, secret=False)
    _write(etc / SKILLS_FILE, queues_conf(settings), group_id, secret=False)
    _write(etc / RULES_FILE, queuerules_conf(settings), group_id, secret=False)
    install_sip(root, settings, group_id, phones, etc_dir=etc_dir, node=node)
    if settings.sip.webrtc:
        install_tls(settings.sip, etc, group_id)
    _write(etc / HTTP_FILE, render_http(settings.sip, etc_dir), group_id, secret=False)
    _write(resolve_in_root(root, "/etc/hosts"), hosts_file(), group_id, secret=False)
    for name in DISABLED_FILES:
        if (etc / name).exists():
            (etc / name).replace(etc / f"{name}.disabled")
    servers = ", ".join(agi_servers(settings))
    logger.info("installed %d config files into %s (FastAGI at %s)", len(sources), etc, servers)


def hosts_file() -> str:
    """The root's /etc/hosts, naming this host: debootstrap leaves none, and Asterisk looks up
    its own host name (acl.c ast_find_ourip, for RTP and SIP bound to 0.0.0.0), then
    A.ROOT-SERVERS.NET, logging a WARNING for each failed lookup, every call."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)  # the host's own resolver: its /etc/hosts, DNS
    except OSError:
        address = "127.0.1.1"  # Debian's convention for a host name with no address
    return (
        "# Written by `hotline asterisk up`: the host's name as the host resolves it.\n"
        f"127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n{address} {name}\n"
    )


def install_sip(
    root: Path,
    settings: Settings,
    group_id: int,
    phones: Sequence[PhoneEntry],
    *,
    etc_dir: str = ETC_DIR,
    node: ClusterNode | None = None,
) -> None:
    """Write pjsip.conf (readable by the asterisk group only: a trunk's password), rtp.conf
    and the trunks' dialplan; `hotline phones add` calls this alone, then reloads res_pjsip.
    A cluster node's pjsip.conf answers the edge only (ivr.cluster_config)."""
    etc = resolve_in_root(root, etc_dir)
    if node is None:
        for warning in identify_warnings(settings.sip, phones):
            logger.warning("SIP: %s", warning)
        pjsip = render_pjsip(settings, phones)
    else:
        pjsip = render_node_pjsip(settings, node, phones)
    _write(etc / PJSIP_FILE, pjsip, group_id, secret=True)
    _write(etc / RTP_FILE, render_rtp(settings.sip), group_id, secret=False)
    dialplan = render_trunk_dialplan(settings.sip) + "\n" + render_destinations(settings.destinations)
    _write(etc / TRUNKS_DIALPLAN_FILE, dialplan, group_id, secret=False)
    logger.info(
        "SIP: transports on %s:%d, %d trunk(s), %d phone(s)",
        settings.sip.bind,
        settings.sip.port,
        len(settings.sip.trunks),
        len(phones),
    )


def _write(path: Path, text: str, group_id: int, *, secret: bool) -> None:
    """Replace `path` atomically, so a reload never reads half a file."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if secret:
            os.chown(temp, 0, group_id)
            os.chmod(temp, 0o640)
        else:
            os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def sounds_dir(root: Path) -> Path:
    """Asterisk's sounds directory inside the root: `astdatadir` of asterisk.conf + /sounds."""
    data_dir = "/usr/share/asterisk"
    conf = resolve_in_root(root, f"{ETC_DIR}/asterisk.conf")
    for line in conf.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*astdatadir\s*=>?\s*(\S+)", line)
        if match:
            data_dir = match.group(1)
    return resolve_in_root(root, f"{data_dir}/sounds")


def install_prompts(root: Path, build_dir: Path) -> int:
    """Mirror `<build_dir>/<lang>/*.wav` to `sounds/hotline/<lang>/`; return how many files."""
    target = sounds_dir(root) / SOUNDS_SUBDIR
    if target.exists():
        shutil.rmtree(target)  # prompts removed from the catalogue must not linger
    count = 0
    for wav in sorted(build_dir.glob("*/*.wav")):
        destination = target / wav.parent.name / wav.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wav, destination)
        destination.chmod(0o644)
        count += 1
    if count:
        logger.info("installed %d prompts from %s into %s", count, build_dir, target)
    else:
        logger.info("no built prompts in %s (run `hotline prompts build`)", build_dir)
    return count
