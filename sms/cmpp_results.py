"""What CMPP's Status and Result codes mean and what a sender does about each: send
again later (temporary), give up on the message (permanent), or slow down (flow control).

CONNECT_RESP Status (CMPP 2.0/3.0 §6.3.2); SUBMIT_RESP Result (§6.3.4), which 3.0 extends
with 9-13; DELIVER_RESP uses 0-8 of the same words (§6.3.8). "9～ 其他错误" (2.0) and
"14～" (3.0) are errors the spec does not name: taken as temporary, so the sender's own
attempt limit decides, as for SMPP's ESME_RSYSERR.

>>> outcome(8, Version.V20)
Result(code=8, meaning='flow control error', kind='flow control')
>>> outcome(10, Version.V20).kind, outcome(10, Version.V30).kind
('temporary', 'permanent')
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

OK: Final = "ok"
TEMPORARY: Final = "temporary"
PERMANENT: Final = "permanent"
FLOW_CONTROL: Final = "flow control"


class Version(IntEnum):
    """CMPP_CONNECT's Version octet: the high nibble major, the low one minor (§6.3.1)."""

    V20 = 0x20
    V30 = 0x30


CONNECT_STATUS: Final = {
    0: "ok",
    1: "message structure error",
    2: "illegal source address",
    3: "authentication error",
    4: "version too high",
    5: "other error",
}


@dataclass(frozen=True)
class Result:
    code: int
    meaning: str
    kind: str  # OK, TEMPORARY, PERMANENT or FLOW_CONTROL


_RESULTS: Final = (
    Result(0, "ok", OK),
    Result(1, "message structure error", PERMANENT),
    Result(2, "command word error", PERMANENT),
    # Our fault, not the message's: the same text under a fresh Sequence_Id goes through.
    Result(3, "duplicate message sequence", TEMPORARY),
    Result(4, "message length error", PERMANENT),
    Result(5, "fee code error", PERMANENT),
    Result(6, "over max message length", PERMANENT),
    Result(7, "service code error", PERMANENT),
    Result(8, "flow control error", FLOW_CONTROL),
)
_RESULTS_30: Final = (
    Result(9, "this gateway does not serve the fee terminal", PERMANENT),
    Result(10, "Src_Id error", PERMANENT),
    Result(11, "Msg_src error", PERMANENT),
    Result(12, "Fee_terminal_Id error", PERMANENT),
    Result(13, "Dest_terminal_Id error", PERMANENT),
)
RESULTS: Final = {
    Version.V20: {r.code: r for r in _RESULTS},
    Version.V30: {r.code: r for r in _RESULTS + _RESULTS_30},
}


def outcome(code: int, version: Version) -> Result:
    """What a SUBMIT_RESP (or DELIVER_RESP) Result means in `version`."""
    return RESULTS[version].get(code) or Result(code, "other error", TEMPORARY)
