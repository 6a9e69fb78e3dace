"""Where the time went, from py-spy's collapsed stacks (`bench.fastagi_load --profile`).

    python -m bench.stacks OUT [--under FUNC] [--top 25]

Each line of OUT is one stack (frames joined by `;`, outermost first) and its sample
count. Printed: the share of samples in which each function is on the stack (inclusive)
and at its top (self), of all samples or, with `--under`, of those whose stack holds FUNC
(a function name, e.g. `_query_then_prefetch`): the parts of one stage.
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


def read(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append(([frame_name(f) for f in stack.split(";")], int(count)))
    return stacks


def summary(stacks: list[tuple[list[str], int]], under: str | None) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, count in stacks:
        if under is not None:
            names = [f.split(" ")[0] for f in frames]
            if under not in names:
                continue
            frames = frames[names.index(under) :]
        total += count
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
    return total, inclusive, own


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("stacks", type=Path)
    cli.add_argument("--under", help="only stacks holding this function, from it down")
    cli.add_argument("--top", type=int, default=25)
    args = cli.parse_args()
    total, inclusive, own = summary(read(args.stacks), args.under)
    print(f"{total} samples" + (f" under {args.under}" if args.under else ""))
    print(f"{'inclusive':>9} {'self':>6}  function")
    for name, count in inclusive.most_common(args.top):
        print(f"{100 * count / max(1, total):8.1f}% {100 * own[name] / max(1, total):5.1f}%  {name}")
    print("top of stack (self):")
    for name, count in own.most_common(args.top // 2):
        print(f"{100 * count / max(1, total):8.1f}%  {name}")


if __name__ == "__main__":
    main()
