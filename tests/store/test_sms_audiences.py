"""Named segments: `hotline sms batch --segment employers-in-arrears --period P` sends one
arrears notice per employer that paid for someone in the month before P and not in P,
with what that month cost; loading it again adds nothing; a wrong segment, period or
deadline is refused with a clear message."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from core.db import Store
from core.models import BusinessEvent, Contribution, Employer, Resident, SmsMessage
from core.sample_port import SampleBusinessPort
from core.settings import SmsSettings
from hotline.cli import SEGMENT_NAMES
from sms import audiences, batch
from sms.errors import BatchError
from sms.intake import intake
from tests.conftest import PEPPER
from tests.store.sms_support import sample_port

NOW = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing: no quiet hours
ROOT = Path(__file__).resolve().parents[2]


def _company(store: Store) -> None:
    """Three employers: A stopped paying for one of two people in 2026-11, B paid for
    everyone, C stopped paying for its only person; and D never had anyone."""
    employers = [
        {
            "id": i,
            "credit_code": f"91330523MA{i:08d}",
            "name": f"安吉县测试{i}号有限公司",
            "contact_phone": f"0572500000{i}",
        }
        for i in (1, 2, 3, 4)
    ]
    residents = [
        {
            "id": i,
            "id_number": f"33052319800101{i:03d}X",
            "name": f"职工{i}",
            "phone": f"1390000000{i}",
            "pin_hash": "-",
            "card_number": f"C{i:09d}",
        }
        for i in (1, 2, 3, 4)
    ]
    paid = [  # resident, employer, period, pension, medical (fen)
        (1, 1, "2026-10", 60_000, 20_000),
        (1, 1, "2026-11", 60_000, 20_000),
        (2, 1, "2026-10", 50_000, 15_000),  # not paid for in 2026-11
        (3, 2, "2026-10", 40_000, 10_000),
        (3, 2, "2026-11", 40_000, 10_000),
        (4, 3, "2026-10", 70_000, 25_000),  # not paid for in 2026-11
    ]
    with store.transaction() as c:
        c.execute(insert(Employer), employers)
        c.execute(insert(Resident), residents)
        c.execute(
            insert(Contribution),
            [
                {
                    "resident_id": r,
                    "employer_id": e,
                    "period": p,
                    "pension_fen": pf,
                    "medical_fen": mf,
                    "paid_on": dt.date(int(p[:4]), int(p[5:]), 15),
                }
                for r, e, p, pf, mf in paid
            ],
        )


def test_employers_in_arrears_get_one_notice_each_with_what_they_owe(store: Store) -> None:
    _company(store)
    loaded = batch.load_segment(
        store, SampleBusinessPort(store, PEPPER), "employers-in-arrears", "2026-11", "2026-12-15", None
    )
    assert (loaded.name, loaded.rows, loaded.new_events) == ("employers-in-arrears-2026-11", 2, 2)
    again = batch.load_segment(
        store, SampleBusinessPort(store, PEPPER), "employers-in-arrears", "2026-11", "2026-12-15", None
    )
    assert again.new_events == 0
    intake(store, sample_port(store), SmsSettings(quiet_hours={}), "Asia/Shanghai", now=NOW)
    with store.transaction() as c:
        sent = dict(c.execute(select(SmsMessage.recipient, SmsMessage.text).order_by(SmsMessage.recipient)).all())
    assert sorted(sent) == ["05725000001", "05725000003"]
    assert "安吉县测试1号有限公司" in sent["05725000001"]
    assert "欠缴650.00元" in sent["05725000001"]  # resident 2's October: 500 + 150 yuan
    assert "欠缴950.00元" in sent["05725000003"]
    assert "2026年12月15日" in sent["05725000001"]
    assert batch.progress(store, "employers-in-arrears-2026-11").total == 2


def test_residents_interrupted_and_all_employers(store: Store) -> None:
    _company(store)
    _, rows = audiences.resolve(SampleBusinessPort(store, PEPPER), "residents-interrupted", "2026-11", None)
    assert [subject for subject, _ in rows] == ["33052319800101002X", "33052319800101004X"]
    _, rows = audiences.resolve(SampleBusinessPort(store, PEPPER), "employers-all", "2026-12", "2027-01-15")
    assert len(rows) == 4 and rows[0][1]["period"] == "2026-12"


@pytest.mark.parametrize(
    ("name", "period", "deadline", "message"),
    [
        ("employers-late", "2026-11", "2026-12-15", "no segment named 'employers-late'"),
        ("employers-in-arrears", "2026-13", "2026-12-15", "--period YYYY-MM is required"),
        ("employers-in-arrears", None, "2026-12-15", "--period YYYY-MM is required"),
        ("employers-in-arrears", "2026-11", "15.12.2026", "--deadline YYYY-MM-DD is required"),
    ],
)
def test_a_wrong_segment_request_is_refused_and_adds_nothing(
    store: Store, name: str, period: str | None, deadline: str | None, message: str
) -> None:
    _company(store)
    with pytest.raises(BatchError, match=message.replace("(", r"\(")):
        batch.load_segment(store, SampleBusinessPort(store, PEPPER), name, period, deadline, None)
    with store.transaction() as c:
        assert c.execute(select(BusinessEvent.id)).first() is None


def test_the_cli_names_every_segment_and_loads_one(store: Store, tmp_path: Path) -> None:
    assert tuple(audiences.AUDIENCES) == SEGMENT_NAMES
    _company(store)
    env = {"HOTLINE_DATABASE_URL": store.url, "HOTLINE_SECURITY_PIN_PEPPER": "p", "PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "hotline", "sms", "batch", "--segment", "employers-in-arrears", "--period", "2026-11"]
    done = subprocess.run(
        [*argv, "--deadline", "2026-12-15", "--no-wait"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "batch employers-in-arrears-2026-11: 2 rows, 2 new events" in done.stdout
    neither = subprocess.run(
        [sys.executable, "-m", "hotline", "sms", "batch"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert neither.returncode == 2 and "give a CSV file or --segment NAME" in neither.stderr
    status = subprocess.run(
        [sys.executable, "-m", "hotline", "sms", "status", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)
