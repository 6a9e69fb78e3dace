"""The table models: the schema is the contract between rooms.

Money is held in fen (integer hundredths of a yuan) so no float ever rounds a balance.
Times are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Stores aware datetimes; SQLite returns naive ones, which are UTC by construction."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        # In UTC before it is bound: SQLite keeps the wall time and drops the zone, so a
        # Beijing time would come back 8 hours off (PostgreSQL's timestamptz converts).
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _while(condition: str) -> dict[str, Any]:
    """A partial index: the rows that meet `condition` (SQL), on PostgreSQL and SQLite alike."""
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- the business system's data (sample adapter); a real site reads its own -------------


class Employer(Base):
    __tablename__ = "employers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)  # unified social credit code
    name: Mapped[str] = mapped_column(String(100))
    contact_phone: Mapped[str] = mapped_column(String(20))


class Resident(Base):
    __tablename__ = "residents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str] = mapped_column(String(20))
    pin_hash: Mapped[str] = mapped_column(String(120))
    employer_id: Mapped[int | None] = mapped_column(ForeignKey("employers.id"))
    pension_balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    pension_months: Mapped[int] = mapped_column(Integer, default=0)
    medical_balance_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    card_number: Mapped[str] = mapped_column(String(20))
    card_status: Mapped[str] = mapped_column(String(16), default="active")  # active|lost|pending


class ResidentPhone(Base):
    """More numbers a resident registered for notices, beside `residents.phone` (the first)."""

    __tablename__ = "resident_phones"
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), primary_key=True, index=True)


class Contribution(Base):
    __tablename__ = "contributions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    employer_id: Mapped[int | None] = mapped_column(ForeignKey("employers.id"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    pension_fen: Mapped[int] = mapped_column(BigInteger)
    medical_fen: Mapped[int] = mapped_column(BigInteger)
    paid_on: Mapped[dt.date] = mapped_column()


class UnemploymentPayment(Base):
    __tablename__ = "unemployment_payments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    paid_on: Mapped[dt.date] = mapped_column()


# --- the platform's own ------------------------------------------------------------------


class PinLock(Base):
    """Consecutive wrong PINs per ID number, and the lock they lead to."""

    __tablename__ = "pin_locks"
    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CallIdentity(Base):
    """The ID numbers a call has tried to identify with (a keyed hash, never the number):
    a call may try only `ivr.ids_per_call` different ones, whichever FastAGI worker serves it."""

    __tablename__ = "call_identities"
    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    id_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CallerFailures(Base):
    """Failed identifications per calling number and local day (`ivr.caller_failures_per_day`)."""

    __tablename__ = "caller_failures"
    caller: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class BusinessEvent(Base):
    """The business system INSERTs the first six columns; the rest belong to the SMS gateway."""

    __tablename__ = "business_events"
    # Claiming: pending events of the instant types first (by type), then the oldest pending
    # ones in index order (by id). Partial: an event leaves them once taken up, and its one
    # later update (to queued or failed) writes nothing to either.
    __table_args__ = (
        Index(
            "ix_business_events_pending",
            "id",
            **_while("status = 'pending'"),
        ),
        Index(
            "ix_business_events_pending_type",
            "event_type",
            "id",
            **_while("status = 'pending'"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    subject_kind: Mapped[str] = mapped_column(String(8))  # 'person' | 'unit'
    subject_id: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # The gateway's: pending -> queued (its messages exist) | failed (with the reason), in the
    # one transaction that makes its messages. ('claimed' was a step of its own before 0011.)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    batch_id: Mapped[int | None] = mapped_column(Integer)  # set by `hotline sms batch`


def node_of(uniqueid: str | None) -> str | None:
    """The cluster node an Asterisk uniqueid comes from: a node's asterisk.conf sets its
    systemname, which Asterisk puts before every uniqueid (`node2-1796650815.0`); one
    Asterisk on its own sets none (`1796650815.0`)."""
    if not uniqueid or "-" not in uniqueid:
        return None
    return uniqueid.rsplit("-", 1)[0]


class Call(Base):
    """One call into 12333 as the IVR saw it."""

    __tablename__ = "calls"
    # A number's calls in time order: the report's repeat-call test (first-call resolution).
    __table_args__ = (Index("ix_calls_caller_started", "caller_number", "started_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    asterisk_uniqueid: Mapped[str | None] = mapped_column(String(40), index=True)
    channel: Mapped[str | None] = mapped_column(String(120))
    caller_number: Mapped[str | None] = mapped_column(String(32))
    # Set when the caller id as presented was not stored as is: too_long (trimmed to the
    # column), not_digits (letters or signs), or both, comma-separated (core.phones).
    caller_flag: Mapped[str | None] = mapped_column(String(24))
    transport: Mapped[str] = mapped_column(String(16), default="fastagi")
    language: Mapped[str] = mapped_column(String(4), default="zh")
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # completed | transferred | caller_hangup | failed
    outcome: Mapped[str | None] = mapped_column(String(20))
    ended_by: Mapped[str | None] = mapped_column(String(10))  # caller | system | asterisk (it went away)
    # The business system's resident id (through the business port): no key into the sample.
    resident_id: Mapped[int | None] = mapped_column(Integer)
    queue: Mapped[str | None] = mapped_column(String(40))
    last_node: Mapped[str | None] = mapped_column(String(64))
    # The call record beyond the IVR (live from AMI, or imported from queue_log/Master.csv).
    # automated | agent | abandoned | timeout | callback; None while the call is in progress
    disposition: Mapped[str | None] = mapped_column(String(12), index=True)
    queue_entered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    queue_wait_s: Mapped[int | None] = mapped_column(Integer)  # until answered, abandoned or timed out
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    agent: Mapped[str | None] = mapped_column(String(64))
    talk_s: Mapped[int | None] = mapped_column(Integer)  # with the agent; up to the transfer if transferred
    # How an answered call left the queue: agent_hangup | caller_hangup | transferred, and
    # for a transfer where to (exten@context, bridge:ID, app:NAME, link:CHAN,CHAN).
    queue_exit: Mapped[str | None] = mapped_column(String(16))
    transferred_to: Mapped[str | None] = mapped_column(String(80))
    ring_no_answer: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    survey: Mapped[int | None] = mapped_column(Integer)  # 1 satisfied, 2 basically, 3 dissatisfied
    source: Mapped[str] = mapped_column(String(8), default="ivr", server_default="ivr")  # ivr | logs


class CallStep(Base):
    """The call's trail: nodes, prompts with their text, digits, queries, outcome."""

    __tablename__ = "call_steps"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))  # node|prompt|digits|timeout|query|transfer|outcome|error
    node: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Agent(Base):
    """An agent's desired state; `hotline serve` re-applies it to Asterisk after a restart."""

    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    interface: Mapped[str] = mapped_column(String(120))  # PJSIP/1001, or Local/1001-2-4@hotline-agents/n
    queues: Mapped[str] = mapped_column(String(200), default="")  # comma-separated
    state: Mapped[str] = mapped_column(String(12), default="logged_out")  # logged_out | available | paused
    pause_reason: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # The call the agent is talking to now (from AMI AgentConnect until AgentComplete):
    # the only call whose caller the agent's console may show.
    current_call_id: Mapped[str | None] = mapped_column(String(36))
    # The call the agent was on last: the one whose wrap-up they may still save.
    last_call_id: Mapped[str | None] = mapped_column(String(36))


