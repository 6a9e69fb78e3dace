"""The SIP bans at work: the hotline's own fail2ban server, started and reconfigured by
`hotline asterisk up`, stopped by `down`, and asked what it banned (`hotline sip bans`,
`hotline sip unban`, `hotline status`). What it reads and does: ivr/fail2ban_config.py.

Everything goes through `fail2ban-client -c <our conf dir>`, the documented interface; its
socket is root's, like the nftables rules, so these commands need root as `asterisk up` does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import shutil
import subprocess
import time
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from core.sip_settings import SipSettings
from ivr.errors import BansUnavailable
from ivr.fail2ban_config import (
    JAIL,
    NFT_TABLE,
    Ban,
    BanEvent,
    BanFiles,
    parse_bans,
    parse_events,
    render_jail,
    render_server,
    utc_offset_name,
)

logger = logging.getLogger(__name__)

STOCK_DIR: Final = Path("/etc/fail2ban")
# Debian's filters and actions, used as they ship: linked into our configuration directory.
STOCK_SUBDIRS: Final = ("filter.d", "action.d")
_CLIENT_TIMEOUT_S: Final = 30.0
_START_TIMEOUT_S: Final = 30.0
_POLL_S: Final = 0.2
RECENT_EVENTS: Final = 6
_LOG_TAIL_BYTES: Final = 256 * 1024


@dataclass(frozen=True)
class BanState:
    """What `hotline status` and `asterisk up` say of the bans."""

    state: str  # "active", "stopped", "off" (sip.bans = false), "unavailable", "unknown" (not root)
    reason: str | None = None
    bans: tuple[Ban, ...] = ()
    recent: tuple[BanEvent, ...] = ()  # the last bans and unbans in fail2ban's log

    @property
    def label(self) -> str:
        """One line for `asterisk up|status|down`: the state, and why where it is not active."""
        return self.state if self.reason is None else f"{self.state}: {self.reason}"

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "reason": self.reason,
            "bans": [b.as_json() for b in self.bans],
            "recent": [e.as_json() for e in self.recent],
        }

    def as_text(self) -> str:
        if self.state != "active":
            text = f"SIP bans: {self.state}" + (f" ({self.reason})" if self.reason else "")
        elif not self.bans:
            text = "SIP bans: active, no address banned"
        else:
            listed = ", ".join(f"{b.address} until {b.until:%F %T}" if b.until else b.address for b in self.bans)
            text = f"SIP bans: active, {len(self.bans)} banned: {listed}"
        lines = [text] + [f"  {e.at:%F %T} {e.what:<5} {e.address}" for e in self.recent]
        return "\n".join(lines)


def asterisk_timezone(root: Path) -> str | None:
    """The UTC offset Asterisk writes its log times in: TZ if set (it inherits ours), else
    the zone of the root's /etc/localtime, else UTC (glibc without a zone file). None when
    the zone is unknown here. A zone with summer time is right until its next change; the
    next `asterisk up` renders it again."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        link = root / "etc" / "localtime"
        if not link.is_symlink():
            return None if link.exists() else "UTC"
        name = os.readlink(link).partition("zoneinfo/")[2]
    try:
        offset = dt.datetime.now(zoneinfo.ZoneInfo(name)).utcoffset()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
    return utc_offset_name(offset or dt.timedelta(0))


