"""Is a bind that answers still taking anything? A pure state machine, no I/O.

SMPP 3.4 §7.2's timers find a bind that answers nothing (`sms.smpp_link`); they cannot find
one that answers every submit_sm at once with a temporary error (§5.1.3: 0x14
ESME_RMSGQFUL, 0x58 ESME_RTHROTTLED, 0x08 ESME_RSYSERR, ...). An SMSC restarted behind a
connection that outlived it does exactly that, while its new listener would take a new
bind at once. Such a bind is *sick* once it has refused `refusals` submits in a row, or
refused everything for `after_s`, with nothing accepted in between: the transport then
unbinds it and binds again (to the next SMSC address, when the site lists several).

Answers that judge the message (a bad address, a bad length) neither count nor clear the
run: the SMSC read that message, which says nothing about whether it takes any.

    >>> h = BindHealth(refusals=3, after_s=30.0)
    >>> h.bound(0.0)
    >>> [h.answered(0x14, t) for t in (1.0, 2.0)]
    [None, None]
    >>> h.state.value, h.last_status
    ('refusing', 20)
    >>> h.answered(0x14, 3.0)
    Sick(refused=3, for_s=2.0, status=20)
    >>> h.state.value
    'rebinding'
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sms.status import ESME_ROK, ESME_RTHROTTLED, SLOW_DOWN, TEMPORARY


class LinkState(StrEnum):
    CONNECTING = "connecting"  # first connect and bind
    BOUND = "bound"  # the last answer accepted (or none yet)
    THROTTLED = "throttled"  # the last answer was ESME_RTHROTTLED: sending paused
    REFUSING = "refusing"  # temporary refusals in a row, nothing accepted since the first
    REBINDING = "rebinding"  # the bind was dropped (dead or sick) or lost: binding again
    STOPPED = "stopped"


REFUSALS = SLOW_DOWN | TEMPORARY


@dataclass(frozen=True)
class Sick:
    """Why a bind that answers is dropped: how many refusals in a row, over how long, and
    the status of the last one."""

    refused: int
    for_s: float
    status: int

    def __str__(self) -> str:
        return f"{self.refused} submit_sm refused in a row over {self.for_s:.1f} s, nothing accepted"


class BindHealth:
    """The state of one link, fed with what happens to it; `answered` says when it is sick."""

    def __init__(self, refusals: int, after_s: float) -> None:
        self.refusals = refusals
        self.after_s = after_s
        self.state = LinkState.CONNECTING
        self.since = 0.0  # when `state` was entered
        self.refused = 0  # temporary refusals in the current run
        self.first_refused_at: float | None = None
        self.last_status: int | None = None  # of the last refusal
        self.accepted = 0  # on this bind
        self.sick_binds = 0

    def _enter(self, state: LinkState, now: float) -> None:
        if state is not self.state:
            self.state, self.since = state, now

    def bound(self, now: float) -> None:
        """A new bind: nothing refused on it yet."""
        self.refused, self.first_refused_at, self.accepted = 0, None, 0
        self._enter(LinkState.BOUND, now)

    def lost(self, now: float) -> None:
        """The bind is gone (dropped, lost, or a bind attempt failed): binding again."""
        self._enter(LinkState.REBINDING, now)

    def stopped(self, now: float) -> None:
        self._enter(LinkState.STOPPED, now)

    def answered(self, status: int, now: float) -> Sick | None:
        """A submit_sm_resp (or generic_nack) with `status`; a `Sick` when this one makes
        the bind sick (once: the state is then `rebinding`)."""
        if self.state in (LinkState.REBINDING, LinkState.STOPPED, LinkState.CONNECTING):
            return None  # a late answer on a bind already given up
        if status == ESME_ROK:
            self.accepted += 1
            self.refused, self.first_refused_at = 0, None
            self._enter(LinkState.BOUND, now)
            return None
        if status not in REFUSALS:
            return None
        self.refused += 1
        self.last_status = status
        if self.first_refused_at is None:
            self.first_refused_at = now
        self._enter(LinkState.THROTTLED if status == ESME_RTHROTTLED else LinkState.REFUSING, now)
        for_s = now - self.first_refused_at
        if self.refused >= self.refusals or for_s >= self.after_s:
            self.sick_binds += 1
            self._enter(LinkState.REBINDING, now)
            return Sick(self.refused, for_s, status)
        return None
