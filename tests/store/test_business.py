"""The business port, identification and audit on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from core import sample
from core.business import AuditedReader
from core.db import Store
from core.errors import IdentityLocked, WrongPin
from core.identify import Identifier, IdentifyLimits
from core.models import AuditEntry, BusinessEvent, PinLock, Resident
from core.sample_port import SampleBusinessPort
from tests.conftest import PEPPER, SAMPLE_RESIDENTS, load_sample


@pytest.fixture
def loaded(store: Store) -> Store:
    load_sample(store)
    return store


def identifier(store: Store) -> Identifier:
    limits = IdentifyLimits(caller_failures_per_day=100)
    return Identifier(store, SampleBusinessPort(store, PEPPER), limits, id_secret=PEPPER, writer=None)


def test_sample_listing_matches_the_store(loaded: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    _, people = sample_data
    with loaded.session() as s:
        rows = {r.id_number: r for r in s.scalars(select(Resident))}
        assert len(rows) == SAMPLE_RESIDENTS
        for p in people:
            assert rows[p.id_number].pension_balance_fen == p.pension_balance_fen
            assert p.pin not in rows[p.id_number].pin_hash  # only a salted hash is stored
    assert all(p.id_number.startswith("330523") for p in people)
    assert sum(p.id_number.endswith("X") for p in people) >= 3


def test_full_sample_has_over_a_thousand_valid_residents_and_employers() -> None:
    emps, people = sample.generate()
    assert len(people) >= 1000 and len({p.id_number for p in people}) == len(people)
    assert all(sample.credit_code_valid(e.credit_code) for e in emps)


def test_right_pin_identifies_and_is_audited(loaded: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][0]
    ident = identifier(loaded).verify(r.id_number, r.pin, actor="ivr", call_id="c1")
    assert ident.resident_id == r.id
    with loaded.session() as s:
        entry = s.scalars(select(AuditEntry)).one()
    assert (entry.actor, entry.action, entry.resident_id, entry.call_id) == ("ivr", "identify", r.id, "c1")


def test_five_wrong_pins_lock_for_a_day_and_a_right_one_resets(loaded: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    a, b = sample_data[1][0], sample_data[1][1]
    ids = identifier(loaded)
    bad = "000000" if a.pin != "000000" else "111111"
    for n in range(1, 5):
        with pytest.raises(WrongPin) as exc:
            ids.verify(a.id_number, bad, actor="ivr", call_id=None)
        assert exc.value.failures == n
    with pytest.raises(IdentityLocked) as locked:
        ids.verify(a.id_number, bad, actor="ivr", call_id=None)
    assert isinstance(locked.value.until, dt.datetime)
    with pytest.raises(IdentityLocked):
        ids.verify(a.id_number, a.pin, actor="ivr", call_id=None)
    # The lock expires after 24 h and the count starts afresh.
    with loaded.session() as s:
        s.execute(update(PinLock).values(locked_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert ids.verify(a.id_number, a.pin, actor="ivr", call_id=None).resident_id == a.id
    # A right PIN between failures resets the count.
    for _ in range(4):
        with pytest.raises(WrongPin):
            ids.verify(b.id_number, "999999" if b.pin != "999999" else "888888", actor="ivr", call_id=None)
    ids.verify(b.id_number, b.pin, actor="ivr", call_id=None)
    with pytest.raises(WrongPin) as again:
        ids.verify(b.id_number, "999999" if b.pin != "999999" else "888888", actor="ivr", call_id=None)
    assert again.value.failures == 1


def test_queries_return_the_sample_and_are_audited(loaded: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    r = next(p for p in sample_data[1] if p.unemployment)
    reader = AuditedReader(loaded, SampleBusinessPort(loaded, PEPPER))
    assert reader.read("pension", r.id, actor="ivr", call_id="c") == {
        "balance_fen": r.pension_balance_fen,
        "months": r.pension_months,
    }
    assert reader.read("medical", r.id, actor="ivr", call_id="c") == {"balance_fen": r.medical_balance_fen}
    contrib = reader.read("contributions", r.id, actor="ivr", call_id="c")["items"]
    assert [c["period"] for c in contrib] == [p for p, _, _ in r.contributions[:3]]  # type: ignore[index]
    unemp = reader.read("unemployment", r.id, actor="ivr", call_id="c")["items"]
    assert len(unemp) == 3  # type: ignore[arg-type]
    with loaded.session() as s:
        actions = sorted(s.scalars(select(AuditEntry.action)))
    assert actions == ["read:contributions", "read:medical", "read:pension", "read:unemployment"]


def test_card_loss_writes_one_event_however_often_reported(loaded: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    r = next(p for p in sample_data[1] if p.card_status == "active")
    port = SampleBusinessPort(loaded, PEPPER)
    first = port.report_card_lost(r.id, call_id="call-1")
    second = port.report_card_lost(r.id, call_id="call-2")
    assert (first.status, first.already, second.already) == ("lost", False, True)
    with loaded.session() as s:
        events = s.scalars(select(BusinessEvent)).all()
        assert s.scalar(select(func.count()).select_from(BusinessEvent)) == 1
    assert events[0].payload["card_tail"] == r.card_number[-4:] and events[0].status == "pending"


def test_reloading_the_sample_never_orphans_recorded_calls(loaded: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    from core.errors import SampleInUse
    from core.models import Call, utcnow

    with loaded.session() as s:
        s.add(Call(id="c-1", resident_id=sample_data[1][0].id, started_at=utcnow()))
    with pytest.raises(SampleInUse, match="1 recorded calls"):
        load_sample(loaded)
