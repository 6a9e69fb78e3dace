"""Debian's fail2ban `asterisk` filter, the one the SIP bans use, against the security log
lines a real Asterisk 22 wrote here (tests/fixtures/asterisk-security.sample): every failure
a ban must count is found with the sender's address, and nothing else is."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ivr.fail2ban_config import FILTER
from ivr.sip_bans import STOCK_DIR

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk-security.sample"


def test_the_stock_asterisk_filter_finds_asterisk_22s_failures() -> None:
    tool = shutil.which("fail2ban-regex")
    if tool is None:
        pytest.fail("fail2ban is not installed: apt-get install fail2ban (make test does)")
    done = subprocess.run(
        [tool, "-o", "ip", str(SAMPLE), str(STOCK_DIR / "filter.d" / f"{FILTER}.conf")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Two wrong passwords from 127.0.0.7 (PJSIP ChallengeResponseFailed), a REGISTER from
    # outside the phones' networks (FailedACL, 127.0.0.8), a wrong AMI secret
    # (InvalidPassword) and a second registration of a registered phone (FailedACL); not
    # the challenge itself, a success, or an AMI action refused.
    assert done.stdout.split() == ["127.0.0.7", "127.0.0.7", "127.0.0.8", "127.0.0.1", "127.0.0.7"]
    events = [line.split('SecurityEvent="')[1].split('"')[0] for line in SAMPLE.read_text().splitlines()]
    assert events == [
        "ChallengeResponseFailed",
        "ChallengeResponseFailed",
        "ChallengeSent",
        "FailedACL",
        "SuccessfulAuth",
        "InvalidPassword",
        "RequestNotAllowed",
        "FailedACL",
    ]
