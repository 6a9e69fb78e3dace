"""Follow-up (回访): some time after an order's answer, the resident is asked by SMS how
satisfied they are (满意请回复1，基本满意回复2，不满意回复3), and their digit is stored with
the order.

The rooms stay apart through two core tables: the question is a business event
(`order_followup`, rendered by sms/templates.py) and an `sms_surveys` row under the same
key, for the caller's number; the SMS gateway (sms/mo.py) records the first 1, 2 or 3 that
number texts while the survey is open, knowing nothing of orders; this module then copies
the answer to the order it asked for (by the key) and writes the history. A digit says
nothing of which order it rates, so a number has one survey open at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

from sqlalchemy import Connection, Table, select, update

from cases.errors import BadOrderInput, NoReplyNumber, OrderStateError
from cases.events import add_event, moment
from cases.orders import ORDERS, Order, order_of, read_order
from cases.replies import FOLLOWUP_EVENT, emit_event, followup_key, reply_number
from core.calendar import in_business_hours
from core.db import Store, pg_lock, upsert
from core.masking import mask_phone
from core.models import SmsSurvey
from core.settings import Settings

log = logging.getLogger(__name__)
SURVEYS: Final[Table] = SmsSurvey.__table__  # type: ignore[assignment]
BATCH: Final = 200
ACTOR: Final = "cases"


def send_due_followups(store: Store, settings: Settings, now: dt.datetime | None = None) -> list[Order]:
    """Ask for satisfaction on every answered order whose answer is `cases.followup_after_hours`
    old and not yet followed up; only within business hours (nobody is texted at night about
    an order). An order without a number to text is marked `no_number`. While the number has
    a survey open, its other orders wait for a later round (the oldest answer asks first)."""
    now = moment(now)
    after = settings.cases.followup_after_hours
    if after <= 0 or not in_business_hours(settings.queue, now):
        return []
    due = (
        select(ORDERS.c.id)
        .where(
            ORDERS.c.status.in_(("answered", "closed")),
            ORDERS.c.followup_state.is_(None),
            ORDERS.c.answered_at <= now - dt.timedelta(hours=after),
        )
        .order_by(ORDERS.c.answered_at)
        .limit(BATCH)
    )
    with store.transaction() as c:
        ids = list(c.scalars(due))
    sent = []
    for order_id in ids:
        order = _follow_up(store, settings, order_id, now)
        if order is not None:
            sent.append(order)
    return sent


class _SurveyOpen(Exception):
    """The number has a survey open: this order's follow-up waits (its claim is rolled back)."""


def _follow_up(store: Store, settings: Settings, order_id: int, now: dt.datetime) -> Order | None:
    try:
        return _ask(store, settings, order_id, now)
    except _SurveyOpen:
        log.debug("work order %d: follow-up waits for the number's open survey to close", order_id)
        return None


def _ask(store: Store, settings: Settings, order_id: int, now: dt.datetime) -> Order | None:
    with store.transaction() as c:
        # The claim is the transaction's first write: on SQLite it takes the database's write
        # lock, so the look for an open survey below sees every survey committed before.
        claim = update(ORDERS).where(ORDERS.c.id == order_id, ORDERS.c.followup_state.is_(None))
        row = c.execute(claim.values(followup_state="sent", followup_at=now).returning(*ORDERS.c)).first()
        if row is None:
            return None  # another process followed it up
        order = order_of(row)
        try:
            phone = reply_number(settings, order, "sms")
        except NoReplyNumber as exc:
            c.execute(update(ORDERS).where(ORDERS.c.id == order_id).values(followup_state="no_number"))
            reason = "no number" if exc.refused is None else f"number refused ({exc.refused.rule})"
            add_event(c, order_id, ACTOR, "followup_sent", {"sent": False, "reason": reason}, now)
            if exc.refused is not None:
                log.warning("work order %d: no follow-up: %s", order_id, exc.refused)
            return None
        if _survey_open(c, phone, now):
            raise _SurveyOpen(order_id)
        key = followup_key(order_id)
        emit_event(c, FOLLOWUP_EVENT, phone, {"order_no": str(order_id)}, key, now)
        open_until = now + dt.timedelta(hours=settings.cases.followup_reply_hours)
        survey = upsert(c, SmsSurvey).values(key=key, phone=phone, asked_at=now, open_until=open_until)
        c.execute(survey.on_conflict_do_nothing(index_elements=["key"]))
        add_event(c, order_id, ACTOR, "followup_sent", {"sent": True, "sms_event": key}, now)
    log.info("work order %d: follow-up sent to %s", order_id, mask_phone(phone))
    return order


