"""baresip (Debian baresip-core 1.0) as an agent's desk phone: registers from 127.0.0.1
and answers every call at once, sending a sine tone and writing what it hears to a file.

baresip 1.0 pitfalls met here: without `net_interface 127.0.0.1` it picks the host's
primary address and registers a contact Asterisk cannot reach on loopback; the `ausine`
source only runs at 48 kHz stereo (`ausrc_srate 48000`, `ausrc_channels 2`), otherwise it
fails when the call is answered and baresip drops the call at once.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procs import free_port
from tests.sip_peers import sipp

MODULES = "/usr/lib/baresip/modules"
REGISTERED = re.compile(rb"\{0/UDP/v4\} 200 OK")


def _config(sip_port: int, rtp_port: int, heard: Path, console_port: int | None = None) -> str:
    # The keypad, when asked for: baresip's `menu` commands (/sndcode sends RFC 4733 digits
    # in the call) typed into its `cons` console over TCP.
    keypad = ["module menu.so", "module cons.so", f"cons_listen 127.0.0.1:{console_port}"] if console_port else []
    return "\n".join(
        [
            *keypad,
            f"sip_listen 127.0.0.1:{sip_port}",
            "net_interface 127.0.0.1",
            f"rtp_ports {rtp_port}-{rtp_port + 9}",
            "audio_source ausine,440",
            "ausrc_srate 48000",
            "ausrc_channels 2",
            f"audio_player aufile,{heard}",
            f"module_path {MODULES}",
            "module g711.so",
            "module ausine.so",
            "module aufile.so",
            "module_tmp uuid.so",
            "module_tmp account.so",
            "",
        ]
    )


def _sip_listen_port() -> int:
    """A port baresip can listen on: it binds UDP and TCP on it and SIP over TLS on the
    next one, and a port free on UDP alone has met a TCP client's ephemeral port there."""
    for _ in range(50):
        port = sipp.free_port("127.0.0.1", tcp_too=True)
        with socket.socket() as tls:
            try:
                tls.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for baresip's SIP transports")


def press(work: Path, keys: str) -> None:
    """Key `keys` on the phone started in `work` with `keypad=True`, in the call it is in."""
    port = int((work / "console_port").read_text())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as console:
        console.sendall(f"/sndcode {keys}\n".encode())
        # Read until baresip says it sent the last digit: a console closed before that drops
        # the command.
        said = b""
        deadline = time.monotonic() + 5
        while f"send DTMF digit end: '{keys[-1]}'".encode() not in said:
            if time.monotonic() > deadline:
                raise AssertionError(f"baresip did not key {keys!r}: {said!r}")
            said += console.recv(4096)


@contextmanager
def baresip_phone(
    work: Path, user: str, password: str, asterisk_port: int, run_s: int = 120, *, keypad: bool = False
) -> Iterator[Path]:
    """A registered, auto-answering baresip for `user` while the block runs (killed after;
    `-t run_s` bounds it if the test dies); with `keypad`, `press` keys digits on it.
    Yields its log file."""
    work.mkdir(parents=True, exist_ok=True)
    rtp = free_port()
    console = free_port() if keypad else None
    if console is not None:
        (work / "console_port").write_text(str(console))
    (work / "config").write_text(_config(_sip_listen_port(), rtp, work / "heard.wav", console), encoding="utf-8")
    # regint 60: Asterisk's aor minimum_expiration; re-registered well within the test.
    account = f"<sip:{user}@127.0.0.1:{asterisk_port};transport=udp>;auth_pass={password};answermode=auto;regint=60"
    (work / "accounts").write_text(account + "\n", encoding="utf-8")
    log_path = work / "baresip.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        ["baresip", "-f", str(work), "-t", str(run_s)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while not REGISTERED.search(log_path.read_bytes()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"baresip did not register as {user}:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
