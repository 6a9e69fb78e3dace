"""A cluster node killed under steady short calls: what the callers saw, for bench/cluster_calls.py.

Short calls (answered, no keys, the caller hangs up 4 s after the answer) go at a steady
rate through the edge to two nodes; at a third of the run node1's Asterisk is killed with
SIGKILL. Each call is placed in time by its INVITE's time in SIPp's message log and in
space by the Contact of its answer (the node that took it), so no call's fate is guessed
from its index.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.call_records import outcomes, wait_ended
from core.db import Store
from ivr.cluster import Cluster
from tests.sip_peers.sipp import CallResult, CarrierCall, UacPlan, UacRun

BUCKET_S: Final = 5.0
# A short call: half a second of silence ("w", after 0.1 s lead-in) and 3.4 s more, then BYE.
SHORT_KEYS: Final = "w"
SHORT_TAIL_S: Final = 3.4
OUT_LIMIT_S: Final = 20.0
REJOIN_LIMIT_S: Final = 60.0


@dataclass(frozen=True)
class ShortCall:
    start_s: float  # from the kill (negative: before it)
    node: str | None  # the node that answered
    answer_s: float | None
    completed: bool


@dataclass(frozen=True)
class Bucket:
    start_s: float  # from the first call's start
    phase: str  # before, kill (the kill fell in it), after
    started: int
    completed: int
    on_node1: int
    on_node2: int
    slowest_answer_s: float | None


@dataclass(frozen=True)
class Failover:
    planned: int
    sent: int
    kill_at_s: float  # from the first call's start
    out_after_s: float | None  # from the kill until the edge had node1 inactive
    buckets: tuple[Bucket, ...]
    lost_on_node1: int  # answered by node1 before the kill and cut off
    lost_other: int  # every other call that did not complete (never sent included)
    recovered_after_s: float | None  # from the kill to the first call after which none failed
    retried: int  # calls after the kill answered only after the edge's node timeout
    last_retried_s: float | None  # when the last of them started, from the kill
    stored: dict[str, int]  # the store's records per node, outcome, and who ended them
    rejoin_s: float | None  # from Cluster.up(2) until the edge had node1 active again


def short_calls(calls: Sequence[CallResult], killed: dt.datetime, names: dict[str, str]) -> list[ShortCall]:
    """The calls SIPp sent, by start time, relative to the kill; `names`: node address -> name."""
    out = []
    for c in calls:
        start, answered = c.invited_at, c.answered_at
        if start is None:
            continue
        node = names.get(c.answered_by or "", c.answered_by)
        answer_s = (answered - start).total_seconds() if answered else None
        out.append(ShortCall((start - killed).total_seconds(), node, answer_s, c.completed))
    return sorted(out, key=lambda s: s.start_s)


def buckets(calls: Sequence[ShortCall], width: float = BUCKET_S) -> tuple[Bucket, ...]:
    """Calls per `width` seconds of start time, from the first call's start.

    >>> calls = [ShortCall(-6, "node1", 0.01, True), ShortCall(-2, "node1", 0.01, False),
    ...          ShortCall(1, "node2", 2.1, True)]
    >>> [(b.phase, b.started, b.completed, b.on_node2) for b in buckets(calls)]
    [('before', 2, 1, 0), ('kill', 1, 1, 1)]
    """
    if not calls:
        return ()
    first = calls[0].start_s
    out = []
    for k in range(int((calls[-1].start_s - first) // width) + 1):
        lo = first + k * width
        inside = [c for c in calls if lo <= c.start_s < lo + width]
        answers = [c.answer_s for c in inside if c.answer_s is not None]
        out.append(
            Bucket(
                start_s=lo - first,
                phase="before" if lo + width <= 0 else "after" if lo > 0 else "kill",
                started=len(inside),
                completed=sum(c.completed for c in inside),
                on_node1=sum(c.node == "node1" for c in inside),
                on_node2=sum(c.node == "node2" for c in inside),
                slowest_answer_s=max(answers) if answers else None,
            )
        )
    return tuple(out)


def recovery(calls: Sequence[ShortCall], node_answer_s: float) -> tuple[float | None, int, float | None]:
    """From the kill to the start of the first call after which every call completed; how
    many calls after the kill were answered only after the edge's node timeout, and when
    the last of them started.

    >>> calls = [ShortCall(-1, "node1", 0.01, False), ShortCall(0.5, None, None, False),
    ...          ShortCall(1.0, "node2", 2.05, True), ShortCall(1.5, "node2", 0.01, True)]
    >>> recovery(calls, 2.0)
    (1.0, 1, 1.0)
    """
    after = [c for c in calls if c.start_s >= 0]
    failed = [i for i, c in enumerate(after) if not c.completed]
    rest = after[failed[-1] + 1 :] if failed else after
    # Answered after most of the timeout: sent to the dead node first (SIPp's and Kamailio's
    # clocks differ by a few ms, so not "at least the timeout").
    retried = [c for c in after if c.answer_s is not None and c.answer_s >= 0.75 * node_answer_s]
    return (rest[0].start_s if rest else None, len(retried), retried[-1].start_s if retried else None)


def wait_state(cluster: Cluster, address: str, state: str, limit_s: float) -> float | None:
    """Seconds until the edge's dispatcher shows `address` in `state`; None if not within `limit_s`."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if cluster.dispatcher_states().get(address) == state:
            return time.monotonic() - start
        time.sleep(0.25)
    return None


