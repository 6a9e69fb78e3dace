"""The nuisance list as the IVR meets it: at a call's start (the FastAGI session) and at
its queue entry (ivr/queue_entry.py), so no path of a listed number reaches an agent.

The look-up runs in a thread; a store out of reach answers "not blocked" (logged): the IVR
keeps serving callers while the database is down, and the queue entry asks again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from core import blocked_callers
from core.db import Store
from core.errors import StoreUnavailable
from core.masking import mask_phone
from core.models import utcnow
from ivr.blocked_flow import TREATMENTS

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]


class CallerBlocks:
    def __init__(self, store: Store, treatment: str, clock: Clock = utcnow, executor: Executor | None = None) -> None:
        if treatment not in TREATMENTS:
            raise ValueError(f"ivr.blocked_treatment must be one of {', '.join(TREATMENTS)}")
        self.store = store
        self.treatment = treatment
        self.clock = clock
        self.executor = executor

    async def meet(self, caller: str | None, call_id: str, stage: str) -> str:
        """The treatment for this call if its caller id is blocked now (the call recorded
        as blocked), else ""."""
        if blocked_callers.number_key(caller) is None:
            return ""
        now = self.clock()
        loop = asyncio.get_running_loop()
        try:
            block = await loop.run_in_executor(
                self.executor,
                lambda: blocked_callers.meet_call(
                    self.store, caller, call_id, stage=stage, treatment=self.treatment, now=now
                ),
            )
        except StoreUnavailable as exc:
            log.error("call %s: nuisance list not read (store unavailable: %s); not blocked here", call_id, exc)
            return ""
        if block is None:
            return ""
        log.info(
            "call %s: %s is on the nuisance list until %s: %s (%s)",
            call_id,
            mask_phone(block.number),
            block.until.isoformat(timespec="minutes"),
            self.treatment,
            stage,
        )
        return self.treatment
