"""The SMS path against a second business port, in a store that has no sample tables at all.

Seen before: intake, MO replies and the named segments read `residents`, `resident_phones`,
`employers` and `contributions` directly, so a site with its own adapter (and none of those
tables) could not send a single message. Here those tables are dropped after migrating, and
everything the gateway does goes through `tests.memory_port.MemoryBusinessPort`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, text

from core.business import AuditedReader, ContributionRow
from core.db import Store
from core.models import AuditEntry, SmsMessage
from core.settings import SmsSettings
from sms import batch
from sms.intake import emit
from sms.mo import MoHandler
from tests.memory_port import SAMPLE_TABLES, MemoryBusinessPort, MemoryEmployer, MemoryResident
from tests.store.sms_support import dispatching, until_final

ALICE = MemoryResident(
    id=501,
    id_number="110105194912310021",
    name="周玉兰",
    phones=("13900000001", "+86 139-0000-0011"),  # the second as a clerk typed it
    pin="246810",
    pension_fen=4_321_000,
    months=180,
    medical_fen=123_450,
    contributions=[ContributionRow("2026-10", 88_800, 22_200)],
)
BOB = MemoryResident(
    id=502,
    id_number="11010519800101001X",
    name="王建国",
    phones=("13900000002",),
    pin="135790",
    pension_fen=10_000,
    months=12,
    medical_fen=0,
    interrupted_in="2026-11",
)
FIRM = MemoryEmployer("91330523MA2B3C4D5E", "安吉竹韵家具有限公司", "0572-5120001", arrears={"2026-11": 345_600})


@pytest.fixture
def bare_store(store: Store) -> Store:
    """A migrated store without the embedded sample's tables: a site with its own adapter."""
    cascade = " CASCADE" if store.engine.dialect.name == "postgresql" else ""
    with store.engine.begin() as c:
        for table in SAMPLE_TABLES:
            c.execute(text(f"DROP TABLE {table}{cascade}"))
    return store


async def test_the_whole_sms_path_runs_on_another_port_with_no_sample_tables(bare_store: Store, tmp_path: Path) -> None:
    store = bare_store
    port = MemoryBusinessPort([ALICE, BOB], [FIRM])
    payload = {"name": ALICE.name, "period": "2026-11", "amount": 347_125}
    emit(store, "pension_credited", "person", ALICE.id_number, payload, "pension:alice")
    batch.load_segment(store, port, "employers-in-arrears", "2026-11", "2026-12-15", None)
    batch.load_segment(store, port, "residents-interrupted", "2026-11", None, None)
    mo = MoHandler(store, AuditedReader(store, port), settings=SmsSettings())
    async with dispatching(store, tmp_path, {}, port=port) as (_sim, dispatcher, _t):
        # A resident texts YE from the number the clerk typed with +86 and dashes.
        reply = await asyncio.to_thread(mo.answer, "8613900000011", "YE")
        dispatcher.wake.set()
        # Alice's reminder to both her phones, the firm's arrears notice, Bob's
        # interruption notice, and the reply to the YE.
        messages = await until_final(store, 5)
    assert reply is not None and "43,210.00元" in reply and "180个月" in reply
    assert {m.status for m in messages} == {"delivered"}
    by_type = sorted((m.event_type, m.recipient) for m in messages)
    assert by_type == [
        ("arrears_notice", "05725120001"),
        ("contribution_interrupted", "13900000002"),
        ("mo_reply:ye", "13900000011"),
        ("pension_credited", "13900000001"),
        ("pension_credited", "13900000011"),
    ]
    arrears = next(m for m in messages if m.event_type == "arrears_notice")
    assert "3,456.00" in arrears.text or "3456.00" in arrears.text
    with store.session() as s:
        audited = s.scalars(select(AuditEntry.action).where(AuditEntry.resident_id == ALICE.id)).all()
        assert s.scalar(select(SmsMessage.id).where(SmsMessage.status != "delivered")) is None
    assert sorted(audited) == ["read:medical", "read:pension"]
