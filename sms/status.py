"""SMPP 3.4 command_status values we act on (§5.1.3), and how the gateway treats each."""

from __future__ import annotations

from typing import Final

ESME_ROK: Final = 0x00
ESME_RINVMSGLEN: Final = 0x01
ESME_RINVCMDLEN: Final = 0x02
ESME_RSYSERR: Final = 0x08
ESME_RINVSRCADR: Final = 0x0A
ESME_RINVDSTADR: Final = 0x0B
ESME_RMSGQFUL: Final = 0x14
ESME_RSUBMITFAIL: Final = 0x45
ESME_RTHROTTLED: Final = 0x58
ESME_RINVDCS: Final = 0x104
ESME_RUNKNOWNERR: Final = 0xFF

# The SMSC asks us to slow down: resubmit after a pause, never a failure of the message.
SLOW_DOWN: Final = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})
# Worth retrying with backoff: the SMSC's trouble, not the message's.
TEMPORARY: Final = frozenset({ESME_RSYSERR, ESME_RUNKNOWNERR})
# Anything else (bad address, bad length, bad coding...) fails the message at once.

NAMES: Final = {
    ESME_ROK: "ESME_ROK",
    ESME_RINVMSGLEN: "ESME_RINVMSGLEN",
    ESME_RINVCMDLEN: "ESME_RINVCMDLEN",
    ESME_RSYSERR: "ESME_RSYSERR",
    ESME_RINVSRCADR: "ESME_RINVSRCADR",
    ESME_RINVDSTADR: "ESME_RINVDSTADR",
    ESME_RMSGQFUL: "ESME_RMSGQFUL",
    ESME_RSUBMITFAIL: "ESME_RSUBMITFAIL",
    ESME_RTHROTTLED: "ESME_RTHROTTLED",
    ESME_RINVDCS: "ESME_RINVDCS",
    ESME_RUNKNOWNERR: "ESME_RUNKNOWNERR",
}


def status_name(status: int) -> str:
    """ "0x14 ESME_RMSGQFUL"; the bare code for one not named here."""
    name = NAMES.get(status)
    return f"0x{status:02X} {name}" if name else f"0x{status:02X}"
