"""Delivery receipts: the SMPP 3.4 Appendix B text of a `deliver_sm` with esm_class bit
2 set, and message ids made comparable across the forms SMSCs use.

An SMSC may answer `submit_sm` with a hex id ("1A2B3C") and quote it in the receipt in
decimal ("1715004"), or in hex again ("001a2b3c"), with or without leading zeros, in either
case. `canonical(id, base)` turns both into the same key once the link's bases are known
(`smpp.submit_id_base`, `smpp.receipt_id_base`: 16, 10, or 0 for opaque text compared
without case and leading zeros). The receipts' base need not be set: `ReceiptIds` learns
it per link from the first receipts that match a recent `submit_sm_resp`. The
receipted_message_id TLV, when present, is used before the text's `id:`.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.errors import HotlineError


class BadReceipt(HotlineError):
    """A deliver_sm that claims to be a receipt but cannot be read as one."""


class FinalState(StrEnum):
    """A message's final state (SMPP 3.4 §5.2.28 message_state, as receipts spell it)."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    REJECTED = "rejected"
    DELETED = "deleted"
    UNKNOWN = "unknown"


# The `stat:` words of Appendix B, and the states our store keeps.
STAT_WORDS = {
    "DELIVRD": FinalState.DELIVERED,
    "UNDELIV": FinalState.UNDELIVERED,
    "EXPIRED": FinalState.EXPIRED,
    "REJECTD": FinalState.REJECTED,
    "DELETED": FinalState.DELETED,
    "UNKNOWN": FinalState.UNKNOWN,
}
ACCEPTD = "ACCEPTD"  # an intermediate state: not final
_FIELD = re.compile(r"(id|sub|dlvrd|submit date|done date|stat|err):\s*(\S*)", re.IGNORECASE)


def canonical(message_id: str, base: int) -> str:
    """The comparable form of an id written in `base` (16, 10, or 0 for opaque text).

    >>> canonical("001A2B", 16) == canonical("6699", 10) == "6699"
    True
    >>> canonical("00AbC", 0)
    'abc'
    """
    raw = message_id.strip()
    if base in (10, 16):
        try:
            return str(int(raw, base))
        except ValueError:
            raise BadReceipt(f"message id {raw[:40]!r} is not a base-{base} number") from None
    if base != 0:
        raise ValueError("base is 16, 10 or 0")
    return raw.lower().lstrip("0") or "0"


@dataclass(frozen=True)
class Receipt:
    message_id: str  # as the SMSC wrote it
    stat: str
    state: FinalState | None  # None while not final (ACCEPTD, ENROUTE)
    err: str


def parse_receipt(text: str, receipted_message_id: str | None = None) -> Receipt:
    """Read `id:... sub:... dlvrd:... submit date:... done date:... stat:... err:... text:...`."""
    fields = {k.lower(): v for k, v in _FIELD.findall(text.split(" text:", 1)[0])}
    message_id = receipted_message_id or fields.get("id", "")
    stat = fields.get("stat", "").upper()
    if not message_id or not stat:
        raise BadReceipt(f"receipt without id or stat: {text[:80]!r}")
    return Receipt(message_id, stat, STAT_WORDS.get(stat), fields.get("err", ""))


LEARN_FROM = 3  # votes one base needs over the other before it is taken for the link
REMEMBER = 4096  # submissions, receipts and open questions kept while learning


@dataclass(eq=False)  # each question is its own, whatever it holds
class _Question:
    """A receipt's id read in two bases: which readings a submission has matched so far."""

    readings: dict[int, str]
    due: int  # resolved once this many submissions have been seen
    matched: set[int]


