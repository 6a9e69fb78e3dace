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
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from sqlalchemy import select

from core.errors import PhoneRefused
from core.models import SipPhone, utcnow

if TYPE_CHECKING:
    from core.db import Store
    from core.settings import Settings

SOFTPHONE_SUFFIX: Final = "-web"  # endpoint of agent 1001's softphone: 1001-web
# Agent ids are digits: they are SIP user names, queue_log agents and dialplan extensions.
AGENT_ID: Final = re.compile(r"[0-9]{2,20}")
MIN_PASSWORD: Final = 10
Kind = Literal["phone", "softphone"]


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


@dataclass(frozen=True, slots=True)
class StoredPhone:
    endpoint: str
    agent_id: str
    kind: str
    generation: int
    created_at: str
    updated_at: str


def _agent(agent_id: str) -> str:
    if not AGENT_ID.fullmatch(agent_id):
        raise PhoneRefused(f"an agent id is 2 to 20 digits (it is the phone's SIP user name), not {agent_id!r}")
    return agent_id


def check_password(username: str, password: str) -> None:
    """Refuse passwords a phone's digest would not protect: short, or the user name itself."""
    if len(password) < MIN_PASSWORD:
        raise PhoneRefused(f"a phone's password needs at least {MIN_PASSWORD} characters")
    if password.strip().lower() == username.lower():
        raise PhoneRefused("a phone's password must not be its user name (the agent id)")


def _save(store: Store, endpoint: str, agent_id: str, kind: Kind, realm: str, password: str, generation: int) -> None:
    md5, sha256 = (d.split(":", 1)[1] for d in password_digests(endpoint, realm, password))
    now = utcnow()
    with store.session() as s:
        phone = s.get(SipPhone, endpoint)
        if phone is None:
            phone = SipPhone(endpoint=endpoint, created_at=now)
            s.add(phone)
        phone.agent_id, phone.kind, phone.realm = agent_id, kind, realm
        phone.md5_digest, phone.sha256_digest = md5, sha256
        phone.generation, phone.updated_at = generation, now


def add_phone(store: Store, settings: Settings, agent_id: str, password: str) -> StoredPhone:
    """A desk phone for the agent (endpoint = agent id), or a new password for it."""
    endpoint = _agent(agent_id)
    check_password(endpoint, password)
    _save(store, endpoint, agent_id, "phone", settings.sip.realm, password, 0)
    return _stored(store, endpoint)


def add_softphone(store: Store, settings: Settings, agent_id: str) -> StoredPhone:
    """The agent's browser softphone; adding it again raises its generation, so the
    password handed out before no longer works."""
    endpoint = softphone_endpoint(_agent(agent_id))
    secret = settings.sip.softphone_secret
    if not secret:
        raise PhoneRefused("a softphone needs sip.softphone_secret (or HOTLINE_SIP_SOFTPHONE_SECRET)")
    with store.session() as s:
        old = s.get(SipPhone, endpoint)
        generation = 0 if old is None else old.generation + 1
    password = softphone_password(secret, endpoint, generation)
    _save(store, endpoint, agent_id, "softphone", settings.sip.realm, password, generation)
    return _stored(store, endpoint)


def softphone_credentials(store: Store, settings: Settings, agent_id: str) -> tuple[str, str] | None:
    """The agent's softphone endpoint and its current password (derived, never stored),
    for the signed-in agent's page; None if the agent has no softphone."""
    endpoint = softphone_endpoint(_agent(agent_id))
    with store.session() as s:
        phone = s.get(SipPhone, endpoint)
        if phone is None or phone.kind != "softphone":
            return None
        generation = phone.generation
    return endpoint, softphone_password(settings.sip.softphone_secret, endpoint, generation)


def remove_phone(store: Store, agent_id: str, *, softphone: bool = False) -> StoredPhone:
    endpoint = _agent(agent_id)
    if softphone:
        endpoint = softphone_endpoint(endpoint)
    with store.session() as s:
        phone = s.get(SipPhone, endpoint)
        if phone is None:
            raise PhoneRefused(f"agent {agent_id} has no {'softphone' if softphone else 'desk phone'}")
        gone = _view(phone)
        s.delete(phone)
    return gone


def list_phones(store: Store) -> list[StoredPhone]:
    with store.session() as s:
        return [_view(p) for p in s.scalars(select(SipPhone).order_by(SipPhone.agent_id, SipPhone.endpoint))]


def phone_entries(store: Store, settings: Settings) -> list[PhoneEntry]:
    """What pjsip.conf renders for the stored phones. Digests computed over another realm
    than sip.realm would never match a phone's answer: those phones are left out (and
    must be added again), rather than rendered broken."""
    realm = settings.sip.realm
    with store.session() as s:
        rows = list(s.scalars(select(SipPhone).order_by(SipPhone.endpoint)))
    return [
        PhoneEntry(p.endpoint, (f"MD5:{p.md5_digest}", f"SHA-256:{p.sha256_digest}"), webrtc=p.kind == "softphone")
        for p in rows
        if p.realm == realm
    ]


def _view(p: SipPhone) -> StoredPhone:
    return StoredPhone(p.endpoint, p.agent_id, p.kind, p.generation, p.created_at.isoformat(), p.updated_at.isoformat())


def _stored(store: Store, endpoint: str) -> StoredPhone:
    with store.session() as s:
        phone = s.get(SipPhone, endpoint)
        assert phone is not None
        return _view(phone)
