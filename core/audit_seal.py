"""Seals of the audit chain's head: an HMAC-SHA256 under a key kept outside the database.

The chain (core.audit) shows a row altered or deleted in place, but whoever holds a copy of
the database can rebuild it: change a row, recompute every hash after it, and the chain
verifies again. A seal is the HMAC of the head's seq and hash under `security.audit_key`,
which the database does not hold. `hotline serve` seals the head when it moved (at start,
then hourly, with the log line that carries it), `hotline audit verify` checks every seal
(`verify_sealed`): a seal that does not verify under the key is forged, and a rebuilt chain
no longer holds a sealed row's hash, while a seal for its new head cannot be made without
the key. Before sealing, the rows after the last seal must link onto it, so a seal never
covers a tail rebuilt in between.

What seals cannot show: a thief who deletes every seal and rebuilds the chain from row 1
(verify then finds no seal, unless a serve has sealed the rebuilt head since). A head
copied from the log (`--expect-head SEQ:HASH:MAC`) still catches that: keep the log.

>>> seal_mac(b"k" * 32, 7, "ab" * 32)[:16]
'9da51a046cba29b1'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Final, cast

from sqlalchemy import Table, insert, select

from core import audit
from core.audit_log import Break, Head, Kept, Verdict, check_row, verify
from core.db import Store
from core.errors import AuditTailBroken
from core.models import AuditSeal, utcnow

log = logging.getLogger(__name__)
SEALS = cast(Table, AuditSeal.__table__)
AUDIT = audit.AUDIT
# The format's name goes into every MAC: a later format can be told apart from this one.
SEAL_FORMAT: Final = "hotline-audit-seal-v1"


def seal_mac(key: bytes, seq: int, row_hash: str) -> str:
    """The MAC of row `seq` with hash `row_hash` under `key`."""
    return hmac.new(key, f"{SEAL_FORMAT}:{seq}:{row_hash}".encode(), hashlib.sha256).hexdigest()


def holds(key: bytes, seq: int, row_hash: str, mac: str) -> bool:
    return hmac.compare_digest(seal_mac(key, seq, row_hash), mac)


@dataclass(frozen=True)
class Seal:
    seq: int
    row_hash: str
    sealed_at: dt.datetime
    mac: str

    @property
    def head(self) -> Head:
        """As the log line prints it, for `hotline audit verify --expect-head`."""
        return Head(self.seq, self.row_hash, self.mac)


def seals(store: Store) -> list[Seal]:
    with store.transaction() as c:
        rows = c.execute(select(SEALS).order_by(SEALS.c.seq)).all()
    return [Seal(int(r.seq), str(r.row_hash), r.sealed_at, str(r.mac)) for r in rows]


def seal_head(store: Store, key: bytes, now: dt.datetime | None = None) -> Seal | None:
    """Seal the chain's head if it moved since the last seal: the new seal, or the last one if
    the head did not move. An empty chain is sealed too (seq 0, the genesis hash), so that a
    new site's first rows are never "rows and no seal at all", which only deleted seals give.
    AuditTailBroken if the rows since the last seal that verifies do not link onto it
    (checked under the chain's lock: the head does not move meanwhile)."""
    with store.transaction() as c:
        audit.lock_chain(c)
        head = c.execute(select(AUDIT.c.seq).order_by(AUDIT.c.seq.desc()).limit(1)).scalar()
        head_seq = int(head or 0)
        last = next(
            (
                r
                for r in c.execute(select(SEALS).order_by(SEALS.c.seq.desc()).limit(100))
                if holds(key, int(r.seq), str(r.row_hash), str(r.mac))
            ),
            None,
        )
        if last is not None and int(last.seq) >= head_seq:
            return Seal(int(last.seq), str(last.row_hash), last.sealed_at, str(last.mac))
        last_seq, last_hash = (0, audit.GENESIS) if last is None else (int(last.seq), str(last.row_hash))
        for r in c.execute(select(AUDIT).where(AUDIT.c.seq > last_seq).order_by(AUDIT.c.seq)):
            broken = check_row(r, last_seq, last_hash)
            if broken is not None:
                raise AuditTailBroken(f"after the seal of seq {last_seq}: row seq {broken.seq} {broken.problem}")
            last_seq, last_hash = int(r.seq), str(r.row_hash)
        seal = Seal(last_seq, last_hash, now or utcnow(), seal_mac(key, last_seq, last_hash))
        c.execute(insert(SEALS).values(seq=seal.seq, row_hash=seal.row_hash, sealed_at=seal.sealed_at, mac=seal.mac))
    return seal


def verify_sealed(store: Store, key: bytes, expect: Head | None = None) -> Verdict:
    """The chain verified (core.audit_log.verify) against every seal in the store that the
    key made, then: a seal, or a kept head's MAC, that `key` did not make is forged; a chain
    with rows and no seal at all is unsealed."""
    found = seals(store)
    good = [s for s in found if holds(key, s.seq, s.row_hash, s.mac)]
    kept = [Kept(s.seq, s.row_hash, f"its seal of {s.sealed_at:%Y-%m-%d %H:%M}") for s in good]
    verdict = verify(store, expect, kept)
    last = good[-1] if good else None
    verdict = dataclasses.replace(
        verdict, seals=len(good), sealed_seq=last.seq if last else 0, sealed_at=last.sealed_at if last else None
    )
    if not verdict.ok:
        return verdict
    forged = [s for s in found if s not in good]
    if expect is not None and expect.mac and not holds(key, expect.seq, expect.hash, expect.mac):
        detail = f"the kept head {expect.seq}:{expect.hash[:12]}... has a MAC that security.audit_key did not make"
        return dataclasses.replace(verdict, broken=Break(0, expect.seq, "forged_seal", detail))
    if forged:
        s = forged[0]
        detail = f"the seal of seq {s.seq} (dated {s.sealed_at:%Y-%m-%d %H:%M}) was not made with security.audit_key"
        return dataclasses.replace(verdict, broken=Break(0, s.seq, "forged_seal", detail))
    if last is None and verdict.head_seq > 0:
        detail = (
            f"{verdict.head_seq} rows and no seal: the seals were deleted and the chain rebuilt, or no "
            "`hotline serve` with security.audit_key has run since the key was set (it seals at start)"
        )
        return dataclasses.replace(verdict, broken=Break(0, 1, "unsealed", detail))
    return verdict
