"""Server processes for the benchmarks: start, wait until ready, sample memory, stop."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import psutil

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def child_env(**settings: str) -> dict[str, str]:
    """The process environment without the developer's HOTLINE_* settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(settings)
    env["PYTHONPATH"] = str(ROOT)  # bench.* from the repository, whatever the cwd
    return env


class ServerProcess:
    """A child process that prints a line containing `ready` on stdout once it listens."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[str] = log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        self.ready_line = self._wait_ready()

    def _wait_ready(self) -> str:
        stdout = self.proc.stdout
        assert stdout is not None
        box: list[str] = []
        # A thread, so a child that never prints cannot block us past the timeout.
        reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(READY_TIMEOUT_S)
        line = box[0] if box else ""
        if "ready" not in line:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.log_path.read_text(encoding='utf-8')[-2000:]}")
        return line.strip()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


def vm_hwm_bytes(pid: int) -> int:
    """The kernel's peak-RSS mark for a process (VmHWM in /proc/<pid>/status), 0 if unknown."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


class MemorySampler:
    """Peak RSS of a process and its children (summed), sampled by a thread every `interval_s`.

    For a forking server the sum counts pages the children share with the parent once
    per child, so it is an upper bound; for a single process it is the process's RSS.
    """

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_bytes = 0
        self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak_bytes = max(self.peak_bytes, vm_hwm_bytes(self.pid))

    def _run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total, children = 0, 0
            with contextlib.suppress(psutil.NoSuchProcess):
                total = root.memory_info().rss
                for child in root.children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        total += child.memory_info().rss
                        children += 1
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_children = max(self.peak_children, children)
            time.sleep(self.interval_s)


def postgres_url(tmp: Path) -> Iterator[str]:
    """One PostgreSQL URL for a benchmark: BENCH_PG_URL when given, else a fresh cluster
    from tools/pg.sh under `tmp` (owned by postgres), stopped when the generator ends."""
    given = os.environ.get("BENCH_PG_URL")
    if given:
        yield given
        return
    data = tmp / "pg"
    out = subprocess.run(
        [str(ROOT / "tools" / "pg.sh"), "up", str(data), str(free_port())], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {out.stderr}")
    try:
        yield out.stdout.strip()
    finally:
        subprocess.run([str(ROOT / "tools" / "pg.sh"), "down", str(data)], check=False)
