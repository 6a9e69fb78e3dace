"""Agents' SIP phones and softphones: what pjsip.conf needs to know of each.

A phone's password is never kept: the store and pjsip.conf hold only its digests
(`password_digest`, RFC 7616 §3.4.2's A1 = username:realm:password hashed with MD5 and
SHA-256, the two Asterisk 22 offers). A softphone's password is not even chosen by anyone:
it is derived from `sip.softphone_secret` and the endpoint, so the console can hand it to
the signed-in agent's page and nothing has to store it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

SOFTPHONE_SUFFIX: Final = "-web"  # endpoint of agent 1001's softphone: 1001-web


@dataclass(frozen=True, slots=True)
class PhoneEntry:
    """An agent's phone as pjsip.conf needs it: endpoint (= SIP user name) and digests
    (`MD5:<hex>`, `SHA-256:<hex>`), never the password."""

    endpoint: str
    digests: tuple[str, ...]
    webrtc: bool = False
    caller_name: str = ""


def password_digests(username: str, realm: str, password: str) -> tuple[str, ...]:
    a1 = f"{username}:{realm}:{password}".encode()
    return (f"MD5:{hashlib.md5(a1).hexdigest()}", f"SHA-256:{hashlib.sha256(a1).hexdigest()}")


def softphone_endpoint(agent_id: str) -> str:
    return agent_id + SOFTPHONE_SUFFIX


def softphone_password(secret: str, endpoint: str, generation: int = 0) -> str:
    """The softphone's SIP password: HMAC-SHA256 of the endpoint and a generation (raised
    to revoke a leaked one) under `sip.softphone_secret`."""
    if not secret:
        raise ValueError("sip.softphone_secret is empty")
    mac = hmac.new(secret.encode(), f"softphone:{endpoint}:{generation}".encode(), hashlib.sha256)
    return mac.hexdigest()[:32]
