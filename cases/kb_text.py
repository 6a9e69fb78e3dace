"""The knowledge base's text work, pure: search terms from what an agent typed, and the
snippet of an article around the first match."""

from __future__ import annotations

import string

from cases.errors import BadQuery

MAX_QUERY = 100  # characters of a search text
MAX_TERMS = 8
SNIPPET = 80  # characters of body shown around the first hit
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def terms(text: str) -> list[str]:
    """The search terms of `text`: split at any whitespace (the ideographic space too),
    ASCII letters folded to lower case, each once. Raises BadQuery when empty or too long."""
    if len(text) > MAX_QUERY:
        raise BadQuery(f"the search text is longer than {MAX_QUERY} characters")
    found = list(dict.fromkeys(t.translate(_FOLD) for t in text.split()))
    if not found:
        raise BadQuery("the search text is empty")
    if len(found) > MAX_TERMS:
        raise BadQuery(f"more than {MAX_TERMS} search terms")
    return found


def _plain(body: str) -> str:
    """The body as one line of text, without Markdown's markers."""
    lines = (line.strip().lstrip("#>*-+ ").strip() for line in body.splitlines())
    return " ".join(line for line in lines if line).replace("**", "").replace("`", "")


def snippet(body: str, found: list[str]) -> tuple[tuple[str, bool], ...]:
    """About SNIPPET characters of the body around the first hit, cut into pieces that
    are hits or not (the desk marks the hits)."""
    plain = _plain(body)
    folded = plain.translate(_FOLD)  # same length: ASCII folding only
    first = min((i for i in (folded.find(t) for t in found) if i >= 0), default=0)
    start = max(0, first - SNIPPET // 4)
    end = min(len(plain), start + SNIPPET)
    window, low = plain[start:end], folded[start:end]
    hit = [False] * len(window)
    for t in found:
        at = low.find(t)
        while at >= 0:
            hit[at : at + len(t)] = [True] * len(t)
            at = low.find(t, at + 1)
    pieces: list[tuple[str, bool]] = [("…", False)] if start > 0 else []
    for ch, h in zip(window, hit, strict=True):
        if pieces and pieces[-1][1] == h and pieces[-1][0] != "…":
            pieces[-1] = (pieces[-1][0] + ch, h)
        else:
            pieces.append((ch, h))
    if end < len(plain):
        pieces.append(("…", False))
    return tuple(pieces)
