"""The sample dataset: synthetic residents and employers of Anji County (330523).

Deterministic from a seed, so `hotline sample residents` can list the PINs and balances
that `hotline sample load` stored (as salted hashes, for PINs) without reading them back.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select

from core import idnumber, pins
from core.db import Store
from core.errors import SampleInUse
from core.models import Call, Contribution, Employer, Resident, UnemploymentPayment

ANJI = "330523"
DEFAULT_SEED = 12333
DEFAULT_RESIDENTS = 1200
DEFAULT_EMPLOYERS = 60
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文辉志海燕春梅鹏飞雪晨阳"
COMPANIES = ("竹业", "白茶", "椅业", "旅游", "转椅", "竹木", "物流", "机械", "纺织", "建材", "食品", "电子")


def credit_code(rng: random.Random) -> str:
    """A unified social credit code (GB 32100-2015) for an Anji enterprise, check char included."""
    org8 = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY"[:10]) for _ in range(8))
    c9 = 11 - sum(int(ch) * w for ch, w in zip(org8, ORG_WEIGHTS, strict=True)) % 11
    org = org8 + ("X" if c9 == 10 else "0" if c9 == 11 else str(c9))
    body = "91" + ANJI + org
    total = sum(USCC_CHARS.index(ch) * w for ch, w in zip(body, USCC_WEIGHTS, strict=True))
    return body + USCC_CHARS[(31 - total % 31) % 31]


def credit_code_valid(code: str) -> bool:
    if len(code) != 18 or any(ch not in USCC_CHARS for ch in code):
        return False
    total = sum(USCC_CHARS.index(ch) * w for ch, w in zip(code[:17], USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31] == code[17]


@dataclass(frozen=True)
class SampleEmployer:
    id: int
    credit_code: str
    name: str
    contact_phone: str


@dataclass(frozen=True)
class SampleResident:
    id: int
    id_number: str
    name: str
    phone: str
    pin: str
    employer_id: int | None
    pension_balance_fen: int
    pension_months: int
    medical_balance_fen: int
    card_number: str
    card_status: str
    contributions: list[tuple[str, int, int]] = field(default_factory=list)  # period, pension, medical
    unemployment: list[tuple[str, int]] = field(default_factory=list)


def _id_number(rng: random.Random, want_x: bool) -> str:
    birth = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 55))
    for _ in range(1000):
        first17 = f"{ANJI}{birth:%Y%m%d}{rng.randrange(0, 1000):03d}"
        full = idnumber.complete(first17)
        if full.endswith("X") == want_x:
            return full
    raise RuntimeError("no ID number found")  # unreachable: 1 in 11 end in X


def _months_back(n: int, today: dt.date) -> list[str]:
    y, m = today.year, today.month
    out = []
    for _ in range(n):
        m -= 1
        if m == 0:
            y, m = y - 1, 12
        out.append(f"{y:04d}-{m:02d}")
    return out


def generate(
    seed: int = DEFAULT_SEED,
    residents: int = DEFAULT_RESIDENTS,
    employers: int = DEFAULT_EMPLOYERS,
    today: dt.date = dt.date(2026, 11, 1),
) -> tuple[list[SampleEmployer], list[SampleResident]]:
    rng = random.Random(seed)
    emps = [
        SampleEmployer(
            i + 1,
            credit_code(rng),
            f"安吉县{rng.choice(COMPANIES)}有限公司{i + 1}号",
            f"0572{rng.randrange(5000000, 5999999)}",
        )
        for i in range(employers)
    ]
    people: list[SampleResident] = []
    seen: set[str] = set()
    while len(people) < residents:
        idn = _id_number(rng, want_x=len(people) % 10 == 3)
        if idn in seen:
            continue
        seen.add(idn)
        months = rng.randrange(0, 420)
        monthly_p, monthly_m = rng.randrange(30000, 90000), rng.randrange(8000, 30000)
        recent = _months_back(min(months, 6), today)
        contribs = [(p, monthly_p, monthly_m) for p in recent]
        unemployed = rng.random() < 0.08
        people.append(
            SampleResident(
                id=len(people) + 1,
                id_number=idn,
                name=rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randrange(1, 3))),
                phone=f"1{rng.choice('3578')}{rng.randrange(0, 10)}{rng.randrange(10**7, 10**8)}",
                pin=f"{rng.randrange(0, 10**6):06d}",
                employer_id=None if unemployed else rng.randrange(1, employers + 1),
                pension_balance_fen=months * monthly_p * 8 // 100 + rng.randrange(0, 100) * (rng.random() < 0.5),
                pension_months=months,
                medical_balance_fen=rng.randrange(0, 2_000_000),
                card_number=f"A{rng.randrange(10**7, 10**8)}",
                card_status=rng.choices(("active", "pending", "lost"), (90, 6, 4))[0],
                contributions=contribs,
                unemployment=[(p, 182000) for p in _months_back(3, today)] if unemployed else [],
            )
        )
    return emps, people


def iter_pin_hashes(people: list[SampleResident], pepper: str) -> Iterator[str]:
    # hashlib.scrypt releases the GIL, so two threads halve the load time on 2 cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield from pool.map(lambda r: pins.hash_pin(r.pin, pepper), people)


def load(store: Store, pepper: str, seed: int = DEFAULT_SEED, residents: int = DEFAULT_RESIDENTS) -> int:
    """Replace the sample tables with a fresh dataset; returns the number of residents.

    Refuses (SampleInUse) when recorded calls point at sample residents: replacing them
    would orphan those calls' records.
    """
    with store.session() as s:
        linked = s.scalar(select(func.count()).select_from(Call).where(Call.resident_id.is_not(None))) or 0
    if linked:
        raise SampleInUse(f"{linked} recorded calls belong to sample residents; load the sample into a new database")
    emps, people = generate(seed, residents)
    hashes = list(iter_pin_hashes(people, pepper))
    with store.session() as s:
        for table in (Contribution, UnemploymentPayment, Resident, Employer):
            s.execute(delete(table))
        s.execute(insert(Employer), [vars(e) for e in emps])
        s.execute(
            insert(Resident),
            [
                {k: v for k, v in vars(r).items() if k not in ("pin", "contributions", "unemployment")}
                | {"pin_hash": h}
                for r, h in zip(people, hashes, strict=True)
            ],
        )
        rows = [
            {
                "resident_id": r.id,
                "employer_id": r.employer_id,
                "period": p,
                "pension_fen": pf,
                "medical_fen": mf,
                "paid_on": dt.date(int(p[:4]), int(p[5:]), 15),
            }
            for r in people
            for p, pf, mf in r.contributions
        ]
        if rows:
            s.execute(insert(Contribution), rows)
        pays = [
            {"resident_id": r.id, "period": p, "amount_fen": a, "paid_on": dt.date(int(p[:4]), int(p[5:]), 10)}
            for r in people
            for p, a in r.unemployment
        ]
        if pays:
            s.execute(insert(UnemploymentPayment), pays)
    return len(people)


def loaded_count(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(Resident)) or 0
