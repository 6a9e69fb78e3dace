"""Delivery receipts: the SMPP 3.4 Appendix B text of a `deliver_sm` with esm_class bit
2 set, and message ids made comparable across the forms SMSCs use.

An SMSC may answer `submit_sm` with a hex id ("1A2B3C") and quote it in the receipt in
decimal ("1715004"), with or without leading zeros, in either case. `canonical(id, base)`
turns both into the same key once the link's bases are known (`smpp.submit_id_base`,
`smpp.receipt_id_base`: 16, 10, or 0 for opaque text compared without case and leading
zeros). The receipted_message_id TLV, when present, is used before the text's `id:`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

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


def receipt_text(message_id: str, stat: str, err: str = "000", when: str = "2611280000") -> str:
    """The Appendix B text an SMSC sends (the simulator's, and tests')."""
    delivered = "001" if stat == "DELIVRD" else "000"
    return f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{when} done date:{when} stat:{stat} err:{err} text:"
