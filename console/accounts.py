"""Console accounts and signed-in sessions.

Passwords are kept only as scrypt hashes (cost in each hash, so it can be raised later).
A session cookie holds a random token; the table holds its SHA-256, so a copy of the
database cannot be used to sign in. Each session has its own CSRF token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import case, delete, or_, select, update

from console.errors import AccountError, AddressBlocked, BadCredentials
from core.db import Store, upsert
from core.models import ConsoleSession, ConsoleSignInAddress, ConsoleUser, utcnow
from core.settings import WebSettings

# An auditor sees the audit trail and nothing else; supervisors do not see the trail
# (separation of duties: those who watch the agents are watched too). Admin sees both.
# A department user sees their department's work orders and nothing else.
ROLES = ("agent", "supervisor", "admin", "department", "auditor")
# scrypt N=2^14, r=8: 16 MiB and about 50 ms here, which is fine for a sign-in.
SCRYPT_N = 2**14
SCRYPT_R = 8
MIN_PASSWORD = 10
MAX_FAILURES = 5
LOCK_TIME = dt.timedelta(minutes=15)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class User:
    username: str
    display_name: str
    role: str
    agent_id: str | None
    interface: str | None
    department: str | None = None  # role department: whose work orders the account answers


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: str  # for the cookie; only its hash is stored
    csrf_token: str


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=1, maxmem=2**26, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    scheme, n, r, salt_hex, digest_hex = stored.split("$")
    if scheme != "scrypt":
        raise AccountError(f"unknown password hash scheme {scheme!r}")
    derived = hashlib.scrypt(
        password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=1, maxmem=2**26, dklen=32
    )
    return hmac.compare_digest(derived, bytes.fromhex(digest_hex))


# Compared against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password("not a password", salt=b"\0" * 16)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user(u: ConsoleUser) -> User:
    return User(u.username, u.display_name, u.role, u.agent_id, u.interface, u.department)


def add_user(
    store: Store,
    username: str,
    password: str,
    role: str,
    display_name: str | None = None,
    agent_id: str | None = None,
    interface: str | None = None,
    department: str | None = None,
    departments: Collection[str] = (),
) -> User:
    """Create or replace an account (replacing sets a new password and signs it out everywhere).
    A department account names one of `departments` (settings.cases.departments)."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not username.isascii() or not username.replace("-", "").replace("_", "").isalnum():
        raise AccountError("a user name has letters, digits, - and _ only")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if role == "agent" and not (agent_id and interface):
        raise AccountError("an agent account needs --agent-id and --interface (the queue member, e.g. PJSIP/1001)")
    if role == "department" and department not in departments:
        raise AccountError(f"a department account needs --department, one of {', '.join(departments) or '(none set)'}")
    if role != "department" and department is not None:
        raise AccountError("--department is for department accounts only")
    user = ConsoleUser(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=hash_password(password),
        agent_id=agent_id,
        interface=interface,
        department=department,
        disabled=False,
        failed_logins=0,
        locked_until=None,
    )
    with store.session() as s:
        s.execute(delete(ConsoleSession).where(ConsoleSession.username == username))
        s.merge(user)
    return _user(user)


def list_users(store: Store) -> list[User]:
    with store.session() as s:
        return [_user(u) for u in s.scalars(select(ConsoleUser).order_by(ConsoleUser.username))]


def sign_in(store: Store, username: str, password: str, idle: dt.timedelta) -> SignedIn:
    """A session for the right password. MAX_FAILURES wrong ones in a row lock the account
    for LOCK_TIME (the lock is not revealed: the answer stays "wrong user name or password")."""
    with store.session() as s:
        user = s.get(ConsoleUser, username)
    stored = user.password_hash if user is not None else _DUMMY_HASH
    right = verify_password(password, stored)
    now = utcnow()
    if user is None or user.disabled or (user.locked_until is not None and user.locked_until > now):
        raise BadCredentials("wrong user name or password")
    if not right:
        with store.session() as s:
            s.execute(
                update(ConsoleUser)
                .where(ConsoleUser.username == username)
                .values(failed_logins=ConsoleUser.failed_logins + 1)
            )
            failures = s.scalar(select(ConsoleUser.failed_logins).where(ConsoleUser.username == username)) or 0
            if failures >= MAX_FAILURES:
                s.execute(
                    update(ConsoleUser)
                    .where(ConsoleUser.username == username)
                    .values(failed_logins=0, locked_until=now + LOCK_TIME)
                )
                log.warning("console: account %s locked for %s after %d wrong passwords", username, LOCK_TIME, failures)
        raise BadCredentials("wrong user name or password")
    if user.failed_logins or user.locked_until:
        with store.session() as s:
            s.execute(
                update(ConsoleUser).where(ConsoleUser.username == username).values(failed_logins=0, locked_until=None)
            )
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with store.session() as s:
        # Expired sessions are swept here rather than by a timer.
        s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        s.add(
            ConsoleSession(
                token_hash=_token_hash(token), username=username, csrf_token=csrf, created_at=now, expires_at=now + idle
            )
        )
    return SignedIn(_user(user), token, csrf)


