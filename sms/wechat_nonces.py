"""The signed WeChat pushes taken, in the store: a (timestamp, nonce) pair is taken once by
whichever console process sees it first, and refused by every process after that.

In plaintext mode a push's signature covers only the token, timestamp and nonce
(sms/wechat_push.py): a signed query seen once could carry a body of anyone's making to
another console process behind the same address, if each kept its own memory. The pair's
primary key decides instead: the insert of a pair already there does nothing, and says so.
Pairs older than twice the freshness window are pruned as new ones come (a stale timestamp
is refused before its pair is looked at).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Final, cast

from sqlalchemy import Table, delete

from core.db import Store, upsert
from core.models import WeChatPushNonce
from sms.wechat_push import FRESH_S, stale

NONCES = cast(Table, WeChatPushNonce.__table__)
NONCE_MAX: Final = 64  # WeChat's nonces are about ten digits


@dataclass(frozen=True)
class PushNonces:
    store: Store
    fresh_s: float = FRESH_S

    def refuse(self, timestamp: str, nonce: str, now: float | None = None) -> str:
        """Why this signed request is not taken ("" if it is; then no process takes it again)."""
        now = time.time() if now is None else now
        why = stale(timestamp, now, self.fresh_s)
        if why:
            return why
        if not nonce or len(nonce) > NONCE_MAX:
            return f"its nonce is empty or longer than {NONCE_MAX} characters"
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        with self.store.transaction() as c:
            c.execute(delete(NONCES).where(NONCES.c.taken_at < at - dt.timedelta(seconds=2 * self.fresh_s)))
            # RETURNING, not rowcount: psycopg gives no count for an INSERT that did nothing.
            taken = c.execute(
                upsert(c, NONCES)
                .values(timestamp=timestamp, nonce=nonce, taken_at=at)
                .on_conflict_do_nothing()
                .returning(NONCES.c.nonce)
            ).first()
        return "" if taken is not None else "its timestamp and nonce were used before"
