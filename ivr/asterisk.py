"""A local Asterisk 22: provisioned, configured, started and stopped from the settings.

`hotline asterisk up|down|status` and the real-system tests' session fixture use it.
Asterisk runs chrooted in a debootstrap root (ivr.asterisk_root) with our `dialplans/`
(ivr.asterisk_config), in its own session so it outlives the command that started it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Final

from core.cluster_settings import ClusterNode
from core.settings import Settings
from core.sip_phones import PhoneEntry
from ivr import asterisk_root as roots
from ivr.asterisk_config import (
    DIALPLANS_DIR,
    ETC_DIR,
    LOG_DIR,
    install_config,
    install_local_layout,
    install_node_layout,
    install_prompts,
    install_sip,
    instance_log_dir,
    node_dir,
)
from ivr.errors import (
    AmiLoginRefused,
    AmiUnavailable,
    AsteriskCommandFailed,
    AsteriskError,
    AsteriskNotReady,
    BansUnavailable,
)
from ivr.fail2ban_config import banned_ports
from ivr.sip_bans import BanState, SipBans

logger = logging.getLogger(__name__)

RUN_USER: Final = "asterisk"
RUN_DIR: Final = "/var/run/asterisk"
# `core show settings` names the log directory the running Asterisk writes in.
_LOG_DIRECTORY = re.compile(r"^\s*Log directory:\s*(\S+)\s*$", re.MULTILINE)
AMI_BANNER: Final = b"Asterisk Call Manager/"
_POLL_S: Final = 0.2


@dataclass(frozen=True)
class AsteriskStatus:
    root: Path
    root_present: bool
    pid: int | None  # the chrooted asterisk process, if running
    ami_answering: bool  # something sends the AMI banner on settings.ami.host:port
    # The SIP bans (fail2ban): "active", "stopped", "off", or "unavailable: why" (up only).
    bans: str = ""

    @property
    def running(self) -> bool:
        return self.pid is not None


class LocalAsterisk:
    """The local Asterisk, or one node of a cluster (`node`): several nodes share the one
    root, each with its own configuration, run, log, spool and astdb directories in it
    (`/etc/asterisk-<node>` …, named by its asterisk.conf, passed with -C)."""

    def __init__(
        self,
        settings: Settings,
        *,
        dialplans_dir: Path = DIALPLANS_DIR,
        start_timeout_s: float = 60.0,
        phones: Sequence[PhoneEntry] = (),
        node: ClusterNode | None = None,
    ) -> None:
        self.settings = settings
        # Agents' phones for pjsip.conf (from the store: `hotline asterisk up` reads them).
        self.phones = tuple(phones)
        self.dialplans_dir = dialplans_dir
        self.start_timeout_s = start_timeout_s
        self.node = node
        self.cache_dir = settings.asterisk.cache_dir.expanduser().resolve()
        self.root = roots.root_path(self.cache_dir)
        suffix = "" if node is None else f"-{node.name}"
        self.process_log = self.cache_dir / f"asterisk-22{suffix}.log"  # Asterisk's stdout and stderr
        self.pid_file = self.cache_dir / f"asterisk-22{suffix}.pid"
        # Kept while it runs, so its exit status is collected (no zombie, no ResourceWarning).
        self._process: subprocess.Popen[bytes] | None = None

    def _inner(self, path: str) -> str:
        """An Asterisk directory as this instance has it inside the root."""
        return path if self.node is None else node_dir(path, self.node.name)

    @property
    def etc_dir(self) -> str:
        return self._inner(ETC_DIR)

    @property
    def config_option(self) -> list[str]:
        """-C <asterisk.conf> for a node; the local Asterisk reads Debian's default."""
        return [] if self.node is None else ["-C", f"{self.etc_dir}/asterisk.conf"]

    @property
    def inner_log_dir(self) -> str:
        """Where this instance writes its logs inside the root: a node's own directory, or
        the local Asterisk's directory for asterisk.instance."""
        if self.node is not None:
            return self._inner(LOG_DIR)
        return instance_log_dir(self.settings.asterisk.instance)

    # Files Asterisk writes, as host paths.
    @property
    def log_dir(self) -> Path:
        return roots.resolve_in_root(self.root, self.inner_log_dir)

    @property
    def messages_log(self) -> Path:
        return self.log_dir / "messages"

    @property
    def queue_log(self) -> Path:
        return self.log_dir / "queue_log"

    @property
    def cdr_csv(self) -> Path:
        return self.log_dir / "cdr-csv" / "Master.csv"

    @property
    def security_log(self) -> Path:
        """Asterisk's security events (dialplans/logger.conf), what fail2ban reads."""
        return self.log_dir / "security"

    def sip_bans(self) -> SipBans:
        return SipBans(self.settings.sip, self.cache_dir, self.security_log, self.root)

    def status(self) -> AsteriskStatus:
        return AsteriskStatus(
            root=self.root,
            root_present=roots.root_present(self.root),
            pid=self.running_pid(),
            ami_answering=ami_answering(self.settings.ami.host, self.settings.ami.port),
        )

    def up(self) -> AsteriskStatus:
        """Provision if needed, install the configuration, then start (or reload) and wait for AMI."""
        roots.require_superuser()
        self.settings.require_strong_ami_secret()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if not roots.root_present(self.root):
            source = self.settings.asterisk
            roots.provision(self.root, source.suite, source.mirror, self.cache_dir / "debootstrap.log")
        roots.mount_root(self.root)
        recordings = self.settings.recordings
        owner = roots.account_ids(self.root, RUN_USER)
        roots.bind_directory(self.root, recordings.dir, recordings.asterisk_dir, owner)
        notices = self.settings.notices
        roots.bind_directory(self.root, notices.speech_dir, notices.speech_asterisk_dir, owner)
        self._install()
        pid = self.running_pid()
        if pid is not None and self._writes_elsewhere():
            # Its log directory is read at start only: another instance's records would
            # receive this one's calls (and be imported as this one's).
            logger.warning(
                "Asterisk (pid %d) writes its records for another instance: restarting it for %r (%s)",
                pid,
                self.settings.asterisk.instance,
                self.log_dir,
            )
            self._stop(pid)
            pid = None
        if pid is None:
            self._start()
        else:
            logger.info("Asterisk already running (pid %d): reloading its configuration", pid)
            self.cli("core reload")
            self._wait_ready(None)
        if self.node is not None:  # a cluster's bans are the edge's
            return replace(self.status(), bans="edge")
        bans = self.start_bans(owner)
        return replace(self.status(), bans=bans.label)

    def start_bans(self, owner: tuple[int, int]) -> BanState:
        """Start (or reconfigure) the SIP bans. Where they cannot work, Asterisk still
        answers the hotline: a county's line stays open, and this says plainly that password
        guessing is not banned, here and in `hotline status`."""
        bans = self.sip_bans()
        if not self.settings.sip.bans:
            bans.down()
            logger.warning("SIP bans are off (sip.bans = false): password guessing is not banned")
            return bans.state()
        try:
            return bans.up(owner)
        except BansUnavailable as exc:
            ports = " and ".join(str(p) for p in banned_ports(self.settings.sip))
            logger.warning(
                "SIP bans NOT active: %s. Password guessing against port(s) %s is not banned on this machine",
                exc,
                ports,
            )
            return BanState("unavailable", str(exc))

    def down(self) -> None:
        """Stop the SIP bans' fail2ban (removing its nftables rules) and Asterisk
        (gracefully, then by signal), and unmount the root's /proc and /dev."""
        roots.require_superuser()
        if self.node is None:
            self.sip_bans().down()
        pid = self.running_pid()
        if pid is not None:
            self._stop(pid)
        if self.root.exists() and not asterisks_in(self.root):  # the last one out unmounts
            roots.unmount_under(self.root)
        self.pid_file.unlink(missing_ok=True)

    def reload(self) -> None:
        """Re-install the configuration and have the running Asterisk read it again."""
        self._install()
        self.cli("core reload")
        self._wait_ready(None)

    def reload_sip(self, phones: Sequence[PhoneEntry]) -> None:
        """Rewrite pjsip.conf with these phones and have the running res_pjsip read it
        (registrations of phones still listed stay; removed phones lose theirs)."""
        self.phones = tuple(phones)
        _, group_id = roots.account_ids(self.root, RUN_USER)
        install_sip(self.root, self.settings, group_id, self.phones, etc_dir=self.etc_dir, node=self.node)
        if self.running_pid() is not None:
            self.cli("module reload res_pjsip.so")
            self.cli("dialplan reload")

    def cli(self, command: str, timeout_s: float = 15.0) -> str:
        """Run an Asterisk CLI command in the running Asterisk and return its output."""
        done = self._remote(command, timeout_s)
        output = done.stdout + done.stderr
        if done.returncode != 0 or "Unable to connect to remote asterisk" in output:
            raise AsteriskCommandFailed(f"asterisk -rx {command!r}: exit {done.returncode}: {output.strip()}")
        return done.stdout

    def running_pid(self) -> int | None:
        """Our pid file first, then Asterisk's own; only a live asterisk chrooted in our root counts."""
        for path in (self.pid_file, roots.resolve_in_root(self.root, f"{self._inner(RUN_DIR)}/asterisk.pid")):
            pid = _read_pid(path)
            if pid is not None and _is_asterisk_in(pid, self.root, self.config_option):
                return pid
        return None

    def _writes_elsewhere(self) -> bool:
        """The running local Asterisk logs somewhere other than this instance's directory
        (started for the tests, a benchmark or the demo: they take turns with one root)."""
        if self.node is not None:
            return False  # a node's directories are its own, named by its asterisk.conf
        running = log_directory(self.cli("core show settings"))
        if running is None:
            logger.warning("`core show settings` names no log directory: assuming %s", self.inner_log_dir)
            return False
        return running != self.inner_log_dir

    def _install(self) -> None:
        owner = roots.account_ids(self.root, RUN_USER)
        group_id = owner[1]
        if self.node is not None:
            install_node_layout(self.root, self.node.name, owner)
        else:
            install_local_layout(self.root, self.settings.asterisk.instance, owner)
        install_config(
            self.root, self.settings, group_id, self.dialplans_dir, self.phones, etc_dir=self.etc_dir, node=self.node
        )
        install_prompts(self.root, self.settings.ivr.prompts_dir / "build")

    def _start(self) -> None:
        if self._process is not None:  # an earlier run that died (killed): collect its status
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None
        host, port = self.settings.ami.host, self.settings.ami.port
        if ami_answering(host, port):
            raise AsteriskError(f"another AMI already answers on {host}:{port}: stop it or change ami.port")
        user_id, group_id = roots.account_ids(self.root, RUN_USER)
        run_dir = roots.resolve_in_root(self.root, self._inner(RUN_DIR))  # a tmpfs under systemd; absent here
        run_dir.mkdir(parents=True, exist_ok=True)
        os.chown(run_dir, user_id, group_id)
        # -f: stay in the foreground (we detach it ourselves); -n: no colour codes in the log.
        command = ["chroot", str(self.root), roots.ASTERISK_BINARY, *self.config_option, "-fn"]
        command += ["-U", RUN_USER, "-G", RUN_USER]
        with self.process_log.open("ab") as log:
            log.write(f"--- {time.strftime('%F %T')} {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        self._process = process
        self.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
        logger.info("started Asterisk (pid %d) in %s; log %s", process.pid, self.root, self.process_log)
        try:
            self._wait_ready(process)
        except AsteriskNotReady:
            _terminate(process)
            self._process = None
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes] | None) -> None:
        """Until AMI accepts our login and Asterisk says it is fully booted, bounded in time."""
        ami = self.settings.ami
        deadline = time.monotonic() + self.start_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise AsteriskNotReady(f"Asterisk exited with {process.returncode}\n{self._log_tails()}")
            try:
                ami_login(ami.host, ami.port, ami.user, ami.secret)
                self.cli("core waitfullybooted", timeout_s=max(1.0, deadline - time.monotonic()))
                logger.info("Asterisk ready: AMI %s:%d accepts user %s", ami.host, ami.port, ami.user)
                return
            except (AmiUnavailable, AmiLoginRefused, AsteriskCommandFailed) as exc:
                last_error = exc
            time.sleep(_POLL_S)
        raise AsteriskNotReady(
            f"AMI not ready after {self.start_timeout_s:.0f} s (last: {last_error})\n{self._log_tails()}"
        )

    def _log_tails(self) -> str:
        return (
            f"--- {self.process_log}:\n{roots.tail(self.process_log)}\n"
            f"--- {self.messages_log}:\n{roots.tail(self.messages_log)}"
        )

    def _stop(self, pid: int) -> None:
        try:
            done = self._remote("core stop now", 15.0)  # non-zero exit: Asterisk closes the console
            logger.debug("core stop now: %s %s", done.returncode, (done.stdout + done.stderr).strip())
        except AsteriskCommandFailed as exc:
            logger.warning("core stop now failed (%s): signalling Asterisk (pid %d)", exc, pid)
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                logger.warning("Asterisk (pid %d) still running: sending %s", pid, sig.name)
                os.kill(pid, sig)
            if self._wait_gone(pid, 10.0):
                logger.info("Asterisk (pid %d) stopped", pid)
                self._forget_process(pid)
                return
        raise AsteriskError(f"Asterisk (pid {pid}) survived SIGKILL")

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._reap(pid)
            if not _is_asterisk_in(pid, self.root, self.config_option):
                return True
            time.sleep(_POLL_S)
        return False

    def _forget_process(self, pid: int) -> None:
        """Collect our child's exit status before dropping it: it may have been seen as a zombie
        (gone) between two polls, and a Popen dropped unreaped warns (ResourceWarning)."""
        if self._process is not None and self._process.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        self._process = None

    def _reap(self, pid: int) -> None:
        """Collect the exit status when Asterisk is our own child, so it does not linger as a zombie."""
        if self._process is not None and self._process.pid == pid:
            self._process.poll()
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    def _remote(self, command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        argv = ["chroot", str(self.root), roots.ASTERISK_BINARY, *self.config_option, "-rx", command]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AsteriskCommandFailed(f"asterisk -rx {command!r} took over {timeout_s:.0f} s") from exc


def log_directory(core_show_settings: str) -> str | None:
    r"""The log directory a running Asterisk writes in, from `core show settings`.

    >>> log_directory("* Directories\n  Log directory:               /var/log/asterisk/tests\n")
    '/var/log/asterisk/tests'
    """
    match = _LOG_DIRECTORY.search(core_show_settings)
    return match.group(1).rstrip("/") if match else None


def ami_answering(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """True when something at host:port greets like an Asterisk Manager Interface."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            return sock.makefile("rb").readline().startswith(AMI_BANNER)
    except OSError:
        return False


def ami_login(host: str, port: int, user: str, secret: str, timeout_s: float = 3.0) -> None:
    """Log in to AMI and off again; raise AmiUnavailable or AmiLoginRefused."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            reader = sock.makefile("rb")
            if not reader.readline().startswith(AMI_BANNER):
                raise AmiUnavailable(f"{host}:{port} is not an Asterisk Manager Interface")
            # Events: off, so the only message that follows is the response to the Login.
            login = f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}\r\nEvents: off\r\n\r\n"
            sock.sendall(login.encode())
            response = read_ami_message(reader)
            sock.sendall(b"Action: Logoff\r\n\r\n")
    except OSError as exc:
        raise AmiUnavailable(f"AMI {host}:{port}: {exc}") from exc
    if response.get("Response") != "Success":
        raise AmiLoginRefused(f"AMI {host}:{port} refused user {user!r}: {response.get('Message', response)}")


def read_ami_message(reader: BinaryIO) -> dict[str, str]:
    """Read one AMI message (header lines up to an empty line) from a binary line reader."""
    headers: dict[str, str] = {}
    while True:
        raw = reader.readline()
        if not raw:
            raise AmiUnavailable("AMI closed the connection")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            return headers
        key, _, value = line.partition(":")
        headers[key.strip()] = value.strip()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class LiveProcess:
    """What /proc says of a live (not zombie) process: its program, filesystem root and argv."""

    program: str
    root: str
    argv: tuple[str, ...]


def live_process(pid: int) -> LiveProcess | None:
    """The process `pid` if it is alive and not a zombie, else None (gone, or not ours to read)."""
    proc = Path(f"/proc/{pid}")
    try:
        state = (proc / "stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return None
        argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        return LiveProcess(Path(os.readlink(proc / "exe")).name, os.readlink(proc / "root"), tuple(argv))
    except (OSError, IndexError):
        return None


def _is_asterisk_in(pid: int, root: Path, config_option: Sequence[str] = ()) -> bool:
    """A live (not zombie) asterisk process whose filesystem root is `root`, started with
    this -C option (a node) or none (the local Asterisk)."""
    process = live_process(pid)
    if process is None or process.program != "asterisk" or process.root != str(root):
        return False
    argv = list(process.argv)
    if config_option:
        return any(argv[i : i + 2] == list(config_option) for i in range(len(argv) - 1))
    return "-C" not in argv


def live_processes(program: str) -> list[tuple[int, LiveProcess]]:
    """Every live process of `program` (its executable's name), with its pid."""
    found = []
    for entry in Path("/proc").iterdir():
        process = live_process(int(entry.name)) if entry.name.isdigit() else None
        if process is not None and process.program == program:
            found.append((int(entry.name), process))
    return found


def asterisks_in(root: Path) -> list[int]:
    """Every live asterisk process running in `root` (the local one and any nodes), not a
    passing `asterisk -rx` console."""
    return [pid for pid, p in live_processes("asterisk") if p.root == str(root) and "-rx" not in p.argv]


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
