"""Identification: an ID number and a PIN, checked through the business port, within limits.

Three counts stand between a caller and other people's data, all kept in the store so that
every FastAGI worker (and every webhook) sees the same numbers:

- per ID number, consecutive failures: `max_failures` lock it for `lockout`;
- per call, the different ID numbers tried: at most `ids_per_call`;
- per calling number, failed identifications in a local day: at most `caller_failures_per_day`.

An attempt is counted *before* its PIN is checked, in one write transaction committed
before the check, and given back when the PIN is right: two calls trying one ID number at
once cannot get more tries than allowed between them (counting after the check let both
read the same count). With the process's group writer the count rides in the writer's next
commit, in a savepoint of its own (`GroupWriter.call_blocking`): the same atomic statements
and the same commit before the check, without a second writer per call contending for
SQLite's write lock (issue 23: that contention, not the counting, was the caller's wait).

An ID number that nobody holds fails exactly as a wrong PIN does: same answer, same count,
same audit entry, and the port spends the same time on it (`BusinessPort.check_pin`), so the
IVR never tells a caller which ID numbers are registered.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import hmac
import logging
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Integer,
    String,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from core import audit, metrics, stage_times
from core.business import BusinessPort, PinCheck
from core.db import Store
from core.errors import IdentifyRefused, IdentityLocked, WrongPin
from core.masking import mask_id, mask_phone
from core.models import CallerFailures, CallIdentity, PinLock, UtcDateTime, utcnow
from core.phones import BadPhoneNumber, store_form
from core.writer import GroupWriter, Op

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"  # callers without a number share one budget
CALLER_KEY_LEN = 32
# A calling number's budget holds its attempts in flight too (taken before the check, given
# back a few milliseconds later when the PIN is right): callers behind one switchboard who
# identify at the same moment found it full of attempts about to be given back, and were
# refused (issue 23: 150 of 500 such calls under load). A refused attempt is counted again
# after each of these pauses; only a budget still full then refuses the caller. Nothing is
# counted by a refusal, so the bound on failures per day is the same. The pauses add up to
# 3.15 s: with both cores saturated an attempt stays in flight up to 1.4 s (PostgreSQL, 500
# calls from one number), and 0.75 s of patience still refused 23 of those 500 callers; a
# number whose budget is truly spent waits the 3 s before its refusal, which slows an
# attacker down and costs nobody else much: a waiting attempt holds at most one query
# thread, and once every thread is taken identification runs on the event loop, where
# the waits are timers (`_count_patiently_async`).
BUDGET_RETRY_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)

_LOCKED_UNTIL = select(PinLock.locked_until).where(PinLock.id_number == bindparam("id_number"))


@dataclass(frozen=True)
class IdentifyLimits:
    max_failures: int = 5
    lockout: dt.timedelta = dt.timedelta(hours=24)
    ids_per_call: int = 2
    caller_failures_per_day: int = 10
    timezone: str = "Asia/Shanghai"  # where a day begins for the caller budget


@dataclass(frozen=True)
class Identity:
    resident_id: int


def caller_key(caller: str | None) -> str:
    """The budget's key for a calling number: its stored form (`core.phones`), so that the
    forms carriers send (`+86138…`, `86138…`, `0086138…`) share one budget; a caller id that
    is no phone number keys by its digits, and none at all is `anonymous`."""
    try:
        return store_form(caller or "")[-CALLER_KEY_LEN:]
    except BadPhoneNumber:
        digits = "".join(ch for ch in caller or "" if ch.isascii() and ch.isdigit())
        return digits[-CALLER_KEY_LEN:] or ANONYMOUS


class Identifier:
    """Verifies ID number + PIN through the port. Raises WrongPin (also for an ID number
    nobody holds), IdentityLocked or IdentifyRefused."""

    def __init__(
        self,
        store: Store,
        port: BusinessPort,
        limits: IdentifyLimits,
        *,
        id_secret: str,
        writer: GroupWriter | None,
        budget_retry_s: Sequence[float] = BUDGET_RETRY_S,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not id_secret:
            raise ValueError("an Identifier needs a secret to key the ID numbers it counts")
        self.store = store
        self.port = port
        self.limits = limits
        self.zone = zoneinfo.ZoneInfo(limits.timezone)
        self.secret = id_secret.encode()
        self.writer = writer
        self.auditor = audit.Auditor(store, writer)
        self.budget_retry_s = tuple(budget_retry_s)
        # PostgreSQL counts in one statement that refuses as a whole (`_count_in_one`).
        self._savepoint = store.engine.dialect.name != "postgresql"
        self.sleep = sleep
        self.async_sleep = async_sleep

    def verify(
        self, id_number: str, pin: str, *, actor: str, call_id: str | None, caller: str | None = None
    ) -> Identity:
        """From a worker thread: the count, the PIN check and the audit entry waited for here."""
        now = utcnow()
        budget = self._budget(caller, now)
        try:
            with stage_times.timed("identify.count"):
                failures = self._count_patiently(id_number, call_id, budget, now)
        except IdentityLocked:
            metrics.identification("locked")
            raise
        except IdentifyRefused as exc:
            self._log_refused(exc, call_id, budget)
            self.auditor.record(actor=actor, action=f"identify_refused:{exc.reason}", resident_id=None, call_id=call_id)
            raise
        with stage_times.timed("identify.check_pin"):
            check = self.port.check_pin(id_number, pin)
        return self._conclude(check, id_number, budget, now, failures, actor=actor, call_id=call_id)

    async def verify_async(
        self,
        id_number: str,
        pin: str,
        *,
        actor: str,
        call_id: str | None,
        caller: str | None = None,
        executor: Executor | None = None,
    ) -> Identity:
        """`verify` from the event loop, with the group writer: the count and a refusal's
        audit entry are awaited, and only the PIN check (a read and scrypt) takes a thread of
        `executor`. Waited for in threads, a burst's identifications held every thread while
        they waited for the writer, and the callers behind them queued for a thread (issue
        23: 1.9 s of a 2.0 s wait after the PIN). The same statements, in the same order."""
        if self.writer is None:
            raise ValueError("verify_async needs the group writer")
        now = utcnow()
        budget = self._budget(caller, now)
        began = time.perf_counter()
        try:
            failures = await self._count_patiently_async(id_number, call_id, budget, now)
        except IdentityLocked:
            metrics.identification("locked")
            raise
        except IdentifyRefused as exc:
            self._log_refused(exc, call_id, budget)
            action = f"identify_refused:{exc.reason}"
            await self.auditor.record_async(actor=actor, action=action, resident_id=None, call_id=call_id)
            raise
        checking = time.perf_counter()
        stage_times.add("identify.count", checking - began)
        loop = asyncio.get_running_loop()
        check = await loop.run_in_executor(executor, self.port.check_pin, id_number, pin)
        stage_times.add("identify.check_pin", time.perf_counter() - checking)
        return self._conclude(check, id_number, budget, now, failures, actor=actor, call_id=call_id)

    def _budget(self, caller: str | None, now: dt.datetime) -> tuple[str, dt.date]:
        return caller_key(caller), now.astimezone(self.zone).date()

    @staticmethod
    def _log_refused(exc: IdentifyRefused, call_id: str | None, budget: tuple[str, dt.date]) -> None:
        metrics.identification("refused")
        shown = budget[0] if budget[0] == ANONYMOUS else mask_phone(budget[0])
        log.warning("call %s: identification refused (%s) for caller %s", call_id, exc.reason, shown)

    def _conclude(
        self,
        check: PinCheck,
        id_number: str,
        budget: tuple[str, dt.date],
        now: dt.datetime,
        failures: int,
        *,
        actor: str,
        call_id: str | None,
    ) -> Identity:
        """After the check: the audit entry queued (identification hands out no data; the
        read that follows waits for its own entry, and the writer commits in order), and the
        identity, or WrongPin / IdentityLocked."""
        if check.matched and check.resident_id is not None:
            self.auditor.record(
                actor=actor,
                action="identify",
                resident_id=check.resident_id,
                call_id=call_id,
                also=[self._give_back(id_number, budget, now)],
                wait=False,
            )
            metrics.identification("ok")
            return Identity(check.resident_id)
        log.info("call %s: identification failed for %s (%d consecutive)", call_id, mask_id(id_number), failures)
        self.auditor.record(
            actor=actor, action="identify_failed", resident_id=check.resident_id, call_id=call_id, wait=False
        )
        if failures >= self.limits.max_failures:
            metrics.identification("locked")
            raise IdentityLocked(now + self.limits.lockout)
        metrics.identification("wrong_pin")
        raise WrongPin(failures)

    def id_key(self, id_number: str) -> str:
        return hmac.new(self.secret, id_number.encode(), hashlib.sha256).hexdigest()

    # counting -------------------------------------------------------------------------
    def _count_patiently(
        self, id_number: str, call_id: str | None, budget: tuple[str, dt.date], now: dt.datetime
    ) -> int:
        """`_count_attempt`, tried again after each of `budget_retry_s` while the calling
        number's budget is full (it may be full of attempts in flight, see BUDGET_RETRY_S)."""
        for pause in (*self.budget_retry_s, None):
            try:
                return self._count_attempt(id_number, call_id, budget, now)
            except IdentifyRefused as exc:
                if exc.reason != "caller_budget" or pause is None:
                    raise
                self.sleep(pause)
        raise AssertionError("unreachable: the last pass returns or raises")

    async def _count_patiently_async(
        self, id_number: str, call_id: str | None, budget: tuple[str, dt.date], now: dt.datetime
    ) -> int:
        """`_count_patiently` from the event loop, through the group writer."""
        assert self.writer is not None
        count = functools.partial(self._count, id_number=id_number, call_id=call_id, budget=budget, now=now)
        for pause in (*self.budget_retry_s, None):
            try:
                return await self.writer.call(count, self._attempt_label(call_id), savepoint=self._savepoint)
            except IdentifyRefused as exc:
                if exc.reason != "caller_budget" or pause is None:
                    raise
                await self.async_sleep(pause)
        raise AssertionError("unreachable: the last pass returns or raises")

    def _count_attempt(self, id_number: str, call_id: str | None, budget: tuple[str, dt.date], now: dt.datetime) -> int:
        """Count the attempt as a failure in advance, atomically, or refuse it: the call's
        ID numbers first (a caller cannot learn a further ID number's lock), then the calling
        number's budget, then the ID number's own lock. A refusal counts nothing. Committed
        before this returns: through the group writer when there is one, else alone."""
        count = functools.partial(self._count, id_number=id_number, call_id=call_id, budget=budget, now=now)
        if self.writer is None:
            with self.store.transaction() as c:
                return count(c)
        return self.writer.call_blocking(count, self._attempt_label(call_id), savepoint=self._savepoint)

    @staticmethod
    def _attempt_label(call_id: str | None) -> str:
        return f"the identification attempt of call {call_id}"

    def _count(
        self, c: Connection, *, id_number: str, call_id: str | None, budget: tuple[str, dt.date], now: dt.datetime
    ) -> int:
        if c.dialect.name == "postgresql":
            return self._count_in_one(c, id_number, call_id, budget, now)
        if call_id is not None:
            self._claim_id_for_call(c, call_id, self.id_key(id_number), now)
        self._take_from_budget(c, budget, now)
        return self._count_failure(c, id_number, now)

    def _count_in_one(
        self, c: Connection, id_number: str, call_id: str | None, budget: tuple[str, dt.date], now: dt.datetime
    ) -> int:
        """PostgreSQL: the same statements in the same order, in one round trip (migration
        0037's `hotline_count_attempt`); a refusal has written nothing when it is raised."""
        caller, day = budget
        given = {
            "p_call": call_id,
            "p_key": self.id_key(id_number) if call_id is not None else None,
            "p_ids_per_call": self.limits.ids_per_call,
            "p_caller": caller,
            "p_day": day,
            "p_limit": self.limits.caller_failures_per_day,
            "p_id": id_number,
            "p_max": self.limits.max_failures,
            "p_until": now + self.limits.lockout,
            "p_now": now,
        }
        refused, counted, lock_until = c.execute(_COUNT_IN_ONE, given).one()
        if refused == "locked":
            raise IdentityLocked(lock_until)
        if refused is not None:
            raise IdentifyRefused(refused)
        return int(counted)

    def _claim_id_for_call(self, c: Connection, call_id: str, key: str, now: dt.datetime) -> None:
        st = _statements(c.dialect.name)
        c.execute(st.claim, {"p_call": call_id, "p_key": key, "p_at": now})
        tried = c.scalar(st.tried, {"p_call": call_id}) or 0
        if tried > self.limits.ids_per_call:
            raise IdentifyRefused("ids_per_call")  # the transaction rolls back this ID number's row

    def _take_from_budget(self, c: Connection, budget: tuple[str, dt.date], now: dt.datetime) -> None:
        caller, day = budget
        st = _statements(c.dialect.name)
        given = {"p_caller": caller, "p_day": day, "p_now": now, "p_limit": self.limits.caller_failures_per_day}
        if c.execute(st.take, given).first() is None:
            raise IdentifyRefused("caller_budget")

    def _count_failure(self, c: Connection, id_number: str, now: dt.datetime) -> int:
        st = _statements(c.dialect.name)
        given = {
            "p_id": id_number,
            "p_now": now,
            "p_max": self.limits.max_failures,
            "p_until": now + self.limits.lockout,
        }
        counted = c.execute(st.count, given).scalar()
        if counted is None:
            raise IdentityLocked(c.scalar(_LOCKED_UNTIL, {"id_number": id_number}))
        return int(counted)

    def _give_back(self, id_number: str, budget: tuple[str, dt.date], now: dt.datetime) -> Op:
        """A right PIN: the ID number's failures are cleared and the caller's budget gets its
        attempt back, in the audit entry's transaction."""
        caller, day = budget

        def give_back(c: Connection) -> None:
            given = {"p_id": id_number, "p_caller": caller, "p_day": day, "p_now": now}
            if c.dialect.name == "postgresql":
                c.execute(_GIVE_BACK_IN_ONE, given)  # one round trip instead of two
                return
            c.execute(_RESET, given)
            c.execute(_REFUND, given)

        return give_back


