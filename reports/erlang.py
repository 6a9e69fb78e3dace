"""Erlang B and Erlang C (M/M/n: Poisson arrivals, exponential handling, callers who wait),
for staffing: how many agents an hour needs to answer a share of its calls within a
threshold, and what waiting and occupancy to expect with them.

Written here rather than taken from PyPI (checked in 2026-12): `pyworkforce` computes the
same but brings numpy, pandas, ortools and joblib; `erlangccmath` sends every calculation
to a web service; `erlanglib` uses factorials (`A**N / N!` overflows a float near 170
agents) and has had no release since 2023; `call-center-tools` is one release by one author.

No factorial and no power is ever formed: Erlang B comes from its recursion
B(0) = 1, B(k) = A·B(k-1) / (k + A·B(k-1)) (ITU-T E.521 / Iversen, "Teletraffic
Engineering and Network Planning", section 4.4), whose terms stay within 0..1, and Erlang C
from B: C(n, A) = n·B / (n - A·(1 - B)) for n > A.

>>> round(erlang_c(14, 10.0), 4)  # 100 calls in 30 min of 180 s: 10 erlangs
0.1741
>>> round(service_level(14, 10.0, aht_s=180, threshold_s=20), 4)
0.8884
>>> agents_needed(10.0, aht_s=180, threshold_s=20, goal=0.8)
14
>>> agents_needed(950.0, aht_s=180, threshold_s=15, goal=0.8)  # no overflow at 1000 agents
963
"""

from __future__ import annotations

import math

MAX_AGENTS = 100_000  # a search past this is a mistake in the input, not a staffing plan


def erlang_b(agents: int, erlangs: float) -> float:
    """The share of calls blocked when `erlangs` of traffic meet `agents` lines and no queue.

    >>> round(erlang_b(10, 4.46), 4)  # 1 % grade of service at 10 lines (Erlang B tables)
    0.01
    """
    _check(agents, erlangs)
    b = 1.0
    for k in range(1, agents + 1):
        b = erlangs * b / (k + erlangs * b)
    return b


def erlang_c(agents: int, erlangs: float) -> float:
    """The probability that a call waits at all (1.0 when the agents cannot keep up).

    >>> round(erlang_c(2, 1.0), 12)  # M/M/2 at half load: 2ρ²/(1+ρ) = 1/3
    0.333333333333
    """
    _check(agents, erlangs)
    if erlangs == 0:
        return 0.0
    if agents <= erlangs:
        return 1.0
    return _c_from_b(agents, erlangs, erlang_b(agents, erlangs))


def _c_from_b(agents: int, erlangs: float, b: float) -> float:
    return agents * b / (agents - erlangs * (1.0 - b))


def service_level(agents: int, erlangs: float, aht_s: float, threshold_s: float) -> float:
    """The share of calls answered within `threshold_s`: 1 - C·e^(-(n-A)·t/AHT)."""
    c = erlang_c(agents, erlangs)
    if c >= 1.0:
        return 0.0
    return _sl(agents, erlangs, c, aht_s, threshold_s)


def _sl(agents: int, erlangs: float, c: float, aht_s: float, threshold_s: float) -> float:
    return 1.0 - c * math.exp(-(agents - erlangs) * threshold_s / aht_s)


def mean_wait_s(agents: int, erlangs: float, aht_s: float) -> float:
    """The average speed of answer over all calls, C·AHT / (n - A); infinite when n ≤ A.

    >>> round(mean_wait_s(14, 10.0, 180), 1)
    7.8
    """
    c = erlang_c(agents, erlangs)
    if c >= 1.0:
        return math.inf
    return c * aht_s / (agents - erlangs)


def occupancy(agents: int, erlangs: float) -> float:
    """The share of signed-in time the agents spend handling calls (at most 1)."""
    return min(1.0, erlangs / agents) if agents else 0.0


def agents_needed(erlangs: float, aht_s: float, threshold_s: float, goal: float) -> int:
    """The fewest agents that answer `goal` (0..1) of the calls within `threshold_s`.

    One pass of the recursion up from the first agent count that can keep up, so an hour
    of 300 erlangs costs 300-odd steps, not 300 separate Erlang B evaluations.
    """
    _check(0, erlangs)
    if not 0.0 <= goal < 1.0:
        raise ValueError(f"service-level goal {goal}: must be at least 0 and below 1")
    if aht_s <= 0 or threshold_s < 0:
        raise ValueError("handling time must be positive and the threshold not negative")
    if erlangs == 0:
        return 0
    b, n = 1.0, 0
    while n < MAX_AGENTS:
        n += 1
        b = erlangs * b / (n + erlangs * b)
        if n > erlangs and _sl(n, erlangs, _c_from_b(n, erlangs, b), aht_s, threshold_s) >= goal:
            return n
    raise ValueError(f"{erlangs:.0f} erlangs need more than {MAX_AGENTS} agents")


def _check(agents: int, erlangs: float) -> None:
    if agents < 0 or erlangs < 0 or math.isnan(erlangs) or math.isinf(erlangs):
        raise ValueError(f"agents ({agents}) and traffic ({erlangs} erlangs) must be finite and not negative")