class MonitorSession(Base):
    """A supervisor listening to, whispering to or barging into an agent's call (ChanSpy;
    ivr/monitor.py). `mode` is the latest: the supervisor switches with keys 4, 5 and 6."""

    __tablename__ = "monitor_sessions"
    __table_args__ = (Index("ix_monitor_sessions_call_state", "call_id", "state"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    supervisor: Mapped[str] = mapped_column(String(64))  # the audit actor: console:<user> or cli:<user>
    agent_id: Mapped[str] = mapped_column(String(32), index=True)
    call_id: Mapped[str] = mapped_column(String(36))
    phone: Mapped[str] = mapped_column(String(120))  # the supervisor's phone rung: PJSIP/2001
    mode: Mapped[str] = mapped_column(String(8))  # listen | whisper | barge
    state: Mapped[str] = mapped_column(String(8))  # ringing | active | ended | failed
    spy_channel: Mapped[str | None] = mapped_column(String(120))  # the supervisor's channel once answered
    detail: Mapped[str | None] = mapped_column(String(200))  # why it failed
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class Conference(Base):
    """A three-party call (三方通话, ivr/conference.py): the agent brings a department's
    expert or another phone into the caller's call; ConfBridge hotline-<id>."""

    __tablename__ = "conferences"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(36), index=True)
    agent_id: Mapped[str] = mapped_column(String(32), index=True)
    actor: Mapped[str] = mapped_column(String(64))  # who asked: console:<user>, phone:<agent>, cli:<user>
    target_kind: Mapped[str] = mapped_column(String(12))  # department | phone
    target: Mapped[str] = mapped_column(String(64))  # the department's queue and number, or the endpoint
    member_interface: Mapped[str] = mapped_column(String(120))  # what was rung: PJSIP/1002
    caller_channel: Mapped[str] = mapped_column(String(120))
    agent_channel: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(8))  # dialing | active | ended | failed
    detail: Mapped[str | None] = mapped_column(String(200))  # why it failed
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class ConferenceLeg(Base):
    """One party's time in a three-party call, from ConfBridge's join to its leave."""

    __tablename__ = "conference_legs"
    __table_args__ = (UniqueConstraint("conference_id", "uniqueid"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    conference_id: Mapped[int] = mapped_column(ForeignKey("conferences.id"), index=True)
    party: Mapped[str] = mapped_column(String(12))  # caller | agent | member
    channel: Mapped[str] = mapped_column(String(120))
    uniqueid: Mapped[str] = mapped_column(String(40))
    joined_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    left_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class AgentSkill(Base):
    """An agent's skill (a language or a business line, `skills.names`): the skill's queue
    rings them first (penalty 0), before the agents without it (ivr/skills.py)."""

    __tablename__ = "agent_skills"
    agent_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    skill: Mapped[str] = mapped_column(String(12), primary_key=True)


class AgentEvent(Base):
    """Log-ins, log-outs and pauses, for logged-in and paused time in the reports."""

    __tablename__ = "agent_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(32), index=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    kind: Mapped[str] = mapped_column(String(12))  # login | logout | pause | unpause
    reason: Mapped[str | None] = mapped_column(String(64))


class AuditEntry(Base):
    """Who saw or changed which resident's data, through which channel, and when.

    Append-only and hash-chained (core.audit): row `seq` carries the SHA-256 of its own
    fields and of row seq-1's hash; triggers refuse UPDATE and DELETE (migration 0024)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_resident_at", "resident_id", "at"),
        Index("ix_audit_actor_at", "actor", "at"),
        Index("ix_audit_at", "at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # e.g. ivr, cli:root, console:agent7
    call_id: Mapped[str | None] = mapped_column(String(36), index=True)
    resident_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))  # e.g. read:pension, write:card_lost
    detail: Mapped[str] = mapped_column(Text, default="")
    # ivr | screen_pop | sms_reply | work_order | recording | cli | console (core.audit.CHANNELS)
    channel: Mapped[str] = mapped_column(String(12))
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)  # 1, 2, 3, ...
    prev_hash: Mapped[str] = mapped_column(String(64))  # row seq-1's row_hash; 64 zeros for row 1
    row_hash: Mapped[str] = mapped_column(String(64))


class AuditSeal(Base):
    """An HMAC of the audit chain's head under `security.audit_key`, a key kept outside the
    database (core.audit_seal, migration 0035): whoever rebuilds the chain from a copy of the
    database cannot make a seal that `hotline audit verify` accepts for the rebuilt head."""

    __tablename__ = "audit_seals"
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    row_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    mac: Mapped[str] = mapped_column(String(64))


class ConsoleUser(Base):
    """A person who signs in to the web console. Passwords are stored only as scrypt hashes."""

    __tablename__ = "console_users"
    username: Mapped[str] = mapped_column(String(32), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(12))  # agent | supervisor | admin | department | auditor
    # For department users: the department (cases settings) whose work orders they answer.
    department: Mapped[str | None] = mapped_column(String(40))
    password_hash: Mapped[str] = mapped_column(String(200))
    # For agents: their id in `agents` and the interface the queue rings (PJSIP/1001).
    agent_id: Mapped[str | None] = mapped_column(String(32))
    interface: Mapped[str | None] = mapped_column(String(120))
    disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Wrong passwords in a row, and the lock they lead to (guessing costs a scrypt each, too).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SipPhone(Base):
    """An agent's SIP phone or browser softphone, as pjsip.conf renders it. Only the
    digests of the password are kept (PJSIP `password_digest`, MD5 and SHA-256 of
    user:realm:password), never the password; a softphone's password is derived from
    `sip.softphone_secret` and the generation, which is raised to revoke it."""

    __tablename__ = "sip_phones"
    endpoint: Mapped[str] = mapped_column(String(40), primary_key=True)  # 1001, or 1001-web
    agent_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # phone | softphone
    # The realm the digests were computed over: a changed sip.realm makes them useless.
    realm: Mapped[str] = mapped_column(String(64))
    md5_digest: Mapped[str] = mapped_column(String(32))
    sha256_digest: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ConsoleSession(Base):
    """A signed-in browser. Only a hash of the cookie's token is kept."""

    __tablename__ = "console_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("console_users.username", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ConsoleSignInAddress(Base):
    """Sign-in attempts from one network address in its current window, counted before the
    password is checked (so parallel attempts cannot pass the limit), and the block they
    led to: as a bank refuses a terminal, not the accounts tried from it."""

    __tablename__ = "console_sign_in_addresses"
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # Failed attempts in the window, and those whose password is being checked now.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class Wrapup(Base):
    """What the agent noted after a call: a disposition code and a free note."""

    __tablename__ = "wrapups"
    call_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(20))  # resolved | follow_up | complaint | transferred | other
    note: Mapped[str] = mapped_column(Text, default="")
    saved_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Callback(Base):
    """A caller who chose to be called back instead of waiting; an agent completes it."""

    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_status_requested", "status", "requested_at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(36), unique=True)  # one callback per call
    number: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(16))  # long_wait | after_hours
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | taken | done | failed
    agent_id: Mapped[str | None] = mapped_column(String(32))
    done_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    note: Mapped[str] = mapped_column(Text, default="")
    # The last call out placed for it (ivr/outbound.py): None (never dialed), dialing,
    # answered, busy, no_answer, lines_full or failed; Asterisk's own word for how it ended
    # (DIALSTATUS, or the agent leg's Originate reason); when it was placed.
    dial_state: Mapped[str | None] = mapped_column(String(12))
    dial_detail: Mapped[str] = mapped_column(String(32), default="", server_default="")
    dialed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


