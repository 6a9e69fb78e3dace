"""The destination policy's cost where numbers enter and leave, beside what it replaced.

    python -m bench.destinations [--numbers 200000]

Intake used to turn each registered number into the store's form (`core.phones.store_form`);
it now passes `DestinationPolicy.check`, and the dispatcher asks `refusal` once more before
each submit. Measured in one run on the same numbers (mobiles and fixed lines in the forms
business systems write them, a few abroad): numbers per second of each, and the ratio of
the policy's path to the old one.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import time
from collections.abc import Callable

from core.destinations import DestinationPolicy, DestinationSettings
from core.phones import BadPhoneNumber, store_form


def numbers(n: int, seed: int = 12333) -> list[str]:
    rng = random.Random(seed)
    forms = [
        lambda: f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}",
        lambda: f"+86 1{rng.choice('3456789')}{rng.randrange(10**9):09d}",
        lambda: f"0571-{rng.randrange(2, 10)}{rng.randrange(10**7):07d}",
        lambda: f"008613{rng.randrange(10**9):09d}",
        lambda: f"+882{rng.randrange(10**10):010d}",
    ]
    weights = [70, 10, 10, 5, 5]
    return [rng.choices(forms, weights)[0]() for _ in range(n)]


def rate(each: Callable[[str], object], sample: list[str]) -> float:
    start = time.perf_counter()
    for raw in sample:
        with contextlib.suppress(BadPhoneNumber):
            each(raw)
    return len(sample) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numbers", type=int, default=200_000)
    args = parser.parse_args()
    sample = numbers(args.numbers)
    policy = DestinationPolicy(DestinationSettings(allow=("+852",), block=("+86400", "+86800", "+86179")))
    stored = [store_form(n) for n in sample if policy.allows(n)]
    runs: dict[str, tuple[Callable[[str], object], list[str]]] = {
        "store_form (before: intake)": (store_form, sample),
        "policy.check (intake now)": (policy.check, sample),
        "policy.refusal (each submit)": (policy.refusal, stored),
    }
    best = {name: max(rate(each, given) for _ in range(3)) for name, (each, given) in runs.items()}
    base = best["store_form (before: intake)"]
    print(f"{args.numbers:,} numbers, best of 3 runs each")
    print(f"{'path':<30} {'numbers/s':>12} {'µs each':>8} {'vs store_form':>14}")
    for name, value in best.items():
        print(f"{name:<30} {value:>12,.0f} {1e6 / value:>8.2f} {value / base:>14.2f}")


if __name__ == "__main__":
    main()
