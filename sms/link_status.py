"""Each SMPP link's state, from the gateway's process to the commands that ask in others.

The transport keeps its link's state (`sms.bind_health`); `publish` writes it to the store
(`sms_links`) on every change and every REFRESH_S while the gateway runs, and to the
process's `Health` for `/healthz` and `hotline status` (as `smpp`: no host name there). `hotline sms status` reads the
rows: one not refreshed for STALE_S belongs to a gateway that is gone, and one not refreshed
for a day is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, select

from core.db import Store, upsert
from core.errors import StoreUnavailable
from core.health import Health
from core.models import SmsLink
from sms.bind_health import LinkState

log = logging.getLogger(__name__)
LINKS: Table = SmsLink.__table__  # type: ignore[assignment]
REFRESH_S = 10.0
KEEP = dt.timedelta(days=1)  # a gateway gone this long is forgotten (each start is a new row)
HEALTH_NAME = "smpp"
STALE_S = 60.0


@dataclass(frozen=True)
class LinkReport:
    state: LinkState
    address: str  # host:port
    detail: str | None
    since: dt.datetime
    sick_binds: int

    def as_health(self) -> dict[str, Any]:
        """What /healthz shows: the state only (no address, no text)."""
        return {
            "state": self.state.value,
            "since": self.since.isoformat(timespec="seconds"),
            "sick_binds": self.sick_binds,
        }


def record(store: Store, name: str, report: LinkReport, now: dt.datetime) -> None:
    values = {
        "state": report.state.value,
        "address": report.address,
        "detail": report.detail,
        "since": report.since,
        "sick_binds": report.sick_binds,
        "updated_at": now,
    }
    with store.transaction() as c:
        insert = upsert(c, LINKS).values(name=name, **values)
        c.execute(insert.on_conflict_do_update(index_elements=["name"], set_=values))
        c.execute(delete(LINKS).where(LINKS.c.updated_at < now - KEEP))


def links(store: Store, now: dt.datetime) -> list[dict[str, Any]]:
    """Every link recorded, newest first; `current` False for one whose gateway is gone."""
    with store.transaction() as c:
        rows = c.execute(select(LINKS).order_by(LINKS.c.updated_at.desc())).all()
    stale = now - dt.timedelta(seconds=STALE_S)
    return [
        {
            "name": r.name,
            "state": r.state,
            "address": r.address,
            "detail": r.detail,
            "since": r.since.isoformat(timespec="seconds"),
            "sick_binds": r.sick_binds,
            "updated_at": r.updated_at.isoformat(timespec="seconds"),
            "current": r.updated_at >= stale and r.state != LinkState.STOPPED,
        }
        for r in rows
    ]


def as_text(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rows:
        # A CMPP transport's address says so ("cmpp 3.0 host:port"); its drops are dead links.
        cmpp = r["address"].startswith("cmpp ")
        line = f"{'cmpp' if cmpp else 'smpp'} link {r['name']}: {r['state']} since {r['since']} ({r['address']}"
        dropped = "links closed and connected again" if cmpp else "sick binds dropped"
        line += f", {r['sick_binds']} {dropped})" if r["sick_binds"] else ")"
        if r["detail"]:
            line += f": {r['detail']}"
        if not r["current"] and r["state"] != LinkState.STOPPED:
            line += f" [not refreshed since {r['updated_at']}: its gateway is gone]"
        lines.append(line)
    return lines


async def publish(
    store: Store,
    name: str,
    report: Callable[[], LinkReport],
    changed: asyncio.Event,
    stop: asyncio.Event,
    health: Health | None = None,
) -> None:
    """Write the link's state on each change (and every REFRESH_S) until `stop` (the last
    state, `stopped`, is the gateway's to write once its transport has stopped)."""
    while not stop.is_set():
        changed.clear()
        now = report()
        if health is not None:
            health.link(HEALTH_NAME, now.as_health())
        try:
            await asyncio.to_thread(record, store, name, now, dt.datetime.now(dt.UTC))
        except StoreUnavailable as exc:
            log.warning("SMPP link %s: state %s not recorded (%s)", name, now.state, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_either(changed, stop), REFRESH_S)


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    waits = {asyncio.create_task(a.wait()), asyncio.create_task(b.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