# --- nuisance callers (core/blocked_callers.py): the list supervisors keep, and the calls it met --


class BlockedCaller(Base):
    """A calling number a supervisor listed as a nuisance (骚扰电话), until `until`: its calls
    hear `ivr.blocked_treatment` instead of reaching an agent. Unblocking deletes the row;
    the audit log keeps who listed and lifted it."""

    __tablename__ = "blocked_callers"
    number: Mapped[str] = mapped_column(String(32), primary_key=True)  # core.blocked_callers.number_key
    reason: Mapped[str] = mapped_column(String(200))
    until: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    blocked_by: Mapped[str] = mapped_column(String(64))
    blocked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class BlockedCall(Base):
    """A call from a listed number, and where it was met (`ivr` at the start of the call, or
    `queue` at queue entry): what the report counts as blocked calls. One row per call."""

    __tablename__ = "blocked_calls"
    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    stage: Mapped[str] = mapped_column(String(8))  # ivr | queue
    treatment: Mapped[str] = mapped_column(String(16))  # self_service | hang_up


class VoiceMessage(Base):
    """A message a caller left in the IVR (留言): the IVR writes the row, `cases` turns it into
    a work order (sets order_id). The recording's name is a random id, never the caller's data.
    The retention sweep deletes the file of a closed order's message and keeps the row."""

    __tablename__ = "voice_messages"
    __table_args__ = (
        Index("ix_voice_messages_order_created", "order_id", "created_at"),
        # The day's messages of one calling number (recordings.messages_per_number_day).
        Index("ix_voice_messages_caller_created", "caller_number", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(36), index=True)
    caller_number: Mapped[str | None] = mapped_column(String(32))
    # The ID number the caller keyed, when it was a valid one: the resident it names (no PIN
    # was asked, so this is what the caller said, not who they proved to be) and its masked form.
    resident_id: Mapped[int | None] = mapped_column(Integer)
    id_number_masked: Mapped[str | None] = mapped_column(String(18))
    # Relative to recordings.dir, e.g. messages/2026-12-02/<uuid>.wav
    recording: Mapped[str] = mapped_column(String(200))
    duration_s: Mapped[int] = mapped_column(Integer, default=0)
    # complete (confirmed by the caller) | hangup (the caller hung up while or after recording)
    ended: Mapped[str] = mapped_column(String(12), default="complete")
    reason: Mapped[str] = mapped_column(String(16), default="menu")  # menu | long_wait | after_hours
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    order_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    # Set by the retention sweep (ivr.recordings) when it deleted the file: only once the
    # message's order is closed and the message older than recordings.retention_days.
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    delete_reason: Mapped[str | None] = mapped_column(String(200))  # retention | missing: ...


CALL_ORDER_WHERE = "kind = 'call' AND status <> 'closed'"  # uq_work_orders_call


class WorkOrder(Base):
    """A work order (工单): a question the hotline hands to a department (cases/orders.py).

    open --answer--> answered --close--> closed; open --return--> returned --reassign--> open;
    returned --answer--> answered (the hotline answers itself); open|returned --close--> closed
    (withdrawn or a duplicate: no reply). Every change is also a `work_order_events` row.
    """

    __tablename__ = "work_orders"
    __table_args__ = (
        Index("ix_work_orders_status_due", "status", "due_at"),
        Index("ix_work_orders_department_status", "department", "status"),
        # One order per call from the agent's wrap-up, however often it is saved (0028); a
        # closed one leaves the index, so that duplicates from before can be closed away.
        Index("uq_work_orders_call", "call_id", unique=True, **_while(CALL_ORDER_WHERE)),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # call | voice_message | callback
    category: Mapped[str] = mapped_column(String(20))  # core.settings.CASE_CATEGORIES
    summary: Mapped[str] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(String(40))  # None: at the hotline, to assign
    status: Mapped[str] = mapped_column(String(12), default="open")  # open | answered | returned | closed
    # The resident the order is about (the business system's id) and their masked ID number;
    # the number to reply to (the caller's, in the store's form).
    resident_id: Mapped[int | None] = mapped_column(Integer)
    id_number_masked: Mapped[str | None] = mapped_column(String(18))
    caller_number: Mapped[str | None] = mapped_column(String(32))
    call_id: Mapped[str | None] = mapped_column(String(36), index=True)
    voice_message_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))  # cli:root, console:agent7, ivr
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())  # close of business, core.calendar
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[str | None] = mapped_column(String(64))
    reply_via: Mapped[str | None] = mapped_column(String(8))  # sms | callback | none
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())  # once, when overdue
    # Follow-up (回访): None (not yet) | sent | answered | no_reply | no_number; the SMS's
    # time and the resident's answer (1 satisfied, 2 basically, 3 dissatisfied, as the IVR's survey).
    followup_state: Mapped[str | None] = mapped_column(String(12))
    followup_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    satisfaction: Mapped[int | None] = mapped_column(Integer)