class SipBans:
    def __init__(self, sip: SipSettings, cache_dir: Path, security_log: Path, root: Path) -> None:
        self.sip = sip
        self.files = BanFiles(cache_dir.expanduser().resolve() / "fail2ban")
        self.security_log = security_log
        self.root = root

    def missing(self) -> str | None:
        """Why the bans cannot work on this machine, or None."""
        for tool, package in (("fail2ban-client", "fail2ban"), ("fail2ban-server", "fail2ban"), ("nft", "nftables")):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (apt-get install {package})"
        if os.geteuid() != 0:
            return "nftables rules need root"
        probe = _run(["nft", "list", "tables"])
        if probe.returncode != 0:
            return f"nftables does not work here (nft list tables: {probe.stderr.strip() or probe.returncode})"
        return None

    def up(self, log_owner: tuple[int, int]) -> BanState:
        """Write the configuration, then start our fail2ban server or have the running one
        read it again; BansUnavailable says why not."""
        reason = self.missing()
        if reason is not None:
            raise BansUnavailable(reason)
        self._install(log_owner)
        if self.answering():
            self._client("reload")
            logger.info("SIP bans: fail2ban reloaded (%s)", self._summary())
        else:
            self.files.socket.unlink(missing_ok=True)  # left by a server that died
            self._client("start")
            self._wait_jail()
            logger.info("SIP bans: fail2ban started (%s); its log: %s", self._summary(), self.files.log_file)
        return self.state()

    def down(self) -> None:
        """Stop our fail2ban server: its nftables action removes its rules and table. A
        table left by a server that died is removed too (ours only, by name)."""
        if shutil.which("fail2ban-client") is not None and self.answering():
            self._client("stop")
            logger.info("SIP bans: fail2ban stopped")
        if shutil.which("nft") is not None and _run(["nft", "list", "table", "inet", NFT_TABLE]).returncode == 0:
            logger.warning("SIP bans: removing the nftables table %s left behind", NFT_TABLE)
            _run(["nft", "delete", "table", "inet", NFT_TABLE])

    def answering(self) -> bool:
        if not self.files.socket.exists():
            return False
        return self._run_client(["ping"]).returncode == 0

    def state(self) -> BanState:
        if not self.sip.bans:
            return BanState("off", "sip.bans = false")
        if os.geteuid() != 0:
            return BanState("unknown", "only root may ask the bans' fail2ban")
        reason = self.missing()
        if reason is not None:
            return BanState("unavailable", reason)
        recent = tuple(self.recent_events())
        if not self.answering():
            return BanState("stopped", "hotline asterisk up starts it", (), recent)
        return BanState("active", None, tuple(self.bans()), recent)

    def recent_events(self, count: int = RECENT_EVENTS) -> list[BanEvent]:
        """The last bans and unbans in fail2ban's log (its last 256 KiB)."""
        try:
            with self.files.log_file.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
                text = log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return parse_events(text)[-count:]

    def bans(self) -> list[Ban]:
        return parse_bans(self._client("get", JAIL, "banip", "--with-time"))

    def unban(self, address: str) -> bool:
        """Lift the ban on `address`; False if it was not banned."""
        checked = str(ipaddress.ip_address(address))  # ValueError for anything else
        if not self.answering():
            raise BansUnavailable("the SIP bans' fail2ban is not running (hotline asterisk up starts it)")
        return self._client("set", JAIL, "unbanip", checked).strip() == "1"

    def _install(self, log_owner: tuple[int, int]) -> None:
        conf = self.files.conf_dir
        conf.mkdir(parents=True, exist_ok=True)
        os.chmod(self.files.base, 0o750)
        for name in STOCK_SUBDIRS:
            link = conf / name
            if not link.is_symlink():
                if link.exists():
                    shutil.rmtree(link)
                link.symlink_to(STOCK_DIR / name)
        # fail2ban refuses a jail whose log file does not exist yet; Asterisk appends to it.
        if not self.security_log.exists():
            self.security_log.touch(mode=0o640)
            os.chown(self.security_log, *log_owner)
        _write(conf / "fail2ban.conf", render_server(self.files))
        jail = render_jail(self.sip, self.security_log, asterisk_timezone(self.root))
        _write(conf / "jail.conf", jail)

    def _wait_jail(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._run_client(["status", JAIL]).returncode == 0:
                return
            time.sleep(_POLL_S)
        raise BansUnavailable(
            f"fail2ban did not start its jail {JAIL} in {_START_TIMEOUT_S:.0f} s; see {self.files.log_file}"
        )

    def _summary(self) -> str:
        return (
            f"{self.sip.ban_after} failures in {self.sip.ban_window_s} s ban an address for {self.sip.ban_s} s "
            f"from ports {self.sip.port}" + (f" and {self.sip.https_port}" if self.sip.webrtc else "")
        )

    def _client(self, *args: str) -> str:
        done = self._run_client(list(args))
        if done.returncode != 0:
            detail = (done.stderr.strip() or done.stdout.strip()).splitlines()
            raise BansUnavailable(
                f"fail2ban-client {' '.join(args)}: exit {done.returncode}: {detail[-1] if detail else ''}"
            )
        return done.stdout

    def _run_client(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return _run(["fail2ban-client", "-c", str(self.files.conf_dir), *args])


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=_CLIENT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BansUnavailable(f"{' '.join(argv)} took over {_CLIENT_TIMEOUT_S:.0f} s") from exc


def _write(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.new")
    temp.write_text(text, encoding="utf-8")
    os.chmod(temp, 0o640)
    os.replace(temp, path)
