"""Work orders the 12345 hotline sends (派单) become our work orders, once each.

    receive(store, settings, signed, body, now=None) -> Received

`signed` is what cases.contract12345.authenticate found (the counterpart, its nonce). In one
transaction: the nonce is taken (ReplayedNonce if this counterpart used it before), the body
is checked (BadOrder12345), and the order is looked up by (counterpart, 12345's number):
new, it becomes an open work order of kind `12345`, due when 12345 said, created by
`12345:<counterpart>`, its `created` event naming where it came from; sent before with the
same fields, the order made then is the answer (`duplicate`) and nothing changes; sent
before with other fields, OrderNoConflict. A refusal rolls everything back, the nonce too:
a request refused for its body may be corrected and signed again, and is not half-taken.

Nonces are kept twice `hotline12345.max_skew_s`: a request older than that is stale
anyway (contract12345.authenticate refuses it before its nonce is looked at). Older rows
are swept as new ones come, like sms/wechat_nonces.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy import Connection, Table, delete, select

from cases import outbox12345
from cases.contract12345 import KIND, Order12345, Signed, parse_order
from cases.errors import OrderNoConflict, ReplayedNonce
from cases.events import EVENTS, moment
from cases.orders import insert_order, order_values
from core.db import Store, upsert
from core.models import Hotline12345Nonce, Hotline12345Order
from core.settings import Settings

NONCES: Final[Table] = Hotline12345Nonce.__table__  # type: ignore[assignment]
FROM_12345: Final[Table] = Hotline12345Order.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Received:
    order_id: int
    order: Order12345
    status: Literal["accepted", "duplicate"]


class _LostRace(Exception):
    """Another request inserted the same order first (its transaction committed while ours
    waited on the key): ours is rolled back and read again as a duplicate."""


def receive(store: Store, settings: Settings, signed: Signed, body: bytes, now: dt.datetime | None = None) -> Received:
    now = moment(now)
    try:
        return _receive(store, settings, signed, body, now)
    except _LostRace:
        return _receive(store, settings, signed, body, now)  # the row is there now: a duplicate


def _receive(store: Store, settings: Settings, signed: Signed, body: bytes, now: dt.datetime) -> Received:
    with store.transaction() as c:
        _take_nonce(c, signed, settings.hotline12345.max_skew_s, now)
        order = parse_order(body, settings.cases.departments, settings.sms.country_code)
        query = select(FROM_12345).where(
            FROM_12345.c.counterpart == signed.counterpart, FROM_12345.c.order_no == order.order_no
        )
        before = c.execute(query).first()
        if before is not None:
            if before.digest != order.digest():
                raise OrderNoConflict(signed.counterpart, order.order_no, before.order_id)
            return Received(before.order_id, order, "duplicate")
        return Received(_insert(c, settings, signed.counterpart, order, now), order, "accepted")


def _take_nonce(c: Connection, signed: Signed, max_skew_s: int, now: dt.datetime) -> None:
    c.execute(delete(NONCES).where(NONCES.c.taken_at < now - dt.timedelta(seconds=2 * max_skew_s)))
    # RETURNING, not rowcount: psycopg gives no count for an INSERT that did nothing.
    taken = c.execute(
        upsert(c, NONCES)
        .values(counterpart=signed.counterpart, nonce=signed.nonce, taken_at=now)
        .on_conflict_do_nothing()
        .returning(NONCES.c.nonce)
    ).first()
    if taken is None:
        raise ReplayedNonce(f"X-12345-Nonce was used before by {signed.counterpart}: a replay")


def _insert(c: Connection, settings: Settings, counterpart: str, order: Order12345, now: dt.datetime) -> int:
    created_by = f"12345:{counterpart}"
    values = order_values(settings, KIND, order.case_category, order.summary, created_by, order.department, now)
    values |= {"due_at": order.deadline, "caller_number": order.caller_number}
    origin = {"from": "12345", "counterpart": counterpart, "order_no": order.order_no}
    made = insert_order(c, values, now, origin)
    link = {"counterpart": counterpart, "order_no": order.order_no, "order_id": made.id}
    statement = upsert(c, FROM_12345).values(**link, digest=order.digest(), received_at=now)
    if c.execute(statement.on_conflict_do_nothing().returning(FROM_12345.c.order_id)).first() is None:
        raise _LostRace
    # 签收: 12345 hears that the order was taken, keyed by its `created` event (cases.outbox12345).
    created = select(EVENTS.c.id).where(EVENTS.c.order_id == made.id, EVENTS.c.action == "created")
    outbox12345.enqueue(c, made, c.execute(created).scalar_one(), "created", now)
    return made.id
