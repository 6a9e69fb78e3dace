"""Dead letters for deliver_sm: what fails to be handled every time is kept and answered.

The transport answers a deliver_sm only once it is handled (`sms.smpp`), so a failure
leaves it unanswered and the SMSC delivers it again: right for a passing fault (the store
restarting), but a text whose handling always raises would come back forever, holding a
slot of the SMSC's window for that bind. Its tries are counted in the store (several
dispatchers, and restarts, see the same deliver_sm), by a digest of what it carries: the
SMSC gives a redelivery a new sequence number, not a new content. After
`sms.inbound_max_tries` it is kept as a dead letter with the reason, logged once with
its traceback, and answered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import Table, case, func, select, update

from core.db import Store, upsert
from core.masking import mask_phone
from core.models import SmsDeadLetter, SmsMoText, utcnow
from sms.pdu import Inbound

log = logging.getLogger(__name__)
LETTERS: Table = SmsDeadLetter.__table__  # type: ignore[assignment]
RETRY_WINDOW = dt.timedelta(hours=1)
MAX_REMEMBERED = 10_000


def identity(inbound: Inbound) -> str:
    """The same for every delivery of one deliver_sm, whatever its sequence number."""
    digest = hashlib.sha256()
    for part in (inbound.source, inbound.destination, str(inbound.esm_class), str(inbound.data_coding)):
        digest.update(part.encode() + b"\0")
    digest.update(inbound.short_message + b"\0" + (inbound.receipted_id or "").encode())
    return digest.hexdigest()


class DeadLetters:
    def __init__(self, store: Store, max_tries: int) -> None:
        self.store = store
        self.max_tries = max_tries
        self._failed: set[str] = set()  # keys this process counted: cleared when one succeeds

    async def handle(self, inbound: Inbound, handler: Callable[[Inbound], Awaitable[None]]) -> None:
        """Run `handler`; return (the deliver_sm is then answered) once it succeeds or the
        deliver_sm is a dead letter; raise while it may still succeed on a redelivery."""
        try:
            await handler(inbound)
        except Exception as exc:
            key = identity(inbound)
            tries = await asyncio.to_thread(self._count, key, inbound, exc)
            if tries < self.max_tries:
                if len(self._failed) >= MAX_REMEMBERED:
                    self._failed.clear()  # a forgotten key only leaves a row that goes stale
                self._failed.add(key)
                log.warning(
                    "deliver_sm from %s failed (try %d of %d), left for the SMSC to resend: %r",
                    mask_phone(inbound.source),
                    tries,
                    self.max_tries,
                    exc,
                )
                raise
            self._failed.discard(key)
            log.error(
                "deliver_sm from %s failed %d times: kept as dead letter %s and answered",
                mask_phone(inbound.source),
                tries,
                key[:16],
                exc_info=exc,
            )
            return
        if self._failed and (key := identity(inbound)) in self._failed:  # no digest per receipt otherwise
            self._failed.discard(key)
            await asyncio.to_thread(self._forget, key)

    def _count(self, key: str, inbound: Inbound, exc: Exception) -> int:
        now = utcnow()
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        with self.store.transaction() as c:
            insert = upsert(c, SmsDeadLetter).values(
                key=key,
                source=inbound.source[:24],
                esm_class=inbound.esm_class,
                data_coding=inbound.data_coding,
                short_message=inbound.short_message,
                tries=1,
                reason=reason,
                dead=False,
                first_at=now,
                last_at=now,
            )
            # Tries count within one spell of redeliveries: a row that went quiet for
            # RETRY_WINDOW, or is a dead letter already, starts afresh (found in review:
            # the same text from the same number months later was dead at its first fault).
            fresh = LETTERS.c.dead.is_(True) | (LETTERS.c.last_at < now - RETRY_WINDOW)
            tries = c.scalar(
                insert.on_conflict_do_update(
                    index_elements=["key"],
                    set_={
                        "tries": case((fresh, 1), else_=LETTERS.c.tries + 1),
                        "first_at": case((fresh, now), else_=LETTERS.c.first_at),
                        "dead": False,
                        "reason": reason,
                        "last_at": now,
                    },
                ).returning(LETTERS.c.tries)
            )
            assert tries is not None
            if tries >= self.max_tries:
                c.execute(update(LETTERS).where(LETTERS.c.key == key).values(dead=True))
        return int(tries)

    def _forget(self, key: str) -> None:
        """A deliver_sm that failed and then went through is no dead letter."""
        with self.store.transaction() as c:
            c.execute(LETTERS.delete().where(LETTERS.c.key == key, LETTERS.c.dead.is_(False)))


def inbound_counts(store: Store, now: dt.datetime | None = None) -> dict[str, int]:
    """For `hotline sms status`: residents' texts in the last 24 h (and how many got no
    reply: capped or unregistered), and the deliver_sm kept as dead letters."""
    since = (now or utcnow()) - dt.timedelta(hours=24)
    with store.transaction() as c:
        texts = c.execute(
            select(func.count(), func.sum(case((SmsMoText.replied.is_(False), 1), else_=0))).where(
                SmsMoText.received_at >= since
            )
        ).one()
        dead = c.scalar(select(func.count()).select_from(SmsDeadLetter).where(SmsDeadLetter.dead.is_(True)))
    return {"texts_24h": int(texts[0] or 0), "unanswered_24h": int(texts[1] or 0), "dead_letters": int(dead or 0)}