# The counting statements, built once (per dialect for the upserts) and run with parameters:
# building and keying them anew for every attempt was a visible share of a call's CPU.
_NOW = bindparam("p_now", type_=UtcDateTime())
_CALL_IDS = select(func.count()).where(CallIdentity.call_id == bindparam("p_call"))
_BUDGET = and_(CallerFailures.caller == bindparam("p_caller"), CallerFailures.day == bindparam("p_day"))
_FRESH = PinLock.locked_until.is_not(None)  # an expired lock starts a fresh count
_COUNT = case((_FRESH, 1), else_=PinLock.failures + 1)
_UNTIL = bindparam("p_until", type_=UtcDateTime())
_MAX: BindParameter[int] = bindparam("p_max")
_RESET = (
    update(PinLock).where(PinLock.id_number == bindparam("p_id")).values(failures=0, locked_until=None, updated_at=_NOW)
)
_REFUND = (
    update(CallerFailures)
    .where(_BUDGET, CallerFailures.failures > 0)
    .values(failures=CallerFailures.failures - 1, updated_at=_NOW)
)


# PostgreSQL: both in one statement, the reset in a data-modifying WITH (its manual, 7.8.4).
_GIVE_BACK_IN_ONE = _REFUND.add_cte(_RESET.cte("reset"))
_COUNT_IN_ONE = (
    text(
        "SELECT refused, counted, lock_until FROM hotline_count_attempt(:p_call, :p_key, :p_ids_per_call,"
        " :p_caller, :p_day, :p_limit, :p_id, :p_max, :p_until, :p_now)"
    )
    .bindparams(bindparam("p_until", type_=UtcDateTime()), bindparam("p_now", type_=UtcDateTime()))
    .columns(refused=String(), counted=Integer(), lock_until=UtcDateTime())
)