class ReceiptIds:
    """The key a receipt's message id is recorded under, for one SMPP link.

    With `fixed` (`smpp.receipt_id_base`) or opaque submission ids, that base. Else the
    base is learnt from the receipts: each id is read in every base it parses in (10,
    16), and each reading looked for among the submissions recorded lately
    (`submitted()`) and those recorded in the next `confirm_after` (a receipt may come
    before its `submit_sm_resp`). The right reading always matches; the other only by
    coincidence. So a receipt whose readings, once `confirm_after` submissions have gone
    by, matched in one base alone is a vote for it (at once for an id with hex letters),
    and LEARN_FROM more votes for one base than for the other choose it.

    Until then a receipt is recorded under the reading that matches alone, else the
    leading base's (10 when it parses, as before learning existed), and kept: once the base
    is chosen, `corrections()` gives back those recorded under another reading.

    >>> ids = ReceiptIds(16, None)
    >>> for n in (26, 27, 28):  # submit_sm_resp "1A" to "1C", receipts "0000001a" to "0000001c"
    ...     ids.submitted(canonical(f"{n:X}", 16))
    ...     _ = ids.key(f"{n:08x}", "delivered")
    >>> ids.base, ids.corrections()
    (16, [])
    """

    def __init__(self, submit_base: int, fixed: int | None, confirm_after: int = 100) -> None:
        self.base: int | None = fixed if fixed is not None else (0 if submit_base == 0 else None)
        self.confirm_after = confirm_after
        self.votes: Counter[int] = Counter()
        self.learnt: str | None = None  # how the base was learnt, until the caller has said so
        self._count = 0  # submissions seen
        self._submitted: dict[str, None] = {}  # canonical ids, oldest first
        self._questions: deque[_Question] = deque()
        self._open: dict[str, tuple[_Question, int]] = {}  # unmatched reading -> its question, base
        self._recorded: dict[str, tuple[str, str]] = {}  # raw id -> (key recorded under, state)
        self._corrections: list[tuple[str, str]] = []

    def key(self, raw: str, state: str) -> str:
        """The canonical id to record a final receipt's `raw` id under."""
        if self.base is not None:
            return canonical(raw, self.base)
        readings = _readings(raw)
        if len(readings) > 1 and len(set(readings.values())) == 1:
            return readings[10]  # the readings agree ("0007"): right whatever the base
        matched = {base for base, key in readings.items() if key in self._submitted}
        if matched and len(readings) == 1:  # "1a" matching a submission: it can only be hex
            self._vote(next(iter(matched)))
            return readings[next(iter(matched))]
        question = _Question(readings, self._count + self.confirm_after, matched)
        self._questions.append(question)
        if len(self._questions) > REMEMBER:  # receipts and no submissions: the oldest unresolved
            self._questions.popleft()
        for base, key in readings.items():
            if base not in matched:
                self._open[key] = (question, base)
        candidates = matched or set(readings)
        chosen = readings[min(candidates, key=lambda base: (-self.votes[base], base))]
        self._recorded[raw] = (chosen, state)
        _trim(self._open, self._recorded)
        return chosen

    def submitted(self, smsc_id: str) -> None:
        """A segment recorded with the canonical `smsc_id`."""
        if self.base is not None:
            return
        self._count += 1
        self._submitted[smsc_id] = None
        _trim(self._submitted)
        if (opened := self._open.pop(smsc_id, None)) is not None:
            question, base = opened
            question.matched.add(base)
            if len(question.readings) == 1:  # "1a", come before its submission: hex, no doubt
                question.due = self._count
        while self.base is None and self._questions and self._questions[0].due <= self._count:
            self._resolve(self._questions.popleft())
        if opened is not None and opened[0].due <= self._count and opened[0] in self._questions:
            self._questions.remove(opened[0])  # out of turn (rare: a few while learning)
            self._resolve(opened[0])

    def _resolve(self, question: _Question) -> None:
        for key in question.readings.values():
            self._open.pop(key, None)
        if len(question.matched) == 1 and self.base is None:
            self._vote(next(iter(question.matched)))

    def corrections(self) -> list[tuple[str, str]]:
        """Receipts (canonical id, state) recorded, before the base was learnt, under a
        reading other than the learnt one: to be recorded again. Each is given once."""
        out, self._corrections = self._corrections, []
        return out

    def _vote(self, base: int) -> None:
        self.votes[base] += 1
        others = max((n for b, n in self.votes.items() if b != base), default=0)
        if self.votes[base] - others < LEARN_FROM:
            return
        self.base = base
        self.learnt = ", ".join(f"{n} for base {b}" for b, n in sorted(self.votes.items()))
        for raw, (recorded_as, state) in self._recorded.items():
            right = _readings(raw).get(base, recorded_as)
            if right != recorded_as:
                self._corrections.append((right, state))
        self._submitted.clear()
        self._questions.clear()
        self._open.clear()
        self._recorded.clear()


def _readings(raw: str) -> dict[int, str]:
    """`raw` read in each base it parses in: {10: ..., 16: ...}."""
    out = {}
    for base in (10, 16):
        try:
            out[base] = canonical(raw, base)
        except BadReceipt:
            continue
    if not out:
        raise BadReceipt(f"message id {raw.strip()[:40]!r} is neither decimal nor hex")
    return out


def _trim(*kept: dict[str, Any]) -> None:
    for memory in kept:
        while len(memory) > REMEMBER:
            del memory[next(iter(memory))]


def receipt_text(message_id: str, stat: str, err: str = "000", when: str = "2611280000") -> str:
    """The Appendix B text an SMSC sends (the simulator's, and tests')."""
    delivered = "001" if stat == "DELIVRD" else "000"
    return f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{when} done date:{when} stat:{stat} err:{err} text:"