class WorkOrderEvent(Base):
    """One change of a work order: who, when, what. Rows are only ever inserted."""

    __tablename__ = "work_order_events"
    __table_args__ = (Index("ix_work_order_events_order_at", "order_id", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    # created | assigned | answered | returned | escalated | closed | followup_sent | followup_reply
    # | returned_to_12345 | extension_asked | extension_granted | forwarded | resent_to_12345
    action: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SmsSurvey(Base):
    """A question sent by SMS whose answer is a digit (a work order's follow-up: 1/2/3).
    The sender writes it with the message's business event; the SMS gateway records the
    first digit the number texts back while it is open (sms/mo.py), knowing nothing of
    what asked it: the key (the business event's idempotency key) tells the asker."""

    __tablename__ = "sms_surveys"
    __table_args__ = (Index("ix_sms_surveys_phone_asked", "phone", "asked_at"),)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))  # core.phones.store_form
    asked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    open_until: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    answer: Mapped[int | None] = mapped_column(Integer)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


# --- the knowledge base (cases/kb.py) -------------------------------------------------------

# Full-text search over the articles is kept outside these models: on SQLite an FTS5 table
# `kb_fts` (trigram tokenizer) with its shadow tables and triggers, on PostgreSQL pg_trgm GIN
# indexes on title and body (migration 0023). Alembic's comparison leaves these names alone.
KB_SEARCH_OBJECTS = frozenset(
    {
        "kb_fts",
        "kb_fts_data",
        "kb_fts_idx",
        "kb_fts_content",
        "kb_fts_docsize",
        "kb_fts_config",
        "ix_kb_articles_title_trgm",
        "ix_kb_articles_body_trgm",
    }
)


