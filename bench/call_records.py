"""What the store recorded for a benchmark's calls, found by their caller numbers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from sqlalchemy import func, select

from core.db import Store
from core.models import Call, node_of
from core.sample import SampleResident
from ivr.trail import show_call

ENDED_LIMIT_S = 20.0


def wait_ended(store: Store, callers: Sequence[str], limit_s: float = ENDED_LIMIT_S) -> None:
    """Until every recorded call from `callers` has ended (the trail's last writes follow the
    caller's hang-up), or `limit_s` has passed."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with store.session() as s:
            still = s.scalar(select(func.count()).where(Call.caller_number.in_(callers), Call.ended_at.is_(None)))
        if not still:
            return
        time.sleep(0.2)


def trail_problem(store: Store, caller: str, r: SampleResident) -> str | None:
    """None if the call from `caller` is recorded, ended, and its trail shows the pension
    result with status ok and the resident's balance."""
    with store.session() as s:
        call_id = s.scalar(select(Call.id).where(Call.caller_number == caller))
    if call_id is None:
        return "no call recorded"
    call = show_call(store, call_id, actor="bench")
    if not call["ended_at"]:
        return "call not ended in the store"
    results = [s for s in call["trail"] if s["kind"] == "result" and s.get("query") == "pension"]
    if not results or results[0].get("status") != "ok":
        return f"no pension result with status ok (last node {call['last_node']}, outcome {call['outcome']})"
    if results[0]["data"]["balance_fen"] != r.pension_balance_fen:
        return "wrong balance"
    return None


def calls_per_node(store: Store, callers: Sequence[str]) -> dict[str, int]:
    """Recorded calls per cluster node (`one` for an Asterisk on its own)."""
    with store.session() as s:
        uids = s.scalars(select(Call.asterisk_uniqueid).where(Call.caller_number.in_(callers))).all()
    return dict(sorted(Counter(node_of(u) or "one" for u in uids).items()))


def outcomes(store: Store, callers: Sequence[str]) -> dict[str, int]:
    """Recorded calls per node, outcome and who ended them ("node1 failed by asterisk": 8)."""
    with store.session() as s:
        rows = s.execute(
            select(Call.asterisk_uniqueid, Call.outcome, Call.ended_by).where(Call.caller_number.in_(callers))
        ).all()
    seen = Counter(f"{node_of(uid) or 'one'} {outcome or 'open'} by {by or '-'}" for uid, outcome, by in rows)
    return dict(sorted(seen.items()))
