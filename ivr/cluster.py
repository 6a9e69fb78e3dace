"""The cluster on this machine: the SIP edge (Kamailio from Debian) and N Asterisk nodes.

`hotline cluster up --nodes N | down | status` use it. The nodes share the one debootstrap
root (ivr.asterisk's LocalAsterisk with a `node`), each on its own loopback address; the
edge is Kamailio run in the foreground of its own session, like Asterisk, its files under
`<cache_dir>/cluster/`. What was started is written to `cluster.json` there, so `status`
and `down` find the same nodes. A cluster needs PostgreSQL (the edge reads the phones'
digests from it, and several `hotline serve` share it); SQLite is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from core.cluster_settings import ClusterNode
from core.settings import Settings
from core.sip_phones import PhoneEntry
from ivr.asterisk import LocalAsterisk, live_process, live_processes
from ivr.asterisk_root import tail
from ivr.cluster_config import STATE_FILE, edge_paths, node_settings, render_dispatcher, render_kamailio, saved_nodes
from ivr.errors import AsteriskError, ClusterRefused, EdgeNotReady
from ivr.pjsip_status import Contact

logger = logging.getLogger(__name__)

KAMCMD: Final = "/usr/sbin/kamcmd"
_POLL_S: Final = 0.2


@dataclass(frozen=True)
class NodeStatus:
    name: str
    address: str
    sip_port: int
    ami_port: int
    pid: int | None
    # "active" (the edge sends it calls), "inactive" (it does not answer the edge's
    # probes), "stopped" (no Asterisk), or "unknown" (the edge is down).
    state: str
    calls: int | None  # channels in progress, as its Asterisk counts them


@dataclass(frozen=True)
class ClusterStatus:
    edge_address: str
    edge_port: int
    edge_pid: int | None
    nodes: tuple[NodeStatus, ...]

    @property
    def running(self) -> bool:
        return self.edge_pid is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "edge": {
                "address": self.edge_address,
                "port": self.edge_port,
                "pid": self.edge_pid,
                "state": "running" if self.edge_pid else "stopped",
            },
            "nodes": [asdict(n) for n in self.nodes],
        }


def require_postgresql(settings: Settings) -> None:
    if not settings.database.url.startswith("postgresql"):
        raise ClusterRefused(
            "a cluster needs PostgreSQL (database.url = postgresql+psycopg://…): its nodes' FastAGI servers "
            "share one store and the edge reads the phones' digests from it; SQLite is one file on one machine"
        )


class Cluster:
    def __init__(self, settings: Settings, *, phones: Sequence[PhoneEntry] = (), start_timeout_s: float = 60.0) -> None:
        self.settings = settings
        self.phones = tuple(phones)
        self.start_timeout_s = start_timeout_s
        self.paths = edge_paths(settings)
        self._edge: subprocess.Popen[bytes] | None = None
        self._asterisks: dict[str, LocalAsterisk] = {}

    # The nodes: the settings' own, else those `up` made and wrote down.
    def nodes(self, count: int | None = None) -> tuple[ClusterNode, ...]:
        cluster, sip = self.settings.cluster, self.settings.sip
        if cluster.nodes:
            return cluster.nodes if count is None else cluster.nodes[:count]
        if count is not None:
            return cluster.local_nodes(count, sip.rtp_start, sip.rtp_end)
        return saved_nodes(self.settings)

    def asterisks(self, nodes: Sequence[ClusterNode]) -> list[LocalAsterisk]:
        """Each node's Asterisk; the same object for the same node while this Cluster lives
        (it holds the process it started, so the exit status is collected)."""
        found = []
        for i, node in enumerate(nodes):
            known = self._asterisks.get(node.name)
            if known is None or known.node != node:
                known = LocalAsterisk(
                    node_settings(self.settings, node, i),
                    node=node,
                    phones=self.phones,
                    start_timeout_s=self.start_timeout_s,
                )
                self._asterisks[node.name] = known
            found.append(known)
        return found

    def up(self, count: int | None = None) -> ClusterStatus:
        """Start (or reconfigure) every node, then the edge in front of them."""
        require_postgresql(self.settings)
        if not Path(self.settings.cluster.kamailio).is_file():
            raise ClusterRefused(
                f"{self.settings.cluster.kamailio} not found: apt-get install kamailio kamailio-postgres-modules"
            )
        # --nodes N, else the site's nodes, else those started last time, else two.
        nodes = self.nodes(count) if count else (self.nodes() or self.nodes(2))
        dropped = [n for n in saved_nodes(self.settings) if n.name not in {m.name for m in nodes}]
        self.paths.directory.mkdir(parents=True, exist_ok=True)
        state = {"nodes": [n.model_dump() for n in nodes]}
        (self.paths.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        for asterisk in self.asterisks(nodes):
            status = asterisk.up()
            logger.info("node %s: Asterisk pid %s", asterisk.node.name if asterisk.node else "?", status.pid)
        pid = self.edge_pid()
        changed = self._write_edge(nodes)
        if pid is None:
            self._start_edge()
        elif "config" in changed:
            logger.info("restarting the SIP edge (pid %d) with its new configuration: calls being set up may fail", pid)
            self._stop_edge(pid)
            self._start_edge()
        elif "nodes" in changed:
            self._control("dispatcher.reload")
            logger.info("the SIP edge (pid %d) reloaded its list of nodes", pid)
        # A node no longer in the list: out of the edge's list first (above), then stopped.
        for node, asterisk in zip(dropped, self.asterisks(dropped), strict=True):
            logger.info("node %s is no longer in the cluster: stopping its Asterisk", node.name)
            asterisk.down()
        return self.wait_active(nodes)

    def wait_active(self, nodes: Sequence[ClusterNode]) -> ClusterStatus:
        """The status once the edge's probes found every node answering, or after three
        probe intervals (a node that stays inactive is shown so)."""
        deadline = time.monotonic() + 3 * self.settings.cluster.probe_interval_s + 2
        wanted = {n.address for n in nodes}
        while time.monotonic() < deadline:
            states = self.dispatcher_states()
            if all(states.get(address) == "active" for address in wanted):
                break
            time.sleep(_POLL_S)
        return self.status()

    def down(self) -> None:
        """Stop the edge, then every node (the root is unmounted when the last Asterisk is gone)."""
        pid = self.edge_pid()
        if pid is not None:
            self._stop_edge(pid)
        for asterisk in self.asterisks(self.nodes()):
            asterisk.down()

    def status(self) -> ClusterStatus:
        nodes = self.nodes()
        edge_pid = self.edge_pid()
        states = self.dispatcher_states() if edge_pid else {}
        shown = []
        for node, asterisk in zip(nodes, self.asterisks(nodes), strict=True):
            pid = asterisk.running_pid()
            calls = None
            if pid is None:
                state = "stopped"
            else:
                state = states.get(node.address, "unknown")
                with contextlib.suppress(AsteriskError):
                    calls = _active_calls(asterisk.cli("core show channels count", timeout_s=5.0))
            shown.append(NodeStatus(node.name, node.address, node.sip_port, node.ami_port, pid, state, calls))
        cluster = self.settings.cluster
        return ClusterStatus(cluster.edge_address, cluster.edge_port, edge_pid, tuple(shown))

    def dispatcher_states(self) -> dict[str, str]:
        """Each node's address -> "active" or "inactive", as the edge's dispatcher sees it."""
        try:
            return parse_dispatcher_list(self._control("dispatcher.list"))
        except EdgeNotReady as exc:
            logger.warning("%s", exc)
            return {}

    def edge_pid(self) -> int | None:
        try:
            pid = int(self.paths.pid_file.read_text(encoding="utf-8").strip())
        except (FileNotFoundError, ValueError):
            return None
        process = live_process(pid)
        return pid if process is not None and process.program == "kamailio" else None

    def _write_edge(self, nodes: Sequence[ClusterNode]) -> set[str]:
        """Write kamailio.cfg and the dispatcher list, checked by `kamailio -c`; say which changed."""
        secret_file = self.paths.directory / "auth-secret"  # the digest nonces' key, kept across restarts
        if not secret_file.exists():
            _write_private(secret_file, secrets.token_hex(16))
        secret = secret_file.read_text(encoding="utf-8").strip()
        files = {
            "config": (self.paths.config, render_kamailio(self.settings, self.paths, secret)),
            "nodes": (self.paths.dispatcher_list, render_dispatcher(nodes)),
        }
        changed = set()
        for what, (path, text) in files.items():
            with contextlib.suppress(FileNotFoundError):
                if path.read_text(encoding="utf-8") == text:
                    continue
            _write_private(path, text)  # kamailio.cfg holds the database's URL
            changed.add(what)
        check = subprocess.run(
            [self.settings.cluster.kamailio, "-c", "-f", str(self.paths.config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check.returncode != 0:
            raise EdgeNotReady(f"kamailio -c refused {self.paths.config}:\n{check.stderr.strip()[-2000:]}")
        return changed

    def registrations(self) -> dict[str, Contact]:
        """The phones registered at the edge now (its `location` table), by endpoint.
        EdgeNotReady if the edge does not answer."""
        return parse_registrations(self._control("ul.dump"), dt.datetime.now(dt.UTC))

    def bans(self) -> list[str]:
        """The addresses the edge bans now (password guessing, floods): its `ipban` table.
        EdgeNotReady if the edge does not answer."""
        return sorted(set(re.findall(r"^\s*name: (\S+)$", self._control("htable.dump", "ipban"), re.MULTILINE)))

    def unban(self, address: str) -> bool:
        """Lift the edge's ban on `address`; False if it was not banned. ValueError if it
        is no IP address."""
        shown = str(ipaddress.ip_address(address))
        if shown not in self.bans():
            return False
        self._control("htable.delete", "ipban", shown)
        with contextlib.suppress(EdgeNotReady):  # its failures so far forgotten too, if any
            self._control("htable.delete", "authfail", shown)
        return True

    def _control(self, *command: str) -> str:
        """A command to the running edge over its control socket (kamcmd)."""
        if not self.paths.control_socket.exists():
            raise EdgeNotReady(f"the SIP edge is not running (no {self.paths.control_socket}): hotline cluster up")
        try:
            done = subprocess.run(
                [KAMCMD, "-s", f"unix:{self.paths.control_socket}", *command],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EdgeNotReady(f"the SIP edge's control socket does not answer: {exc}") from exc
        if done.returncode != 0:
            raise EdgeNotReady(f"kamcmd {' '.join(command)}: {(done.stdout + done.stderr).strip()}")
        return done.stdout

    def _start_edge(self) -> None:
        self._reap_orphans()
        self.paths.control_socket.unlink(missing_ok=True)
        self.paths.pid_file.unlink(missing_ok=True)  # a stale one: kamailio refuses to start
        # -DD: stay in the foreground (we detach it ourselves) with its worker processes;
        # -E: log to stderr, our log file.
        command = [
            self.settings.cluster.kamailio,
            "-f",
            str(self.paths.config),
            "-P",
            str(self.paths.pid_file),
            "-w",
            str(self.paths.directory),
            "-DD",
            "-E",
        ]
        with self.paths.log.open("ab") as log:
            log.write(f"--- {time.strftime('%F %T')} {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        if self._edge is not None:
            self._edge.poll()  # the edge this one replaces: reaped if it died
        self._edge = process  # kamailio writes its pid file itself
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EdgeNotReady(f"kamailio exited with {process.returncode}:\n{tail(self.paths.log, 30)}")
            answered = False
            if self.paths.control_socket.exists():
                with contextlib.suppress(EdgeNotReady):
                    answered = bool(parse_dispatcher_list(self._control("dispatcher.list")))
            if answered:
                logger.info("SIP edge (kamailio pid %d) answers; log %s", process.pid, self.paths.log)
                return
            time.sleep(_POLL_S)
        raise EdgeNotReady(
            f"kamailio did not answer on {self.paths.control_socket} in time:\n{tail(self.paths.log, 30)}"
        )

    def _reap_orphans(self) -> None:
        """A killed edge's worker processes outlive it, holding its ports (kamailio gives
        its children no parent-death signal; systemd would end the whole unit): any
        kamailio still running this edge's configuration is ended before it starts again."""
        orphans = [pid for pid, p in live_processes("kamailio") if str(self.paths.config) in p.argv]
        if not orphans:
            return
        logger.warning("SIP edge: %d processes left by an edge that died, ended", len(orphans))
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(live_process(pid) is not None for pid in orphans) and time.monotonic() < deadline:
            time.sleep(_POLL_S)

    def _stop_edge(self, pid: int) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self._edge is not None and self._edge.pid == pid:
                    self._edge.poll()
                else:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)
                if self.edge_pid() is None:
                    if self._edge is not None and self._edge.pid == pid:
                        # Gone between the poll above and this look: collect its status
                        # before the Popen is dropped (no zombie, no ResourceWarning).
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            self._edge.wait(timeout=5)
                    self._edge = None
                    self.paths.pid_file.unlink(missing_ok=True)
                    logger.info("SIP edge (pid %d) stopped", pid)
                    return
                time.sleep(_POLL_S)
            logger.warning("SIP edge (pid %d) still running after %s", pid, sig.name)
        raise AsteriskError(f"the SIP edge (kamailio pid {pid}) survived SIGKILL")