def outside_models(name: str | None, type_: str, _parent: Any) -> bool:
    """Alembic `include_name`: False for the search objects that migrations keep by hand."""
    return name not in KB_SEARCH_OBJECTS


class KbArticle(Base):
    """A policy article agents answer from (专家知识库). The text is Markdown; `version`
    counts edits, each kept in kb_article_versions. Agents see only published articles in
    effect (effective_date on or before today)."""

    __tablename__ = "kb_articles"
    __table_args__ = (Index("ix_kb_articles_status_effective", "status", "effective_date"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)  # imports update by title
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40))
    tags: Mapped[str] = mapped_column(String(200), default="", server_default="")  # comma-separated
    effective_date: Mapped[dt.date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(12), default="draft")  # draft | published | retired
    sample: Mapped[bool] = mapped_column(default=False, server_default=false())  # sample content
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class KbArticleVersion(Base):
    """Every version of an article's text as it was saved, by whom and when."""

    __tablename__ = "kb_article_versions"
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40))
    tags: Mapped[str] = mapped_column(String(200))
    effective_date: Mapped[dt.date] = mapped_column(Date)
    edited_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class KbUse(Base):
    """An article an agent answered a call from, at the version they read."""

    __tablename__ = "kb_uses"
    __table_args__ = (UniqueConstraint("call_id", "article_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(36))
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    agent: Mapped[str] = mapped_column(String(32))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Recording(Base):
    """An agent call's recording (MixMonitor, started when the agent answers): the AMI monitor
    writes the row, the retention sweep deletes the file after recordings.retention_days and
    keeps the row with why. The file name is a random id, never the caller's data."""

    __tablename__ = "recordings"
    __table_args__ = (Index("ix_recordings_started", "started_at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    call_id: Mapped[str] = mapped_column(String(36), index=True)
    agent: Mapped[str | None] = mapped_column(String(64))  # the queue member's name, as calls.agent
    # Relative to recordings.dir, e.g. calls/2026-12-02/<uuid>.wav
    path: Mapped[str] = mapped_column(String(200), unique=True)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    duration_s: Mapped[float | None] = mapped_column(Float)  # from the WAV header once it is closed
    size: Mapped[int | None] = mapped_column(BigInteger)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    delete_reason: Mapped[str | None] = mapped_column(String(200))  # retention | missing: ...


class QualityScore(Base):
    """A supervisor's score of a recorded call (质检) on the form of [quality] items."""

    __tablename__ = "quality_scores"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    recording_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True)
    call_id: Mapped[str] = mapped_column(String(36))
    agent: Mapped[str | None] = mapped_column(String(64), index=True)
    scorer: Mapped[str] = mapped_column(String(64))
    items: Mapped[dict[str, Any]] = mapped_column(JSON)  # item key -> points given
    total: Mapped[int] = mapped_column(Integer)
    max_total: Mapped[int] = mapped_column(Integer)  # the form's maximum when it was scored
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


# --- the SMS gateway's own ----------------------------------------------------------------


class SmsMessage(Base):
    """One message to one number for one event: the unit of sending, retrying and reporting."""

    __tablename__ = "sms_messages"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient"),
        # Every status change rewrites a message's index entries (the status is indexed, so
        # no update is HOT), so its indexes are partial where they can be: a message is in
        # each only while it is in that state, and written once to each.
        # Queued, in claiming order, so a claim reads only as far as its LIMIT.
        Index(
            "ix_sms_messages_queued",
            "priority",
            "next_attempt_at",
            "id",
            **_while("status = 'queued'"),
        ),
        # Numbers with a message on the wire: one message per number at a time; and the
        # claims a dispatcher heartbeats, or takes back from a dead one.
        Index(
            "ix_sms_messages_sending",
            "recipient",
            **_while("status = 'sending'"),
        ),
        # Waiting for receipts, oldest first: those past `sms.receipt_timeout_s` end unknown.
        Index(
            "ix_sms_messages_submitted",
            "submitted_at",
            **_while("status = 'submitted'"),
        ),
        # A batch's progress and summary (events from the business table have no batch).
        Index(
            "ix_sms_messages_batch_id",
            "batch_id",
            **_while("batch_id IS NOT NULL"),
        ),
        # The SMS steps of notices (core/notices.py): found by their notice.
        Index(
            "ix_sms_messages_notice_id",
            "notice_id",
            **_while("notice_id IS NOT NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The business event it was made for; None for a reply to a resident's text (MO).
    event_id: Mapped[int | None] = mapped_column(ForeignKey("business_events.id"))
    event_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))  # counted by scans (status, reports)
    recipient: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=1)  # 0 instant, 1 batch
    batch_id: Mapped[int | None] = mapped_column(Integer)  # indexed above, partially
    # queued | sending | submitted | delivered | undelivered | expired | rejected | unknown
    # | failed (permanent SMSC error or dead letter) | skipped (opted out)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int] = mapped_column(Integer, default=1)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    final_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # Sent again after a dispatcher died between submit and its record: may have arrived twice.
    duplicate_suspect: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Temporary refusals (0x14, 0x58, 0x08...: never accepted) that put it back in the queue;
    # they are not `attempts`, and after `sms.max_refusals` it is a dead letter all the same.
    refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The notice (over the channels the subject chose) this message is a step of; None for a
    # message sent as every message was before channel preferences (no preference kept).
    notice_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))


