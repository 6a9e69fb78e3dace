"""Database errors never carry the bound values (ID numbers, phone numbers) into logs."""

from __future__ import annotations

import datetime as dt
import logging
import traceback

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DataError, IntegrityError

from core.db import Store
from core.models import Call, Resident, VoiceMessage
from tests.conftest import postgres_only

ID_NUMBER = "330523199411187594"
PHONE = "13812345678"


def _resident(phone: str = PHONE) -> dict[str, object]:
    return {"id_number": ID_NUMBER, "name": "张三", "phone": phone, "pin_hash": "x", "card_number": "C1"}


def _everything_printed(exc: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    """What a log line with the exception and its traceback (the driver's error chained
    beneath) would show."""
    logging.getLogger("test").error("store failed: %s", exc, exc_info=exc)
    return "".join(traceback.format_exception(exc)) + caplog.text


def test_a_duplicate_id_number_is_not_in_the_error(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    with store.transaction() as c:
        c.execute(insert(Resident).values(_resident()))
    with pytest.raises(IntegrityError) as caught, store.transaction() as c:
        c.execute(insert(Resident).values(_resident()))
    printed = _everything_printed(caught.value, caplog)
    assert "residents" in printed  # still says what went wrong
    assert ID_NUMBER not in printed and PHONE not in printed


def test_a_failing_row_is_not_in_the_error(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A NOT NULL violation: PostgreSQL's DETAIL would list the whole row."""
    with pytest.raises(IntegrityError) as caught, store.transaction() as c:
        c.execute(insert(Resident).values({**_resident(), "name": None}))
    printed = _everything_printed(caught.value, caplog)
    assert ID_NUMBER not in printed and PHONE not in printed


# SQLite does not check lengths or types.
@postgres_only
def test_a_phone_too_long_or_not_a_number_is_not_in_the_error(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(DataError) as caught, store.transaction() as c:
        c.execute(insert(Call).values(id="c1", caller_number=PHONE * 5))
    printed = _everything_printed(caught.value, caplog)
    assert "too long" in printed and PHONE not in printed
    with pytest.raises(DataError) as caught, store.transaction() as c:
        c.execute(text("SELECT CAST(:phone AS integer)"), {"phone": PHONE + "x"})
    printed = _everything_printed(caught.value, caplog)
    assert "type integer" in printed and PHONE not in printed


def test_an_aware_time_in_another_zone_comes_back_the_same_instant(store: Store) -> None:
    beijing = dt.timezone(dt.timedelta(hours=8))
    left = dt.datetime(2026, 4, 3, 23, 30, tzinfo=beijing)  # Friday night in Beijing, 15:30 UTC
    with store.session() as s:
        s.add(VoiceMessage(call_id="tz-1", recording="messages/x.wav", duration_s=1, created_at=left))
    with store.session() as s:
        stored = s.scalars(select(VoiceMessage.created_at).where(VoiceMessage.call_id == "tz-1")).one()
        found = s.scalar(select(func.count()).select_from(VoiceMessage).where(VoiceMessage.created_at < left))
    assert stored == left and stored.utcoffset() == dt.timedelta(0)
    assert found == 0  # a bound comparison means the same instant too