@dataclass(frozen=True)
class _Counting:
    claim: Any
    tried: Any
    take: Any
    count: Any


@functools.cache
def _statements(dialect: str) -> _Counting:
    """Each count one statement (an upsert): a first row is made counted, an existing one
    counted only within its limit (`DO UPDATE ... WHERE`), and RETURNING says which. Both
    databases take this form (SQLite 3.35 for RETURNING, PostgreSQL 9.5 for ON CONFLICT)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    budget: dict[str, Any] = {"caller": bindparam("p_caller"), "day": bindparam("p_day")}
    take = insert(CallerFailures).values(**budget, failures=1, updated_at=_NOW)
    count = insert(PinLock).values(
        id_number=bindparam("p_id"), failures=1, locked_until=case((_MAX <= 1, _UNTIL), else_=None), updated_at=_NOW
    )
    return _Counting(
        claim=insert(CallIdentity)
        .values(call_id=bindparam("p_call"), id_key=bindparam("p_key"), at=bindparam("p_at", type_=UtcDateTime()))
        .on_conflict_do_nothing(),
        tried=_CALL_IDS,
        take=take.on_conflict_do_update(
            index_elements=[CallerFailures.caller, CallerFailures.day],
            set_={"failures": CallerFailures.failures + 1, "updated_at": _NOW},
            where=CallerFailures.failures < bindparam("p_limit"),
        ).returning(CallerFailures.failures),
        count=count.on_conflict_do_update(
            index_elements=[PinLock.id_number],
            set_={"failures": _COUNT, "locked_until": case((_MAX <= _COUNT, _UNTIL), else_=None), "updated_at": _NOW},
            where=or_(PinLock.locked_until.is_(None), PinLock.locked_until <= _NOW),  # unlocked rows only
        ).returning(PinLock.failures),
    )
