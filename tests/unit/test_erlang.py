"""Erlang B and C (reports/erlang.py) against published tables and worked examples, and
against the textbook factorial formula computed exactly with fractions."""

from __future__ import annotations

import doctest
import math
from fractions import Fraction

import pytest

from reports import erlang


def test_the_doctests() -> None:
    assert doctest.testmod(erlang).failed == 0


# Erlang B tables (e.g. ITU-D / Iversen, "Teletraffic Engineering and Network Planning",
# table of the Erlang B formula; the same rows in every published Erlang B table): the
# traffic that n lines carry at a 1 % grade of service, given to two decimals.
ERLANG_B_1_PERCENT = [(10, 4.46), (20, 12.03), (50, 37.90), (100, 84.06)]


@pytest.mark.parametrize(("lines", "erlangs"), ERLANG_B_1_PERCENT)
def test_erlang_b_meets_the_published_one_percent_rows(lines: int, erlangs: float) -> None:
    # The table's traffic is rounded to 0.01 erlang, which moves the blocking by < 0.0002.
    assert erlang.erlang_b(lines, erlangs) == pytest.approx(0.01, abs=2e-4)


def test_the_call_centre_helper_worked_example() -> None:
    """Call Centre Helper, "Erlang C Formula - Made Simple With an Easy Worked Example":
    100 calls in 30 minutes, 180 s average handling time (10 erlangs), 80 % answered in
    20 s. Its table: 11 agents, 68.21 % of calls wait; 14 agents, 17.41 % wait, 88.84 %
    answered within 20 s, average speed of answer 7.8 s, occupancy 71.4 %; 14 is the
    fewest agents that meet 80/20."""
    assert erlang.erlang_c(11, 10.0) == pytest.approx(0.6821, abs=5e-5)
    assert erlang.erlang_c(14, 10.0) == pytest.approx(0.1741, abs=5e-5)
    assert erlang.service_level(14, 10.0, aht_s=180, threshold_s=20) == pytest.approx(0.8884, abs=5e-5)
    assert erlang.mean_wait_s(14, 10.0, aht_s=180) == pytest.approx(7.8, abs=0.05)
    assert erlang.occupancy(14, 10.0) == pytest.approx(0.714, abs=5e-4)
    assert erlang.agents_needed(10.0, aht_s=180, threshold_s=20, goal=0.8) == 14


def test_a_textbook_curve_reading() -> None:
    # 120 customers an hour of 3 minutes (6 erlangs) at 10 servers: "from the Erlang C
    # curve, the probability of waiting is about 0.10" (a common queueing exercise).
    assert erlang.erlang_c(10, 6.0) == pytest.approx(0.10, abs=0.005)


def _exact_c(n: int, a: Fraction) -> Fraction:
    """The factorial form, in exact fractions: A^n/n! · n/(n-A) over Σ_{k<n} A^k/k! + that."""
    top = a**n / math.factorial(n) * n / (n - a)
    return top / (sum(a**k / math.factorial(k) for k in range(n)) + top)


@pytest.mark.parametrize(("n", "a"), [(1, "1/2"), (3, "5/2"), (7, "3"), (25, "41/2"), (60, "55")])
def test_erlang_c_equals_the_factorial_formula(n: int, a: str) -> None:
    exact = _exact_c(n, Fraction(a))
    assert erlang.erlang_c(n, float(Fraction(a))) == pytest.approx(float(exact), rel=1e-12)


def test_hundreds_of_agents_without_overflow() -> None:
    # A**N / N! overflows a float near 170 agents; the recursion does not.
    c = erlang.erlang_c(300, 280.0)
    assert 0.0 < c < 1.0
    assert c == pytest.approx(float(_exact_c(300, Fraction(280))), rel=1e-9)
    assert erlang.erlang_c(1000, 950.0) == pytest.approx(float(_exact_c(1000, Fraction(950))), rel=1e-9)
    needed = erlang.agents_needed(300.0, aht_s=200, threshold_s=15, goal=0.8)
    assert erlang.service_level(needed, 300.0, 200, 15) >= 0.8 > erlang.service_level(needed - 1, 300.0, 200, 15)


def test_agents_needed_is_the_fewest_that_meet_the_goal() -> None:
    for a in (0.3, 1.0, 2.5, 9.9, 42.0):
        n = erlang.agents_needed(a, aht_s=185, threshold_s=15, goal=0.8)
        assert n > a
        assert erlang.service_level(n, a, 185, 15) >= 0.8
        assert n - 1 <= a or erlang.service_level(n - 1, a, 185, 15) < 0.8


def test_overload_and_no_traffic() -> None:
    assert erlang.erlang_c(5, 5.0) == 1.0
    assert erlang.service_level(4, 5.0, 180, 15) == 0.0
    assert erlang.mean_wait_s(5, 6.0, 180) == math.inf
    assert erlang.erlang_c(3, 0.0) == 0.0
    assert erlang.agents_needed(0.0, aht_s=180, threshold_s=15, goal=0.8) == 0
    assert erlang.occupancy(0, 0.0) == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: erlang.erlang_c(-1, 2.0),
        lambda: erlang.erlang_b(3, -0.5),
        lambda: erlang.erlang_c(3, math.nan),
        lambda: erlang.agents_needed(2.0, aht_s=180, threshold_s=15, goal=1.0),
        lambda: erlang.agents_needed(2.0, aht_s=0, threshold_s=15, goal=0.8),
    ],
)
def test_bad_input_is_refused_by_name(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
