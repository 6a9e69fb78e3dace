"""A second business port, written apart from the sample adapter: a handful of residents and
employers held in memory, as a site's own adapter (SQL views, HTTP) would hold them
elsewhere. Tests run the platform against it in a store that has no sample tables at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
from core.phones import store_form

# Tables a site's store does not have: the embedded sample's.
SAMPLE_TABLES = ("resident_phones", "contributions", "unemployment_payments", "residents", "employers")


@dataclass
class MemoryResident:
    id: int
    id_number: str
    name: str
    phones: tuple[str, ...]
    pin: str
    pension_fen: int
    months: int
    medical_fen: int
    contributions: list[ContributionRow] = field(default_factory=list)
    interrupted_in: str | None = None  # a period whose contribution stopped
    card: str = "active"


@dataclass
class MemoryEmployer:
    credit_code: str
    name: str
    phone: str
    arrears: dict[str, int] = field(default_factory=dict)  # period -> owed fen


class MemoryBusinessPort:
    """Everything `core.business.BusinessPort` asks, from the dictionaries given."""

    def __init__(self, residents: Sequence[MemoryResident], employers: Sequence[MemoryEmployer]) -> None:
        self.residents = {r.id: r for r in residents}
        self.by_number = {r.id_number: r for r in residents}
        self.employers_by_code = {e.credit_code: e for e in employers}
        self.pepper = "memory-port"
        self.hashes = {r.id: pins.hash_pin(r.pin, self.pepper) for r in residents}
        self.decoy = pins.hash_pin("000000", self.pepper)

    def person(self, resident_id: int) -> Person:
        r = self.residents[resident_id]
        return Person(r.name, r.id_number, r.phones[0])

    def resident_of(self, id_number: str) -> int | None:
        r = self.by_number.get(id_number)
        return None if r is None else r.id

    def check_pin(self, id_number: str, pin: str) -> PinCheck:
        r = self.by_number.get(id_number)
        stored = self.decoy if r is None else self.hashes[r.id]
        matched = pins.verify_pin(pin, stored, self.pepper)
        return PinCheck(None if r is None else r.id, matched=matched and r is not None)

    def pension(self, resident_id: int) -> PensionAccount:
        r = self.residents[resident_id]
        return PensionAccount(r.pension_fen, r.months)

    def medical(self, resident_id: int) -> MedicalAccount:
        return MedicalAccount(self.residents[resident_id].medical_fen)

    def contributions(self, resident_id: int, limit: int = 3) -> list[ContributionRow]:
        rows = sorted(self.residents[resident_id].contributions, key=lambda c: c.period, reverse=True)
        return rows[:limit]

    def unemployment(self, resident_id: int, limit: int = 3) -> list[BenefitPayment]:
        return []

    def card(self, resident_id: int) -> CardStatus:
        return CardStatus(self.residents[resident_id].card, "0001")

    def report_card_lost(self, resident_id: int, *, call_id: str) -> CardStatus:
        r = self.residents[resident_id]
        already, r.card = r.card == "lost", "lost"
        return CardStatus("lost", "0001", already=already)

    def recipients(self, subject_kind: str, subject_ids: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for subject in subject_ids:
            if subject_kind == "person" and subject in self.by_number:
                found[subject] = sorted(self.by_number[subject].phones)
            elif subject_kind == "unit" and subject in self.employers_by_code:
                found[subject] = [self.employers_by_code[subject].phone]
        return found

    def phone_owners(self, spellings: Sequence[str]) -> PhoneOwners:
        # This adapter knows its numbers may be typed any way: it compares them normalised.
        forms = {store_form(f) for f in spellings}
        residents = tuple(sorted(r.id for r in self.residents.values() if forms & {store_form(p) for p in r.phones}))
        employer = any(store_form(e.phone) in forms for e in self.employers_by_code.values())
        return PhoneOwners(residents, employer)

    def employers_in_arrears(self, period: str) -> list[UnitArrears]:
        return [
            UnitArrears(e.credit_code, e.name, e.arrears[period])
            for e in sorted(self.employers_by_code.values(), key=lambda e: e.credit_code)
            if period in e.arrears
        ]

    def employers(self) -> list[Unit]:
        return [
            Unit(e.credit_code, e.name) for e in sorted(self.employers_by_code.values(), key=lambda e: e.credit_code)
        ]

    def residents_interrupted(self, period: str) -> list[PersonName]:
        chosen = [r for r in self.residents.values() if r.interrupted_in == period]
        return [PersonName(r.id_number, r.name) for r in sorted(chosen, key=lambda r: r.id_number)]
