"""The states of business events and SMS messages: one name each, for every room.

They are stored as these strings (`business_events.status`, `sms_messages.status`,
`sms_segments.state`); the SMS gateway writes them and the reports read them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class EventState(StrEnum):
    PENDING = "pending"  # as the business system inserted it
    QUEUED = "queued"  # its messages are made
    FAILED = "failed"  # with its reason: malformed, no recipient, unknown type ...


class MessageState(StrEnum):
    QUEUED = "queued"  # due at next_attempt_at
    SENDING = "sending"  # claimed by a dispatcher
    SUBMITTED = "submitted"  # the SMSC took every segment; waiting for the receipt
    SKIPPED = "skipped"  # the number opted out of this category
    FAILED = "failed"  # refused for good before the SMSC took it
    # The final states a receipt gives (SMPP 3.4 §5.2.28 message_state).
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    REJECTED = "rejected"
    DELETED = "deleted"
    UNKNOWN = "unknown"


IN_FLIGHT: Final = (MessageState.QUEUED, MessageState.SENDING, MessageState.SUBMITTED)
FINAL: Final = tuple(s for s in MessageState if s not in IN_FLIGHT)
NOT_DELIVERED: Final = (
    MessageState.FAILED,
    MessageState.UNDELIVERED,
    MessageState.EXPIRED,
    MessageState.REJECTED,
    MessageState.DELETED,
)


class DialState(StrEnum):
    """How a callback's last call out went (`callbacks.dial_state`; ivr/outbound.py)."""

    DIALING = "dialing"  # placed: the agent's phone rings, then the resident's
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    LINES_FULL = "lines_full"  # refused: sip.outbound_channels calls out already up
    FAILED = "failed"  # anything else: the agent did not answer, the carrier refused ...