class SmsLink(Base):
    """The state of each SMPP link of each running gateway (sms/link_status.py), written on
    every change and refreshed while it runs, for `hotline sms status` in another process."""

    __tablename__ = "sms_links"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # worker and link
    state: Mapped[str] = mapped_column(String(12))  # sms.bind_health.LinkState
    address: Mapped[str] = mapped_column(String(128))  # the SMSC host:port it is (or was) bound to
    detail: Mapped[str | None] = mapped_column(Text)  # why, for refusing/rebinding (no numbers)
    since: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sick_binds: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SmsSegment(Base):
    """A submit_sm of a message and the SMSC's id for it, to correlate receipts."""

    __tablename__ = "sms_segments"
    __table_args__ = (UniqueConstraint("message_id", "seq"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("sms_messages.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    smsc_id: Mapped[str | None] = mapped_column(String(64), index=True)  # canonical (sms.receipts)
    state: Mapped[str] = mapped_column(String(12), default="submitted")
    submitted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    receipt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class SmsReceipt(Base):
    """A delivery receipt whose submit_sm_resp has not been recorded yet (it can arrive first)."""

    __tablename__ = "sms_receipts"
    smsc_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # canonical
    stat: Mapped[str] = mapped_column(String(12))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SmsBatch(Base):
    """A batch send (`hotline sms batch`): its events carry its id, and so do their messages."""

    __tablename__ = "sms_batches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    source: Mapped[str] = mapped_column(String(200))
    total: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="running")  # running | paused
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SmsOptOut(Base):
    """A number that texted TD: no optional categories (statements, policy news) for it."""

    __tablename__ = "sms_optouts"
    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    source: Mapped[str] = mapped_column(String(16), default="mo")  # mo | admin


class SmsOptOutRequest(Base):
    """A TD waiting for its confirmation: the code sent back to the number, which a sender
    spoofing that number never sees (sms.mo)."""

    __tablename__ = "sms_optout_requests"
    phone: Mapped[str] = mapped_column(String(20), primary_key=True)  # core.phones.store_form
    code: Mapped[str] = mapped_column(String(8))
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class SmsMoText(Base):
    """A resident's text (MO) as received, whole, and whether it was answered: the replies
    of the last hour per number are counted here (`sms.mo_replies_per_hour`)."""

    __tablename__ = "sms_mo_texts"
    __table_args__ = (Index("ix_sms_mo_texts_phone", "phone", "received_at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20))  # core.phones.store_form
    text: Mapped[str] = mapped_column(Text)
    keyword: Mapped[str] = mapped_column(String(8))  # ye | cx | td | kt | other
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    replied: Mapped[bool] = mapped_column(default=False)


class SmsMoPart(Base):
    """A part of a concatenated MO text, stored before its deliver_sm is answered, until the
    last part makes the text whole (any dispatcher may receive any part)."""

    __tablename__ = "sms_mo_parts"
    phone: Mapped[str] = mapped_column(String(20), primary_key=True)  # core.phones.store_form
    reference: Mapped[int] = mapped_column(Integer, primary_key=True)
    total: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_coding: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class SmsDeadLetter(Base):
    """A deliver_sm whose handling failed: its tries, and once `sms.inbound_max_tries` is
    reached (`dead`), kept here with the reason and answered so the SMSC stops resending."""

    __tablename__ = "sms_dead_letters"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # a digest of what it carries
    source: Mapped[str] = mapped_column(String(24))
    esm_class: Mapped[int] = mapped_column(Integer)
    data_coding: Mapped[int] = mapped_column(Integer)
    short_message: Mapped[bytes] = mapped_column(LargeBinary)
    tries: Mapped[int] = mapped_column(Integer, default=1)
    reason: Mapped[str | None] = mapped_column(Text)
    dead: Mapped[bool] = mapped_column(default=False)
    first_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


# --- notices over the channels each resident chose (core/preferences.py, core/notices.py) --


class NoticePreference(Base):
    """How a resident (`person`, by ID number) or an employer (`unit`, by unified social credit
    code) wants notices of a category: channels in order of preference, language and quiet
    hours. Category '*' holds the choice for every category without a row of its own. Set
    by the resident in the IVR, by an agent in the console, or by the business system,
    which may INSERT and UPDATE these rows itself (docs/sms-and-notices.md, "Notice
    channels: preferences")."""

    __tablename__ = "notice_preferences"
    subject_kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # person | unit
    subject_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(20), primary_key=True)  # a template category or '*'
    channels: Mapped[str] = mapped_column(String(40))  # e.g. "voice,sms": core.states.Channel values
    language: Mapped[str] = mapped_column(String(5), default="zh", server_default="zh")  # zh | en
    # Local "HH:MM" (queue.timezone); both or neither; the window may cross midnight.
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    # The number to call for voice notices; None: the subject's first registered phone.
    voice_number: Mapped[str | None] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(48), default="business", server_default="business")
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Notice(Base):
    """One business event's notice to its subject, moved along the channels of its plan
    (the subject's preferences when the event was taken up) until one delivers it. Made
    only for subjects with preferences; every other event's messages are plain SMS rows."""

    __tablename__ = "notices"
    __table_args__ = (
        # The gateway's work: notices whose channel gave up, and SMS steps waiting for receipts.
        Index("ix_notices_open", "state", "channel", "id", **_while("state IN ('pending', 'advance')")),
        Index("ix_notices_subject", "subject_kind", "subject_id"),
        Index("ix_notices_created", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("business_events.id"), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))
    subject_kind: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[str] = mapped_column(String(32))
    plan: Mapped[str] = mapped_column(String(40))  # channels in order, e.g. "voice,sms"
    step: Mapped[int] = mapped_column(Integer, default=0)  # index of `channel` in `plan`
    channel: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(10), default="pending")  # core.states.NoticeState
    fallbacks: Mapped[int] = mapped_column(Integer, default=0)
    language: Mapped[str] = mapped_column(String(5), default="zh")
    text: Mapped[str] = mapped_column(Text)  # the rendered notice, as every channel sends it
    reason: Mapped[str | None] = mapped_column(Text)  # why the last channel gave up
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    final_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class NoticeStep(Base):
    """The notice's history: each attempt on each channel and how it ended, appended by the
    room that made it (sms/ for SMS and WeChat, ivr/ for calls), never changed."""

    __tablename__ = "notice_steps"
    __table_args__ = (Index("ix_notice_steps_notice", "notice_id", "id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    notice_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    channel: Mapped[str] = mapped_column(String(8))
    # queued | skipped | delivered | failed | busy | no_answer | confirmed | heard | ... :
    # the channel's own word, with Asterisk's or WeChat's in `detail`
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")


class VoiceNotice(Base):
    """A notice to be read to the resident in a call out: the gateway writes it, the IVR's
    notice dialler claims it as the dispatcher claims its messages, calls, and ends it."""

    __tablename__ = "voice_notices"
    __table_args__ = (
        Index("ix_voice_notices_queued", "next_attempt_at", "id", **_while("status = 'queued'")),
        # Numbers with a call under way: never two calls to one number at once (0033).
        Index("ix_voice_notices_calling", "number", unique=True, **_while("status = 'calling'")),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    notice_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    number: Mapped[str] = mapped_column(String(20))  # core.phones.store_form
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(5), default="zh")
    category: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default="queued")  # core.states.VoiceState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_result: Mapped[str | None] = mapped_column(String(32))  # DIALSTATUS, or ours
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    final_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class VoiceOptOut(Base):
    """A number that asked not to be called with notices (in a notice call, or by an agent)."""

    __tablename__ = "voice_optouts"
    phone: Mapped[str] = mapped_column(String(20), primary_key=True)  # core.phones.store_form
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    source: Mapped[str] = mapped_column(String(48), default="call")


class WeChatMessage(Base):
    """A notice as a template message to the resident's bound WeChat account."""

    __tablename__ = "wechat_messages"
    __table_args__ = (Index("ix_wechat_messages_queued", "next_attempt_at", "id", **_while("status = 'queued'")),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    notice_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), unique=True)
    openid: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="queued")  # core.states.WeChatState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    msgid: Mapped[str | None] = mapped_column(String(32))  # WeChat's id of the sent message
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    final_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class WeChatBinding(Base):
    """A resident's WeChat account (the official account's openid for them), bound after they
    proved the ID number with a code sent to its registered phone. Unbound (row deleted) when
    they unbind or unfollow."""

    __tablename__ = "wechat_bindings"
    subject_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the ID number
    openid: Mapped[str] = mapped_column(String(64), unique=True)
    bound_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class WeChatBindCode(Base):
    """A binding waiting for its code: kept as a hash, with the tries left."""

    __tablename__ = "wechat_bind_codes"
    openid: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(128))
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    tries: Mapped[int] = mapped_column(Integer, default=0)


