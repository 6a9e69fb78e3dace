"""Calls out: the caps on how often the platform calls, and refusals made on record.

A fraudster who got one number past the destination policy (or a resident's number that an
agent re-takes again and again) must not be dialled without limit, and a runaway dialler
must not take the hotline's lines: every call out is written to `outbound_dials` before it
is placed (`take_dial`), under one lock, and refused (`DialCapped`) when the number had
`destinations.calls_per_number_day` calls in the last 24 hours or the hotline
`destinations.calls_per_hour` in the last hour. A refused call is a row too: the log, the
health page and `hotline status` say when a cap was hit (`dial_summary`).

`refuse` is where a number the destination policy refused goes on record: a WARNING with the
number masked, and an audit entry (who tried, where, which rule), never silently.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Final, cast

from sqlalchemy import Table, func, select, update

from core.audit import record
from core.db import Store, pg_lock
from core.destinations import DestinationRefused, DestinationSettings
from core.errors import HotlineError
from core.masking import mask_phone
from core.models import OutboundDial, utcnow

log = logging.getLogger(__name__)

DIALS = cast(Table, OutboundDial.__table__)
DAY: Final = dt.timedelta(hours=24)
HOUR: Final = dt.timedelta(hours=1)
PURPOSES: Final = ("callback", "notice")
# Audit channels by where a refusal happened (core.audit.CHANNELS).
_CHANNELS: Final = {"cli": "cli", "console": "console", "ivr": "ivr", "dialler": "ivr", "sms": "sms_reply"}


class DialCapped(HotlineError):
    """A call out not placed: its number, or the hotline, reached a cap on calls out."""

    def __init__(self, message: str, cap: str) -> None:
        super().__init__(message)
        self.cap = cap  # number_day | hotline_hour


@dataclass(frozen=True)
class DialSummary:
    """Calls out in the last hour, and those the caps refused (by cap)."""

    placed_last_hour: int
    hour_cap: int
    refused_last_hour: dict[str, int]

    @property
    def capped(self) -> bool:
        return any(self.refused_last_hour.values())

    def as_json(self) -> dict[str, object]:
        return {
            "placed_last_hour": self.placed_last_hour,
            "calls_per_hour": self.hour_cap,
            "refused_last_hour": self.refused_last_hour,
            "capped": self.capped,
        }


def take_dial(
    store: Store,
    caps: DestinationSettings,
    number: str,
    purpose: str,
    ref_id: int,
    now: dt.datetime | None = None,
) -> None:
    """Put a call out to `number` (store form) on the ledger before it is placed; DialCapped
    (and the refusal on the ledger, and in the log) if a cap is reached."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    now = now or utcnow()
    with store.transaction() as c:
        # One lock for the whole ledger (the hotline-wide count needs it anyway); on SQLite
        # the insert, this transaction's first write, takes the database's write lock, so
        # the counts below see every call out committed before.
        pg_lock(c, "outbound-dials")
        row = {"number": number, "purpose": purpose, "ref_id": ref_id, "at": now}
        dial_id = c.execute(DIALS.insert().values(**row).returning(DIALS.c.id)).scalar_one()
        placed = DIALS.c.refused.is_(None)
        hotline = c.scalar(select(func.count()).where(placed, DIALS.c.at > now - HOUR)) or 0
        to_number = c.scalar(select(func.count()).where(placed, DIALS.c.number == number, DIALS.c.at > now - DAY)) or 0
        cap = None
        if to_number > caps.calls_per_number_day:
            cap = "number_day"
            detail = f"{caps.calls_per_number_day} calls in 24 hours (destinations.calls_per_number_day)"
        elif hotline > caps.calls_per_hour:
            cap = "hotline_hour"
            detail = f"the hotline placed {caps.calls_per_hour} calls in the last hour (destinations.calls_per_hour)"
        if cap is not None:
            c.execute(update(DIALS).where(DIALS.c.id == dial_id).values(refused=cap))
    if cap is not None:
        log.warning("%s %d: call out to %s not placed: %s", purpose, ref_id, mask_phone(number), detail)
        raise DialCapped(f"call out to {mask_phone(number)} not placed: {detail}", cap)


def dial_summary(store: Store, caps: DestinationSettings, now: dt.datetime | None = None) -> DialSummary:
    now = now or utcnow()
    query = select(DIALS.c.refused, func.count()).where(DIALS.c.at > now - HOUR).group_by(DIALS.c.refused)
    with store.transaction() as c:
        counts = {refused: int(n) for refused, n in c.execute(query)}
    refused = {cap: counts.get(cap, 0) for cap in ("number_day", "hotline_hour")}
    return DialSummary(counts.get(None, 0), caps.calls_per_hour, refused)


def refuse(store: Store | None, refused: DestinationRefused, *, where: str, actor: str) -> None:
    """Put a refusal by the destination policy on record: logged (masked) and, with a store,
    audited in its own transaction. `where` names the path (`orders answer`, `sms submit`),
    `actor` who or what tried (`cli:root`, `console:1001`, `ivr`, `sms`, `dialler`: the first
    word names the audit channel)."""
    log.warning("%s by %s refused: %s", where, actor, refused)
    if store is None:
        return
    channel = _CHANNELS.get(actor.split(":", 1)[0], "console")
    detail = f"{where}: {refused.rule}: {refused}"
    with store.transaction() as c:
        record(c, actor=actor[:64], action="refuse:destination", resident_id=None, detail=detail, channel=channel)