def run_failover(cluster: Cluster, store: Store, rate: float, seconds: float, workdir: Path) -> Failover:
    """Short calls at `rate` for `seconds` through the edge, node1 killed at a third of the
    run, then brought back with `Cluster.up(2)`."""
    nodes = cluster.nodes()
    settings = cluster.settings.cluster
    count = round(rate * seconds)
    callers = [f"1372{i:07d}" for i in range(count)]
    plan = UacPlan(
        tuple(CarrierCall(c) for c in callers), dtmf=SHORT_KEYS, lead_s=0.0, tail_s=SHORT_TAIL_S, rate_per_s=rate
    )
    with UacRun((settings.edge_address, settings.edge_port), plan, workdir, "failover") as run:
        time.sleep(seconds / 3)
        pid = cluster.asterisks(nodes)[0].running_pid()
        if pid is None:
            raise RuntimeError("node1's Asterisk was not running when it was to be killed")
        os.kill(pid, signal.SIGKILL)
        killed = dt.datetime.now()  # the clock of SIPp's message log (local time)
        out_after_s = wait_state(cluster, nodes[0].address, "inactive", OUT_LIMIT_S)
        result = run.result()
    calls = short_calls(result.calls, killed, {n.address: n.name for n in nodes})
    lost_on_node1 = sum(c.start_s < 0 and c.node == "node1" and not c.completed for c in calls)
    recovered, retried, last_retried = recovery(calls, settings.node_answer_ms / 1000)
    wait_ended(store, callers)
    stored = outcomes(store, callers)
    start = time.monotonic()
    cluster.up(2)
    back = wait_state(cluster, nodes[0].address, "active", REJOIN_LIMIT_S)
    return Failover(
        planned=count,
        sent=len(calls),
        kill_at_s=-calls[0].start_s if calls else 0.0,
        out_after_s=out_after_s,
        buckets=buckets(calls),
        lost_on_node1=lost_on_node1,
        lost_other=count - sum(c.completed for c in calls) - lost_on_node1,
        recovered_after_s=recovered,
        retried=retried,
        last_retried_s=last_retried,
        stored=stored,
        rejoin_s=None if back is None else time.monotonic() - start,
    )


def print_failover(f: Failover, rate: float, node_answer_s: float) -> None:
    print(
        f"\nFailover: {f.planned} short calls at {rate:g}/s through the edge to two nodes; node1's Asterisk killed "
        f"-9 at +{f.kill_at_s:.1f} s (calls bucketed by their INVITE's time in SIPp's message log)"
    )
    head = ("from", "phase", "started", "completed", "on node1", "on node2", "slowest answer")
    print("{:>6} {:<7} {:>7} {:>9} {:>8} {:>8} {:>14}".format(*head))
    for k in f.buckets:
        slowest = "-" if k.slowest_answer_s is None else f"{k.slowest_answer_s:.2f} s"
        print(
            f"{k.start_s:5.0f}s {k.phase:<7} {k.started:>7} {k.completed:>9} {k.on_node1:>8} {k.on_node2:>8} "
            f"{slowest:>14}"
        )
    out = f"not within {OUT_LIMIT_S:.0f} s" if f.out_after_s is None else f"{f.out_after_s:.1f} s after the kill"
    print(f"the edge had node1 inactive {out}")
    print(f"calls lost: {f.lost_on_node1} on node1 when it died, {f.lost_other} others ({f.sent} sent)")
    if f.recovered_after_s is not None:
        print(f"every call started +{f.recovered_after_s:.2f} s after the kill or later completed")
    if f.retried:
        print(
            f"{f.retried} calls started after the kill waited out the edge's {node_answer_s:g} s node timeout "
            f"before node2 answered (the last started +{f.last_retried_s:.1f} s after the kill)"
        )
    print("store: " + ", ".join(f"{k}: {v}" for k, v in f.stored.items()))
    back = f"not within {REJOIN_LIMIT_S:.0f} s" if f.rejoin_s is None else f"{f.rejoin_s:.1f} s"
    print(f"node1 started again (Cluster.up(2)): active in the edge after {back}")
