"""The business port: the only door to resident data held by the social-insurance system.

Read-only, except for explicit transactions (reporting a card lost). The embedded adapter
reads the sample tables in our own database; a real site plugs in its own adapter (SQL
views or HTTP) that satisfies `BusinessPort`. Every successful read is audited by
`core.identify.Identifier` and `AuditedReader`, not by the adapter, so no adapter can forget it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core import audit, pins
from core.db import Store
from core.models import BusinessEvent, Contribution, Resident, UnemploymentPayment, utcnow
from core.writer import GroupWriter

log = logging.getLogger(__name__)


# The reads every identified call makes, built once (no statement building per call).
_RESIDENT_ID = select(Resident.id).where(Resident.id_number == bindparam("id_number"))
_PIN_HASH = select(Resident.id, Resident.pin_hash).where(Resident.id_number == bindparam("id_number"))
_PENSION = select(Resident.pension_balance_fen, Resident.pension_months).where(Resident.id == bindparam("rid"))


@dataclass(frozen=True)
class Person:
    name: str
    id_number: str
    phone: str


@dataclass(frozen=True)
class PensionAccount:
    balance_fen: int
    months: int


@dataclass(frozen=True)
class MedicalAccount:
    balance_fen: int


@dataclass(frozen=True)
class ContributionRow:
    period: str
    pension_fen: int
    medical_fen: int


@dataclass(frozen=True)
class BenefitPayment:
    period: str
    amount_fen: int


@dataclass(frozen=True)
class PinCheck:
    resident_id: int | None  # None: nobody holds the ID number
    matched: bool


@dataclass(frozen=True)
class CardStatus:
    status: str  # active | lost | pending
    card_tail: str
    already: bool = False  # for a loss report: the card was already reported lost


class BusinessPort(Protocol):
    """What the hotline may ask of the social-insurance business system."""

    def resident_id(self, id_number: str) -> int | None: ...
    def person(self, resident_id: int) -> Person: ...
    def check_pin(self, id_number: str, pin: str) -> PinCheck:
        """Whether the PIN is the one of the resident holding `id_number`. It must take the
        same time whether or not anyone holds that ID number (the caller is told the same
        either way, and must not learn it from the delay either)."""
        ...

    def pension(self, resident_id: int) -> PensionAccount: ...
    def medical(self, resident_id: int) -> MedicalAccount: ...
    def contributions(self, resident_id: int, limit: int = 3) -> list[ContributionRow]: ...
    def unemployment(self, resident_id: int, limit: int = 3) -> list[BenefitPayment]: ...
    def card(self, resident_id: int) -> CardStatus: ...
    def report_card_lost(self, resident_id: int, *, call_id: str) -> CardStatus: ...


class SampleBusinessPort:
    """The embedded adapter over the sample tables (`hotline sample`)."""

    def __init__(self, store: Store, pin_pepper: str) -> None:
        self.store = store
        self.pepper = pin_pepper
        self.decoy = pins.hash_pin(secrets.token_hex(8), pin_pepper)  # checked for ID numbers nobody holds

    def resident_id(self, id_number: str) -> int | None:
        with self.store.transaction() as c:
            return c.scalar(_RESIDENT_ID, {"id_number": id_number})

    def person(self, resident_id: int) -> Person:
        with self.store.session() as s:
            r = s.get_one(Resident, resident_id)
            return Person(r.name, r.id_number, r.phone)

    def check_pin(self, id_number: str, pin: str) -> PinCheck:
        with self.store.transaction() as c:
            row = c.execute(_PIN_HASH, {"id_number": id_number}).first()
        if row is None:
            pins.verify_pin(pin, self.decoy, self.pepper)  # the same scrypt work as a real check
            return PinCheck(None, matched=False)
        return PinCheck(row.id, matched=pins.verify_pin(pin, row.pin_hash, self.pepper))

    def pension(self, resident_id: int) -> PensionAccount:
        with self.store.transaction() as c:
            row = c.execute(_PENSION, {"rid": resident_id}).one()
        return PensionAccount(row.pension_balance_fen, row.pension_months)

    def medical(self, resident_id: int) -> MedicalAccount:
        with self.store.session() as s:
            return MedicalAccount(s.get_one(Resident, resident_id).medical_balance_fen)

    def contributions(self, resident_id: int, limit: int = 3) -> list[ContributionRow]:
        q = (
            select(Contribution)
            .where(Contribution.resident_id == resident_id)
            .order_by(Contribution.period.desc())
            .limit(limit)
        )
        with self.store.session() as s:
            return [ContributionRow(c.period, c.pension_fen, c.medical_fen) for c in s.scalars(q)]

    def unemployment(self, resident_id: int, limit: int = 3) -> list[BenefitPayment]:
        q = (
            select(UnemploymentPayment)
            .where(UnemploymentPayment.resident_id == resident_id)
            .order_by(UnemploymentPayment.period.desc())
            .limit(limit)
        )
        with self.store.session() as s:
            return [BenefitPayment(p.period, p.amount_fen) for p in s.scalars(q)]

    def card(self, resident_id: int) -> CardStatus:
        with self.store.session() as s:
            r = s.get_one(Resident, resident_id)
            return CardStatus(r.card_status, r.card_number[-4:])

    def report_card_lost(self, resident_id: int, *, call_id: str) -> CardStatus:
        """Mark the card lost and write one `card_loss_confirmed` business event, atomically.

        The event's idempotency key is the call id: the same call cannot report twice.
        """
        with self.store.session() as s:
            result = s.execute(
                update(Resident)
                .where(Resident.id == resident_id, Resident.card_status != "lost")
                .values(card_status="lost")
            )
            changed = cast(CursorResult[Any], result).rowcount
            r = s.get_one(Resident, resident_id)
            if changed:
                _insert_event(
                    s,
                    BusinessEvent(
                        event_type="card_loss_confirmed",
                        subject_kind="person",
                        subject_id=r.id_number,
                        payload={
                            "card_tail": r.card_number[-4:],
                            "reported_at": utcnow().isoformat(),
                            "channel": "ivr",
                        },
                        idempotency_key=f"card_loss:{call_id}",
                        created_at=utcnow(),
                    ),
                )
            return CardStatus("lost", r.card_number[-4:], already=not changed)


def _insert_event(session: Session, event: BusinessEvent) -> None:
    values = {c.name: getattr(event, c.name) for c in BusinessEvent.__table__.columns if c.name != "id"}
    values["status"] = "pending"
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(BusinessEvent).values(**values)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]))


class AuditedReader:
    """Runs a named query through the port and audits it in the same breath."""

    def __init__(self, store: Store, port: BusinessPort, writer: GroupWriter | None = None) -> None:
        self.store = store
        self.port = port
        self.auditor = audit.Auditor(store, writer)

    def read(self, name: str, resident_id: int, *, actor: str, call_id: str) -> dict[str, object]:
        data = self._run(name, resident_id, call_id)
        action = f"{'write' if name == 'card_lost' else 'read'}:{name}"
        self.auditor.record(actor=actor, action=action, resident_id=resident_id, call_id=call_id)
        return data

    def _run(self, name: str, resident_id: int, call_id: str) -> dict[str, object]:
        port = self.port
        if name == "pension":
            p = port.pension(resident_id)
            return {"balance_fen": p.balance_fen, "months": p.months}
        if name == "medical":
            return {"balance_fen": port.medical(resident_id).balance_fen}
        if name == "contributions":
            rows = port.contributions(resident_id)
            return {"items": [vars(r) for r in rows]}
        if name == "unemployment":
            pays = port.unemployment(resident_id)
            return {"items": [vars(p) for p in pays]}
        if name == "card":
            return dict(vars(port.card(resident_id)))
        if name == "card_lost":
            return dict(vars(port.report_card_lost(resident_id, call_id=call_id)))
        raise ValueError(f"unknown query {name!r}")
