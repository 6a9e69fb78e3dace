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


class Channel(StrEnum):
    """How a notice reaches a resident (`notice_preferences.channels`, `notices.channel`)."""

    SMS = "sms"
    VOICE = "voice"  # a call out that reads the notice (ivr/notice_calls.py)
    WECHAT = "wechat"  # a template message of the official account (sms/wechat.py)


class NoticeState(StrEnum):
    """One notice over the channels its subject chose (`notices.state`; core/notices.py)."""

    PENDING = "pending"  # its current channel is working on it
    ADVANCE = "advance"  # its current channel gave up: the gateway moves it to the next
    DELIVERED = "delivered"  # SMS receipt delivered, WeChat accepted, voice confirmed with 2
    HEARD = "heard"  # a voice call answered and played, no key pressed
    FAILED = "failed"  # every channel of its plan tried and failed


NOTICE_FINAL: Final = (NoticeState.DELIVERED, NoticeState.HEARD, NoticeState.FAILED)


class VoiceState(StrEnum):
    """A voice notice's call out (`voice_notices.status`)."""

    QUEUED = "queued"  # due at next_attempt_at (within calling hours)
    CALLING = "calling"  # claimed by a dialler; a call is placed or ringing
    CONFIRMED = "confirmed"  # the resident pressed 2
    HEARD = "heard"  # answered, the notice played to its end, no confirming key
    UNANSWERED = "unanswered"  # every attempt busy, unanswered or failed
    OPTED_OUT = "opted_out"  # the number asked not to be called (voice_optouts)
    CANCELLED = "cancelled"  # withdrawn before it was called


VOICE_FINAL: Final = (
    VoiceState.CONFIRMED,
    VoiceState.HEARD,
    VoiceState.UNANSWERED,
    VoiceState.OPTED_OUT,
    VoiceState.CANCELLED,
)


class WeChatState(StrEnum):
    """A WeChat template message (`wechat_messages.status`)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"  # WeChat answered errcode 0 (it gives no delivery receipt of its own)
    FAILED = "failed"  # with the reason: not following (43004), bad openid, refused ...
