"""Our dialplans/ as a real Asterisk 22 reads them: quiet, complete, and locked down."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from core.settings import Settings
from ivr.asterisk import AMI_BANNER, LocalAsterisk, ami_login, read_ami_message
from ivr.asterisk_config import agi_address
from ivr.dialplan import (
    CTX_AGENTS,
    CTX_CALLER_SCRIPT,
    CTX_ENTRY,
    CTX_QUEUE,
    EXTEN_HOTLINE,
    QUEUE_GENERAL,
    QUEUE_LABOUR,
)
from ivr.errors import AmiLoginRefused

pytestmark = pytest.mark.real

# Every start writes this banner first (logger.conf: messages => notice,warning,error).
START_LINE = re.compile(r"\] Asterisk \d+\.\d+.* built by ")
PROBLEM = re.compile(r"\] (WARNING|ERROR)\[")
# Lines logged for a call carry its call id ([C-0000002a]); those are about calls, not
# configuration (e.g. a test that leaves FastAGI unreachable on purpose).
CALL_TAG = re.compile(r"\]\[C-[0-9a-f]{8}\] ")


def problems_since_last_start(messages_log: Path) -> list[str]:
    lines = messages_log.read_text(encoding="utf-8", errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if START_LINE.search(line)]
    assert starts, f"no start banner in {messages_log}"
    since = lines[starts[-1] :]
    return [line for line in since if PROBLEM.search(line) and not CALL_TAG.search(line)]


def test_start_and_reload_log_no_warning_or_error(asterisk: LocalAsterisk) -> None:
    asterisk.reload()  # a reload re-reads every .conf of ours: its complaints count too
    assert problems_since_last_start(asterisk.messages_log) == []


def test_entry_context_runs_fastagi(asterisk: LocalAsterisk, asterisk_settings: Settings) -> None:
    shown = asterisk.cli(f"dialplan show {EXTEN_HOTLINE}@{CTX_ENTRY}")
    assert f"'{EXTEN_HOTLINE}' =>" in shown
    # The IVR script, with the 12345 order number a transferring trunk may have sent.
    assert "Gosub(hotline-agi,s,1(ivr,${HOTLINE_TRANSFER_ORDER}))" in shown
    assert f"HOTLINE_AGI_SERVERS={agi_address(asterisk_settings)}" in asterisk.cli("dialplan show globals")


def test_every_context_and_queue_loaded(asterisk: LocalAsterisk) -> None:
    for context in (CTX_ENTRY, CTX_QUEUE, CTX_CALLER_SCRIPT, CTX_AGENTS):
        assert f"Context '{context}'" in asterisk.cli(f"dialplan show {context}")
    for queue in (QUEUE_GENERAL, QUEUE_LABOUR):
        assert asterisk.cli(f"queue show {queue}").startswith(queue)


def test_ami_user_has_only_the_rights_we_gave(asterisk: LocalAsterisk, asterisk_settings: Settings) -> None:
    ami = asterisk_settings.ami
    ami_login(ami.host, ami.port, ami.user, ami.secret)
    with pytest.raises(AmiLoginRefused):
        ami_login(ami.host, ami.port, ami.user, ami.secret + "x")
    shown = asterisk.cli(f"manager show user {ami.user}")
    assert _perm(shown, "read perm") == {"call", "agent", "user", "dtmf"}
    assert _perm(shown, "write perm") == {"originate", "agent", "call"}
    # The CLI through AMI ("command" class) is refused even after a good login.
    assert _ami_action(asterisk_settings, "Action: Command\r\nCommand: core show uptime") == {
        "Response": "Error",
        "Message": "Permission denied",
    }


def test_manager_listens_on_loopback_only(asterisk: LocalAsterisk, asterisk_settings: Settings) -> None:
    port = asterisk_settings.ami.port
    assert re.search(rf"TCP Bindaddress:\s+127\.0\.0\.1:{port}\b", asterisk.cli("manager show settings"))
    assert _listening(Path("/proc/net/tcp"), port) == {"0100007F"}
    assert _listening(Path("/proc/net/tcp6"), port) == set()


def _perm(shown: str, label: str) -> set[str]:
    match = re.search(rf"{label}:\s*(\S+)", shown)
    assert match, shown
    return set(match.group(1).split(","))


def _ami_action(settings: Settings, action: str) -> dict[str, str]:
    ami = settings.ami
    with socket.create_connection((ami.host, ami.port), timeout=5) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(AMI_BANNER)
        login = f"Action: Login\r\nUsername: {ami.user}\r\nSecret: {ami.secret}\r\nEvents: off\r\n\r\n"
        sock.sendall(login.encode())
        assert read_ami_message(reader)["Response"] == "Success"
        sock.sendall(f"{action}\r\n\r\n".encode())
        return read_ami_message(reader)


def _listening(table: Path, port: int) -> set[str]:
    """Local addresses (hex, as in proc(5)) of TCP sockets listening on `port`."""
    addresses = set()
    for row in table.read_text(encoding="utf-8").splitlines()[1:]:
        fields = row.split()
        address, _, hex_port = fields[1].partition(":")
        if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: TCP_LISTEN
            addresses.add(address)
    return addresses