def session_user(store: Store, token: str, idle: dt.timedelta, *, extend: bool = True) -> tuple[User, str] | None:
    """The user and CSRF token of a live session, extending it; None if unknown or expired."""
    now = utcnow()
    with store.session() as s:
        row = s.get(ConsoleSession, _token_hash(token))
        if row is None or row.expires_at < now:
            return None
        user = s.get(ConsoleUser, row.username)
        if user is None or user.disabled:
            return None
        # Extend at most once a minute: most requests then read without writing.
        if extend and row.expires_at - now < idle - dt.timedelta(minutes=1):
            row.expires_at = now + idle
        return _user(user), row.csrf_token


def sign_out(store: Store, token: str) -> None:
    with store.session() as s:
        s.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token)))


# --- per address ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AddressRules:
    failures: int  # failed sign-ins per window...
    window: dt.timedelta
    block: dt.timedelta  # ...then the address is refused this long

    @classmethod
    def of(cls, web: WebSettings) -> AddressRules:
        return cls(
            web.sign_in_failures_per_address,
            dt.timedelta(minutes=web.sign_in_window_minutes),
            dt.timedelta(minutes=web.sign_in_block_minutes),
        )


_ADDR = ConsoleSignInAddress


def take_attempt(store: Store, address: str, rules: AddressRules) -> None:
    """Count a sign-in attempt from `address` before its password is checked, in one
    conditional UPDATE: parallel attempts cannot pass `rules.failures` between them. A
    right password gives the attempt back (`attempt_succeeded`). Raises AddressBlocked
    (and nothing is checked, so no account's lock moves) while the address is refused."""
    now = utcnow()
    stale = _ADDR.window_start <= now - rules.window
    free = or_(_ADDR.blocked_until.is_(None), _ADDR.blocked_until <= now)
    with store.transaction() as c:
        c.execute(upsert(c, _ADDR).values(address=address, window_start=now, attempts=0).on_conflict_do_nothing())
        taken = c.execute(
            update(_ADDR)
            .where(_ADDR.address == address, free, or_(stale, _ADDR.attempts < rules.failures))
            .values(
                attempts=case((stale, 1), else_=_ADDR.attempts + 1),
                window_start=case((stale, now), else_=_ADDR.window_start),
            )
        ).rowcount
        if taken:
            return
        row = c.execute(select(_ADDR.window_start, _ADDR.blocked_until).where(_ADDR.address == address)).one()
    # At the limit with attempts still being checked: refused until the window ends.
    until = row.blocked_until if row.blocked_until is not None and row.blocked_until > now else row.window_start
    raise AddressBlocked(address, until if until > now else row.window_start + rules.window)


def attempt_failed(store: Store, address: str, rules: AddressRules) -> None:
    """A wrong password from `address`: the attempt stays counted; at the limit the
    address is refused for `rules.block`."""
    now = utcnow()
    with store.transaction() as c:
        blocked = c.execute(
            update(_ADDR)
            .where(
                _ADDR.address == address,
                _ADDR.attempts >= rules.failures,
                or_(_ADDR.blocked_until.is_(None), _ADDR.blocked_until <= now),
            )
            .values(blocked_until=now + rules.block)
        ).rowcount
    if blocked:
        log.warning("console: sign-ins from %s refused for %s after %d failures", address, rules.block, rules.failures)


def attempt_succeeded(store: Store, address: str, rules: AddressRules) -> None:
    """A right password: its attempt is given back (a success does not wipe the failures,
    or one account of one's own would reset the count between guesses). Addresses whose
    window and block are over are swept here rather than by a timer."""
    now = utcnow()
    with store.transaction() as c:
        c.execute(update(_ADDR).where(_ADDR.address == address, _ADDR.attempts > 0).values(attempts=_ADDR.attempts - 1))
        c.execute(
            delete(_ADDR).where(
                _ADDR.window_start <= now - rules.window,
                or_(_ADDR.blocked_until.is_(None), _ADDR.blocked_until <= now),
            )
        )