class EdgePhones:
    """The agents' phones registered at the edge, read every `every_s` (`run`, supervised
    by `hotline serve`), for the console: in a cluster the nodes ring every phone through
    the edge and cannot tell which one answers REGISTERs."""

    def __init__(self, cluster: Cluster, every_s: float = 2.0) -> None:
        self.cluster = cluster
        self.every_s = every_s
        self.seen: set[str] | None = None  # None: the edge has not answered (unknown)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.seen = set(await asyncio.to_thread(self.cluster.registrations))
            except EdgeNotReady as exc:
                if self.seen is not None:
                    logger.warning("SIP edge: phones' registrations not readable (%s); shown as unknown", exc)
                self.seen = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every_s)

    def phone_registered(self, interface: str) -> bool | None:
        """Whether `PJSIP/<endpoint>` is registered at the edge; None while unknown."""
        if self.seen is None:
            return None
        return interface.removeprefix("PJSIP/") in self.seen


def parse_registrations(text: str, now: dt.datetime) -> dict[str, Contact]:
    """kamcmd's `ul.dump` to each AoR's first contact: where the phone registered from
    (the contact's host and port, or the source address Kamailio received it from when
    that differs), its user agent and when it expires (its seconds left from `now`, in
    ISO 8601 UTC as `pjsip show contacts` gives it). The format is Kamailio 5.6's, as
    tests/unit/test_cluster_config.py keeps it.
    """
    found: dict[str, Contact] = {}
    aor = None
    fields: dict[str, str] = {}

    def close() -> None:
        if aor is not None and "Address" in fields and aor not in found:
            uri = fields["Address"]
            received = fields.get("Received", "")
            where = received if received.startswith("sip:") else uri
            address = where.split("@", 1)[-1].removeprefix("sip:").split(";", 1)[0]
            left = fields.get("Expires", "")
            expires = (now + dt.timedelta(seconds=int(left))).isoformat(timespec="seconds") if left.isdigit() else None
            found[aor] = Contact(aor, uri, "Avail", address, fields.get("User-Agent", ""), expires)

    for line in text.splitlines():
        key, sep, value = line.strip().partition(": ")
        if key == "AoR":
            close()
            aor, fields = value, {}
        elif sep and aor is not None:
            fields.setdefault(key, value)  # a later contact's fields do not replace the first's
    close()
    return found


def parse_dispatcher_list(text: str) -> dict[str, str]:
    """kamcmd's `dispatcher.list`: for each destination its URI and FLAGS (A active,
    I inactive, D disabled; P probing): address -> "active" or "inactive"."""
    states: dict[str, str] = {}
    uri = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("URI:"):
            uri = line.split(":", 1)[1].strip()
        elif line.startswith("FLAGS:") and uri:
            flags = line.split(":", 1)[1].strip()
            host = uri.removeprefix("sip:").rsplit(":", 1)[0].strip("[]")
            states[host] = "active" if flags.startswith("A") else "inactive"
            uri = ""
    return states


def _active_calls(text: str) -> int | None:
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1:3] == ["active", "calls"] and words[0].isdigit():
            return int(words[0])
    return None


def _write_private(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.chmod(0o600)
    temp.replace(path)