class WeChatPushNonce(Base):
    """A signed WeChat push taken (its timestamp and nonce, migration 0035): kept in the store,
    so that no console process takes the same signed request again. Rows older than the
    freshness window are pruned as new ones come (sms.wechat_push.FRESH_S)."""

    __tablename__ = "wechat_push_nonces"
    timestamp: Mapped[str] = mapped_column(String(12), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    taken_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class Hotline12345Nonce(Base):
    """A signed request from a 12345 counterpart taken (its nonce, migration 0038): one-time
    per counterpart across every console process. Rows are kept twice
    `hotline12345.max_skew_s` (as long as a replay's timestamp could still be fresh) and
    pruned as new ones come (cases/intake12345.py)."""

    __tablename__ = "hotline12345_nonces"
    counterpart: Mapped[str] = mapped_column(String(40), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    taken_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class Hotline12345Order(Base):
    """A work order 12345 sent (派单, migration 0038): its number at that counterpart and the
    local order it became. The primary key makes the same order sent again the same local
    order; `digest` (SHA-256 of its fields as taken) tells a resend from a changed order."""

    __tablename__ = "hotline12345_orders"
    counterpart: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_no: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("work_orders.id"), unique=True
    )
    digest: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Hotline12345Outbound(Base):
    """A message to 12345 about one of its orders (migration 0039): accepted (签收), answered
    (办结) or returned (退单), written in the transaction of the change it tells of, keyed by
    (counterpart, 12345's number, kind, the order event) so each change is sent once, and
    sent by cases/sender12345.py: pending → sending → sent, or failed (a dead letter, with
    its reason). A failed try puts it back to pending at `next_attempt_at`."""

    __tablename__ = "hotline12345_outbox"
    __table_args__ = (
        UniqueConstraint("counterpart", "order_no", "kind", "event_id"),
        Index("ix_hotline12345_outbox_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    counterpart: Mapped[str] = mapped_column(String(40))
    order_no: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))  # accepted | answered | returned | extension | forwarded
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("work_order_events.id")
    )
    order_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("work_orders.id"), index=True
    )
    body: Mapped[str] = mapped_column(Text)  # the JSON sent, as written with the change
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    final_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())  # sent, or dead-lettered
    last_error: Mapped[str | None] = mapped_column(String(500))


