"""The business port: the only door to resident data held by the social-insurance system.

Read-only, except for explicit transactions (reporting a card lost). The embedded adapter
(`core.sample_port`) reads the sample tables in our own database; a real site plugs in its
own adapter (SQL views or HTTP) that satisfies `BusinessPort`, and nothing else in the
platform reads those tables. Every successful read is audited by `core.identify.Identifier`
and `AuditedReader`, not by the adapter, so no adapter can forget it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from core import audit, stage_times
from core.db import Store
from core.writer import GroupWriter


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
class Unit:
    credit_code: str  # unified social credit code
    name: str


@dataclass(frozen=True)
class UnitArrears:
    credit_code: str
    name: str
    owed_fen: int  # what the lapsed month cost: pension plus medical


@dataclass(frozen=True)
class PersonName:
    id_number: str
    name: str


@dataclass(frozen=True)
class PhoneOwners:
    residents: tuple[int, ...]
    employer: bool  # an employer's contact phone

    @property
    def registered(self) -> bool:
        return bool(self.residents) or self.employer


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

    def person(self, resident_id: int) -> Person: ...
    def check_pin(self, id_number: str, pin: str) -> PinCheck:
        """Whether the PIN is the one of the resident holding `id_number`. It must take the
        same time whether or not anyone holds that ID number (the caller is told the same
        either way, and must not learn it from the delay either)."""
        ...

    def resident_of(self, id_number: str) -> int | None:
        """Who holds `id_number` (None: nobody), for staff who look a resident up (an
        auditor) and for attaching what a caller left (a voice message) to the resident it
        names; it hands out no data, and the IVR says the same whether or not anyone holds
        the number. Callers identify with `check_pin` instead. The caller audits the look-up."""
        ...

    def pension(self, resident_id: int) -> PensionAccount: ...
    def medical(self, resident_id: int) -> MedicalAccount: ...
    def contributions(self, resident_id: int, limit: int = 3) -> list[ContributionRow]: ...
    def unemployment(self, resident_id: int, limit: int = 3) -> list[BenefitPayment]: ...
    def card(self, resident_id: int) -> CardStatus: ...
    def report_card_lost(self, resident_id: int, *, call_id: str) -> CardStatus: ...

    # What the SMS gateway needs: whom to text, who is texting, and who a batch is for.
    def recipients(self, subject_kind: str, subject_ids: Sequence[str]) -> dict[str, list[str]]:
        """Phone numbers by subject: a person's registered phones (by ID number), an
        employer's contact phone (by unified social credit code); subjects without any are
        left out. Called with up to a few thousand subjects at once."""
        ...

    def phone_owners(self, spellings: Sequence[str]) -> PhoneOwners:
        """Who registered a phone number, given every form the business system may hold it
        in (`core.phones.spellings`): residents (several may share one) and employers."""
        ...

    def employers_in_arrears(self, period: str) -> list[UnitArrears]: ...
    def employers(self) -> list[Unit]: ...
    def residents_interrupted(self, period: str) -> list[PersonName]: ...


class AuditedReader:
    """Runs a named query through the port and audits it in the same breath."""

    def __init__(self, store: Store, port: BusinessPort, writer: GroupWriter | None = None) -> None:
        self.store = store
        self.port = port
        self.auditor = audit.Auditor(store, writer)

    def read(self, name: str, resident_id: int, *, actor: str, call_id: str) -> dict[str, object]:
        with stage_times.timed("read.data"):
            data = self._run(name, resident_id, call_id)
        action = f"{'write' if name == 'card_lost' else 'read'}:{name}"
        with stage_times.timed("read.audit"):
            self.auditor.record(actor=actor, action=action, resident_id=resident_id, call_id=call_id)
        return data

    async def read_async(
        self, name: str, resident_id: int, *, actor: str, call_id: str, executor: Executor | None = None
    ) -> dict[str, object]:
        """`read` from the event loop: the read in a thread of `executor`, the audit entry
        awaited (through the group writer) with no thread held."""
        loop = asyncio.get_running_loop()
        began = time.perf_counter()
        data = await loop.run_in_executor(executor, self._run, name, resident_id, call_id)
        read = time.perf_counter()
        stage_times.add("read.data", read - began)
        action = f"{'write' if name == 'card_lost' else 'read'}:{name}"
        await self.auditor.record_async(actor=actor, action=action, resident_id=resident_id, call_id=call_id)
        stage_times.add("read.audit", time.perf_counter() - read)
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
