"""The embedded business adapter: the port over the sample tables (`hotline sample`).

A real site replaces it with its own adapter; nothing but this module reads `residents`,
`resident_phones`, `employers`, `contributions` and `unemployment_payments`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Select, and_, bindparam, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from core import pins
from core.business import (
    BenefitPayment,
    CardStatus,
    ContributionRow,
    MedicalAccount,
    PensionAccount,
    Person,
    PersonName,
    PhoneOwners,
    PinCheck,
    Unit,
    UnitArrears,
)
from core.db import Store, among_param, chunks
from core.models import BusinessEvent, Contribution, Employer, Resident, ResidentPhone, UnemploymentPayment, utcnow

# The reads every identified call makes, built once (no statement building per call).
_PIN_HASH = select(Resident.id, Resident.pin_hash).where(Resident.id_number == bindparam("id_number"))
_PENSION = select(Resident.pension_balance_fen, Resident.pension_months).where(Resident.id == bindparam("rid"))


class SampleBusinessPort:
    """The embedded adapter over the sample tables (`hotline sample`)."""

    def __init__(self, store: Store, pin_pepper: str) -> None:
        self.store = store
        self.pepper = pin_pepper
        self.decoy = pins.hash_pin(secrets.token_hex(8), pin_pepper)  # checked for ID numbers nobody holds

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

    def resident_of(self, id_number: str) -> int | None:
        with self.store.transaction() as c:
            row = c.execute(_PIN_HASH, {"id_number": id_number}).first()
        return None if row is None else int(row.id)

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

    # for the SMS gateway ----------------------------------------------------------------
    def recipients(self, subject_kind: str, subject_ids: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, set[str]] = {}
        with self.store.transaction() as c:
            queries = _recipient_queries(c.dialect.name, subject_kind)
            for ids in chunks(list(subject_ids)):
                for query in queries:
                    for subject, number in c.execute(query, {"ids": list(ids)}):
                        if number:
                            found.setdefault(subject, set()).add(number)
        return {subject: sorted(numbers) for subject, numbers in found.items()}

    def phone_owners(self, spellings: Sequence[str]) -> PhoneOwners:
        forms = list(spellings)
        with self.store.transaction() as c:
            owners = _owners(c, forms, lambda column: column)
            if not owners.registered:
                # Numbers typed by a clerk (`138-1234-5678`, `0572 512 0001`) are sent to
                # (intake normalises them), so they must be found when they text back too.
                owners = _owners(c, forms, _digits_only)
        return owners

    def employers_in_arrears(self, period: str) -> list[UnitArrears]:
        owed = func.sum(Contribution.pension_fen + Contribution.medical_fen)
        query = (
            select(Employer.credit_code, Employer.name, owed)
            .join(Contribution, Contribution.employer_id == Employer.id)
            .where(_lapsed(period))
            .group_by(Employer.credit_code, Employer.name)
            .order_by(Employer.credit_code)
        )
        with self.store.transaction() as c:
            return [UnitArrears(code, name, int(amount)) for code, name, amount in c.execute(query)]

    def employers(self) -> list[Unit]:
        with self.store.transaction() as c:
            rows = c.execute(select(Employer.credit_code, Employer.name).order_by(Employer.credit_code))
            return [Unit(code, name) for code, name in rows]

    def residents_interrupted(self, period: str) -> list[PersonName]:
        query = (
            select(Resident.id_number, Resident.name)
            .join(Contribution, Contribution.resident_id == Resident.id)
            .where(_lapsed(period))
            .group_by(Resident.id_number, Resident.name)
            .order_by(Resident.id_number)
        )
        with self.store.transaction() as c:
            return [PersonName(id_number, name) for id_number, name in c.execute(query)]


def previous_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def _lapsed(period: str) -> Any:
    """Contributions of the month before `period` with none for `period` for the same
    person and employer: who stopped being paid for. (What the sample knows of the business
    system is its contributions table, one row per resident, month and paying employer, so
    "in arrears" is read from it the way a collector would.)"""
    now = aliased(Contribution)
    before = Contribution
    return and_(
        before.period == previous_period(period),
        before.employer_id.is_not(None),
        ~exists().where(
            now.resident_id == before.resident_id, now.employer_id == before.employer_id, now.period == period
        ),
    )


@cache
def _recipient_queries(dialect: str, subject_kind: str) -> tuple[Select[str, str], ...]:
    """Built once per dialect and kind; the subjects come as parameter `ids`."""
    if subject_kind == "person":
        people = among_param(dialect, Resident.id_number, "ids")
        return (
            select(Resident.id_number, Resident.phone).where(people),
            select(Resident.id_number, ResidentPhone.phone)
            .join(ResidentPhone, ResidentPhone.resident_id == Resident.id)
            .where(people),
        )
    if subject_kind == "unit":
        units = among_param(dialect, Employer.credit_code, "ids")
        return (select(Employer.credit_code, Employer.contact_phone).where(units),)
    return ()


def _insert_event(session: Session, event: BusinessEvent) -> None:
    values = {c.name: getattr(event, c.name) for c in BusinessEvent.__table__.columns if c.name != "id"}
    values["status"] = "pending"
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(BusinessEvent).values(**values)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]))


def _digits_only(column: Any) -> Any:
    return func.replace(func.replace(func.replace(func.replace(column, "-", ""), " ", ""), "(", ""), ")", "")


def _owners(c: Connection, forms: list[str], norm: Callable[[Any], Any]) -> PhoneOwners:
    residents = set(c.scalars(select(Resident.id).where(norm(Resident.phone).in_(forms))))
    residents |= set(c.scalars(select(ResidentPhone.resident_id).where(norm(ResidentPhone.phone).in_(forms))))
    employer = c.scalar(select(Employer.id).where(norm(Employer.contact_phone).in_(forms)).limit(1))
    return PhoneOwners(tuple(sorted(residents)), employer is not None)