class WeChatBindRequest(Base):
    """One request for a binding code (migration 0032): counted per WeChat account and per ID
    number over the last hour, so neither can be used to flood a phone or to look up many ID
    numbers. Rows older than a day are pruned as new ones come."""

    __tablename__ = "wechat_bind_requests"
    __table_args__ = (
        Index("ix_wechat_bind_requests_openid", "openid", "requested_at"),
        Index("ix_wechat_bind_requests_subject", "subject_id", "requested_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    openid: Mapped[str] = mapped_column(String(64))
    subject_id: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    sent: Mapped[bool] = mapped_column(default=False)  # a code went to the registered phone


# --- the reports' own: hourly sums of closed hours -----------------------------------------


class ReportSealed(Base):
    """An hour whose sums of one kind (`calls`, `menu`, `sms`) are kept in the tables below.

    An hour is sealed once nothing can change in it any more through the live paths (a day
    after it for calls and their steps; for messages, once none of its messages is still in
    flight). A path that changes older records (importing Asterisk's files or spooled calls,
    `hotline simulate`) unseals the hours it touches (`core.rollups.unseal`)."""

    __tablename__ = "report_sealed"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(UtcDateTime(), primary_key=True)
    sealed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ReportState(Base):
    """Per kind, how many times its sums were unsealed (see `core.rollups.generation`)."""

    __tablename__ = "report_state"
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportCallHour(Base):
    """Per UTC hour (calls by start) and agent ('' for calls no agent answered): the sums
    every call figure is derived from (reports.report.Totals), and the IVR-resolved calls."""

    __tablename__ = "report_call_hours"
    hour: Mapped[dt.datetime] = mapped_column(UtcDateTime(), primary_key=True)
    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    automated: Mapped[int] = mapped_column(BigInteger, default=0)
    agent_calls: Mapped[int] = mapped_column(BigInteger, default=0)
    abandoned: Mapped[int] = mapped_column(BigInteger, default=0)
    timeout: Mapped[int] = mapped_column(BigInteger, default=0)
    callback: Mapped[int] = mapped_column(BigInteger, default=0)
    talk_s: Mapped[int] = mapped_column(BigInteger, default=0)
    answered_wait_s: Mapped[int] = mapped_column(BigInteger, default=0)
    answered_waits: Mapped[int] = mapped_column(BigInteger, default=0)
    answered_in_sl: Mapped[int] = mapped_column(BigInteger, default=0)
    abandoned_wait_s: Mapped[int] = mapped_column(BigInteger, default=0)
    abandoned_waits: Mapped[int] = mapped_column(BigInteger, default=0)
    abandoned_in_sl: Mapped[int] = mapped_column(BigInteger, default=0)
    satisfied: Mapped[int] = mapped_column(BigInteger, default=0)
    rated: Mapped[int] = mapped_column(BigInteger, default=0)
    simulated: Mapped[int] = mapped_column(BigInteger, default=0)
    sl_s: Mapped[int] = mapped_column(Integer, default=20)  # the service-level threshold used


class ReportFcrHour(Base):
    """Per UTC hour (agent calls by start): the first-call counts, sealed (kind 'fcr') once
    the hour's 7-day repeat window has closed. Agent calls with a caller number, those
    called again from the number within 7 days, and those without a number. Whether a call
    became a work order is not kept: an order can be made from a call later, and is
    counted live (reports.casework)."""

    __tablename__ = "report_fcr_hours"
    hour: Mapped[dt.datetime] = mapped_column(UtcDateTime(), primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    repeated: Mapped[int] = mapped_column(BigInteger, default=0)
    no_number: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportMenuHour(Base):
    """Per UTC hour (calls by start) and self-service query: how many times callers used it
    and how many times it succeeded; query '' counts the automated calls the IVR resolved."""

    __tablename__ = "report_menu_hours"
    hour: Mapped[dt.datetime] = mapped_column(UtcDateTime(), primary_key=True)
    query: Mapped[str] = mapped_column(String(64), primary_key=True)
    uses: Mapped[int] = mapped_column(BigInteger, default=0)
    succeeded: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportSmsHour(Base):
    """Per UTC hour (messages by creation), category and final state: counts and the summed
    delivery latency."""

    __tablename__ = "report_sms_hours"
    hour: Mapped[dt.datetime] = mapped_column(UtcDateTime(), primary_key=True)
    category: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(12), primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    sent: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)


class OutboundDial(Base):
    """A call out about to be placed (a callback dialled, a voice notice's call), or one a
    cap kept from being placed (`refused`): the ledger the caps on calls out count
    (core.calls_out; destinations.calls_per_number_day and calls_per_hour)."""

    __tablename__ = "outbound_dials"
    __table_args__ = (
        Index("ix_outbound_dials_number_at", "number", "at"),
        Index("ix_outbound_dials_at", "at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    number: Mapped[str] = mapped_column(String(32))  # core.phones.store_form
    purpose: Mapped[str] = mapped_column(String(12))  # callback | notice
    ref_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))  # its callback or notice call
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    refused: Mapped[str | None] = mapped_column(String(16))  # None: placed; number_day | hotline_hour