def _survey_open(c: Connection, phone: str, now: dt.datetime) -> bool:
    """Whether the number has a survey unanswered and open. A reply says only a digit, so
    with two open it could not say which order it rates: one at a time per number. On
    PostgreSQL a lock per number, held to the end of the transaction, keeps two processes
    from both finding none and both asking."""
    pg_lock(c, "survey:" + phone)
    open_ = select(SURVEYS.c.key).where(
        SURVEYS.c.phone == phone, SURVEYS.c.answer.is_(None), SURVEYS.c.open_until > now
    )
    return c.execute(open_.limit(1)).first() is not None


def collect_followup_replies(store: Store, now: dt.datetime | None = None) -> list[Order]:
    """Store the residents' answers with their orders (`satisfaction`, followup_state
    `answered`); a survey closed unanswered leaves `no_reply`."""
    now = moment(now)
    with store.transaction() as c:
        waiting = list(
            c.scalars(select(ORDERS.c.id).where(ORDERS.c.followup_state == "sent").order_by(ORDERS.c.id).limit(BATCH))
        )
        keys = {followup_key(i): i for i in waiting}
        surveys = c.execute(select(SURVEYS).where(SURVEYS.c.key.in_(list(keys)))).all() if keys else []
        done = []
        for survey in surveys:
            order_id = keys[survey.key]
            if survey.answer is not None:
                values = {"followup_state": "answered", "satisfaction": survey.answer}
                detail = {"satisfaction": survey.answer, "replied_at": survey.answered_at.isoformat()}
            elif survey.open_until < now:
                values, detail = {"followup_state": "no_reply"}, {"satisfaction": None}
            else:
                continue
            claim = update(ORDERS).where(ORDERS.c.id == order_id, ORDERS.c.followup_state == "sent")
            row = c.execute(claim.values(**values).returning(*ORDERS.c)).first()
            if row is not None:
                add_event(c, order_id, "sms", "followup_reply", detail, now)
                done.append(order_of(row))
    return done


SATISFACTION: Final = (1, 2, 3)  # 满意, 基本满意, 不满意: the digits the SMS asks for


def record_call_followup(
    store: Store,
    order_id: int,
    satisfaction: int,
    *,
    actor: str,
    department: str | None = None,
    now: dt.datetime | None = None,
) -> Order:
    """A follow-up by telephone (电话回访): whoever called the resident records their answer
    on an answered or closed order that has none yet (an SMS survey still open is closed by
    the call: a later text rates nothing, and the number's next survey may go out)."""
    now = moment(now)
    if satisfaction not in SATISFACTION:
        raise BadOrderInput(f"satisfaction {satisfaction!r}: 1 satisfied, 2 fairly satisfied, 3 not satisfied")
    with store.transaction() as c:
        current = read_order(c, order_id, department)
        if current.status not in ("answered", "closed"):
            raise OrderStateError(order_id, current.status, "followed up before it is answered")
        if current.followup_state == "answered":
            raise OrderStateError(order_id, "followed up already", "followed up again")
        values = {"followup_state": "answered", "satisfaction": satisfaction, "followup_at": now}
        claim = update(ORDERS).where(
            ORDERS.c.id == order_id, ORDERS.c.followup_state.is_not_distinct_from(current.followup_state)
        )
        row = c.execute(claim.values(**values).returning(*ORDERS.c)).first()
        if row is None:
            raise OrderStateError(order_id, "followed up meanwhile", "followed up again")
        add_event(c, order_id, actor, "followup_reply", {"satisfaction": satisfaction, "via": "call"}, now)
        # Its SMS survey, if one is open, is closed now: the number's next survey need not
        # wait out the 72 hours, and a late digit rates nothing.
        closing = update(SURVEYS).where(
            SURVEYS.c.key == followup_key(order_id), SURVEYS.c.answer.is_(None), SURVEYS.c.open_until > now
        )
        c.execute(closing.values(open_until=now))
    log.info("work order %d: follow-up by call recorded (%d)", order_id, satisfaction)
    return order_of(row)
