"""The cluster benchmark's arithmetic (bench/cluster_failover.py, bench/cluster_sizing.py):
buckets and recovery from per-call results, and the on-paper sizing."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest

from bench import cluster_failover, cluster_sizing
from bench.cluster_failover import ShortCall, buckets, recovery
from bench.cluster_sizing import Assumptions, PerCall, Site, estimate
from tests.sip_peers.sipp import CallResult, SipMessage


def test_the_doctests() -> None:
    assert doctest.testmod(cluster_failover).failed == 0
    assert doctest.testmod(cluster_sizing).failed == 0


def test_calls_cut_on_the_dead_node_and_none_after_recover_at_the_first_call_after_the_kill() -> None:
    calls = [ShortCall(-3.0, "node1", 0.01, False), ShortCall(-2.0, "node2", 0.01, True)]
    calls += [ShortCall(0.25 * k, "node2", 2.1 if k < 4 else 0.01, True) for k in range(1, 20)]
    recovered, retried, last = recovery(calls, 2.0)
    assert (recovered, retried, last) == (0.25, 3, 0.75)
    assert [b.phase for b in buckets(calls)] == ["kill", "after"]
    assert sum(b.started for b in buckets(calls)) == len(calls)


def test_no_call_after_the_kill_means_no_recovery_time() -> None:
    assert recovery([ShortCall(-1.0, "node1", 0.01, False)], 2.0) == (None, 0, None)


def test_asterisk_scales_with_channels_and_the_rest_with_calls_per_second() -> None:
    a = Assumptions()
    per = PerCall(edge_s=0.01, asterisk_s=0.1, fastagi_s=0.05, postgres_s=0.02)
    small, big = (estimate(per, 20.0, Site(n, 2, c), a) for n, c in (("s", 60), ("b", 600)))
    assert big.asterisk == pytest.approx(small.asterisk * 10)
    assert big.calls_per_s == pytest.approx(small.calls_per_s * 10)
    assert small.cores(0.01) == 1 and small.cores(1.1) == 3  # half busy: 1.1 cores of load -> 3


def _message(direction: str, second: int, first_line: str, cseq: str, contact: str = "") -> SipMessage:
    at = dt.datetime(2026, 12, 7, 10, 0, second)
    headers = f"Call-ID: c1\r\nCSeq: {cseq}\r\n" + (f"Contact: {contact}\r\n" if contact else "")
    return SipMessage("sent" if direction == "sent" else "received", at, f"{first_line}\r\n{headers}\r\n")


def test_a_calls_timeline_and_the_node_that_answered_come_from_sipps_message_log() -> None:
    messages = (
        _message("sent", 1, "INVITE sip:12333@127.0.0.1:5180 SIP/2.0", "1 INVITE"),
        _message("received", 1, "SIP/2.0 100 Trying", "1 INVITE"),
        _message("received", 3, "SIP/2.0 200 OK", "1 INVITE", "<sip:127.0.0.12:5160>"),
        _message("sent", 8, "BYE sip:127.0.0.12:5160 SIP/2.0", "2 BYE"),
        _message("received", 8, "SIP/2.0 200 OK", "2 BYE"),
    )
    call = CallResult("c1", "13800000001", "12333", (100, 200), 200, messages)
    assert call.invited_at == dt.datetime(2026, 12, 7, 10, 0, 1)
    assert call.answered_at == dt.datetime(2026, 12, 7, 10, 0, 3)
    assert call.answered_by == "127.0.0.12"
    assert call.bye_sent_at == dt.datetime(2026, 12, 7, 10, 0, 8)
    refused = CallResult("c2", None, None, (503,), None, messages[:2])
    assert refused.answered_at is None and refused.answered_by is None and refused.bye_sent_at is None
