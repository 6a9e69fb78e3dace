"""Where the time went, from py-spy's collapsed stacks (`bench.fastagi_load --profile`).

    python -m bench.stacks OUT [--under FUNC] [--thread NAME] [--top 25]

Each line of OUT is one stack (py-spy's process and thread frames, then the frames joined
by `;`, outermost first) and its sample count. Printed: the samples' share by thread (its
name without a pool's number: `ivr`, `group-writer`, `MainThread`), then the share of
samples in which each function is on the stack (inclusive) and at its top (self), of all
samples or, with `--under`, of those whose stack holds FUNC (a function name, e.g.
`_query_then_prefetch`): the parts of one stage; `--thread` keeps one thread kind.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """`verify (core/identify.py:93)` -> `verify (identify.py)`; other frames as they are."""
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    return f"{m['func']} ({Path(m['file']).name})"


_THREAD = re.compile(r"^thread \(\d+\): (?P<name>.*?)(?:_\d+)?$")

Stack = tuple[str, list[str], int]  # thread kind, frames, samples


def read(path: Path) -> list[Stack]:
    stacks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        thread = "?"
        if frames and (m := _THREAD.match(frames[0])) is not None:
            thread, frames = m["name"], frames[1:]
        if frames:
            stacks.append((thread, [frame_name(f) for f in frames], int(count)))
    return stacks


def _methods(frame: str, name: str) -> tuple[str, ...]:
    """`Identifier.verify` is found as `verify` too."""
    qualified = frame.split(" ")[0]
    return (qualified,) if qualified.endswith(f".{name}") else ()


def by_thread(stacks: list[Stack]) -> Counter[str]:
    threads: Counter[str] = Counter()
    for thread, _, count in stacks:
        threads[thread] += count
    return threads


def summary(stacks: list[Stack], under: str | None) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for _, frames, count in stacks:
        if under is not None:
            at = [i for i, f in enumerate(frames) if f.split(" ")[0] in (under, *_methods(f, under))]
            if not at:
                continue
            frames = frames[at[0] :]
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    return total, inclusive, own


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("stacks", type=Path)
    cli.add_argument("--under", help="only stacks holding this function, from it down")
    cli.add_argument("--thread", help="only this thread kind (ivr, group-writer, MainThread, ...)")
    cli.add_argument("--top", type=int, default=25)
    args = cli.parse_args()
    stacks = read(args.stacks)
    threads = by_thread(stacks)
    everything = sum(threads.values())
    print("by thread: " + ", ".join(f"{t} {100 * n / max(1, everything):.1f}%" for t, n in threads.most_common()))
    if args.thread:
        stacks = [s for s in stacks if s[0] == args.thread]
    total, inclusive, own = summary(stacks, args.under)
    print(f"{total} samples" + (f" under {args.under}" if args.under else ""))
    print(f"{'inclusive':>9} {'self':>6}  function")
    for name, count in inclusive.most_common(args.top):
        print(f"{100 * count / max(1, total):8.1f}% {100 * own[name] / max(1, total):5.1f}%  {name}")
    print("top of stack (self):")
    for name, count in own.most_common(args.top // 2):
        print(f"{100 * count / max(1, total):8.1f}%  {name}")


if __name__ == "__main__":
    main()
