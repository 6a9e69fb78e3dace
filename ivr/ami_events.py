"""AMI events to call records, without I/O: a parser for the AMI byte stream and a tracker
that folds queue events into the same `CallFacts` that `hotline calls import` writes.

Event and header names follow Asterisk 22's AMI event documentation and the stream a real
Asterisk 22.10 sent here (shared/fixtures/asterisk22/ami-queue-call.txt). Where a header
repeats in one message (TestEvent's State), the first wins: for queue events that keeps
`Uniqueid` the caller's and leaves the agent's leg in `DestUniqueid`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ivr.asterisk_logs import TRANSFER_TARGET_MAX, CallFacts
from ivr.dialplan import USEREVENT_QUEUE_EXIT

Message = dict[str, str]


@dataclass
class AmiParser:
    """Feed bytes as they arrive; get whole messages (blank-line separated, CRLF or LF)."""

    _buffer: bytes = b""
    banner: str | None = None

    def feed(self, data: bytes) -> list[Message]:
        # Normalise the whole (small, partial) buffer: a CRLF may be split across two reads.
        self._buffer = (self._buffer + data).replace(b"\r\n", b"\n")
        if self.banner is None and b"\n" in self._buffer:
            first, _, rest = self._buffer.partition(b"\n")
            if first.startswith(b"Asterisk Call Manager/"):
                self.banner, self._buffer = first.decode("utf-8", "replace"), rest
            else:
                self.banner = ""
        messages = []
        while b"\n\n" in self._buffer:
            block, _, self._buffer = self._buffer.partition(b"\n\n")
            message: Message = {}
            for line in block.decode("utf-8", "replace").split("\n"):
                key, sep, value = line.partition(": ")
                if not sep and line.endswith(":"):
                    key, sep, value = line[:-1], ":", ""
                if sep and key not in message:
                    message[key] = value
            if message:
                messages.append(message)
        return messages


def _int(message: Message, key: str) -> int | None:
    value = message.get(key, "")
    return int(value) if value.lstrip("-").isdigit() else None


# AgentComplete's Reason (app_queue's send_agent_complete: caller, agent, transfer), named
# as the queue_log import names COMPLETECALLER, COMPLETEAGENT and the *TRANSFER events.
COMPLETE_REASONS = {"caller": "caller_hangup", "agent": "agent_hangup", "transfer": "transferred"}


def transfer_target(msg: Message) -> str | None:
    """Where a BlindTransfer or AttendedTransfer event sent the transferee, written as the
    queue_log import writes it (`exten@context`, `bridge:ID`, `app:NAME`, `link:CHAN,CHAN`)."""
    if msg.get("Result") != "Success":
        return None
    if msg.get("Event") == "BlindTransfer":
        text = f"{msg.get('Extension', '')}@{msg.get('Context', '')}"
    else:
        kind = msg.get("DestType", "")
        parts = {
            "Bridge": [msg.get("DestBridgeUniqueid", "")],
            "App": [msg.get("DestApp", "")],
            "Link": [msg.get("LocalOneChannel", ""), msg.get("LocalTwoChannel", "")],
        }.get(kind)
        if parts is None:
            return None
        text = f"{kind.lower()}:{','.join(parts)}"
    return text[:TRANSFER_TARGET_MAX]


AGENT_EVENTS = ("AgentConnect", "AgentComplete", "AgentRingNoAnswer", "BlindTransfer", "AttendedTransfer")


def _agent_event(facts: CallFacts, msg: Message, now: dt.datetime) -> None:
    event = msg.get("Event")
    if event == "AgentConnect":
        facts.disposition, facts.answered_at = "agent", now
        facts.agent, facts.queue_wait_s = msg.get("MemberName"), _int(msg, "HoldTime")
    elif event == "AgentComplete":
        # TalkTime runs to the transfer when Reason is transfer: the agent's share of the call.
        facts.queue_wait_s, facts.talk_s = _int(msg, "HoldTime"), _int(msg, "TalkTime")
        facts.queue_exit = COMPLETE_REASONS.get(msg.get("Reason", ""))
    elif event == "AgentRingNoAnswer":
        facts.ring_no_answer += 1
    else:
        facts.transferred_to = transfer_target(msg) or facts.transferred_to


# How long a call an agent answered waits after its Hangup for its AgentComplete (talk time,
# who hung up): app_queue sends that from its own subscription, and on a busy Asterisk it
# came after the caller's Hangup (a record without talk time).
COMPLETE_GRACE = dt.timedelta(seconds=3)
LATE_KEPT = 256  # calls given up on whose AgentComplete may still come


@dataclass
class CallTracker:
    """Follows callers from QueueCallerJoin to their Hangup; returns each finished call.

    A call an agent answered is finished by its Hangup and its AgentComplete, whichever
    comes last; one whose AgentComplete has not come `COMPLETE_GRACE` after its Hangup is
    given up by `overdue` without it (queue_log's import completes the record later)."""

    calls: dict[str, CallFacts] = field(default_factory=dict)
    left: set[str] = field(default_factory=set)
    late: dict[str, CallFacts] = field(default_factory=dict)  # given up on (`overdue`), newest last

    def feed(self, msg: Message, now: dt.datetime) -> CallFacts | None:
        event = msg.get("Event")
        uid = msg.get("Uniqueid", "")
        if event in ("BlindTransfer", "AttendedTransfer"):
            # The caller is the transferee; the event carries no Uniqueid of its own.
            uid = msg.get("TransfereeUniqueid", "")
        if event == "QueueCallerJoin":
            caller = msg.get("CallerIDNum")
            self.calls[uid] = CallFacts(
                uid,
                started_at=now,
                queue=msg.get("Queue"),
                queue_entered_at=now,
                disposition="timeout",
                caller=caller if caller and caller != "<unknown>" else None,
            )
            return None
        facts = self.calls.get(uid)
        if facts is None:
            return self._late_complete(uid, msg, now) if event == "AgentComplete" else None
        if event in AGENT_EVENTS:
            _agent_event(facts, msg, now)
            if event == "AgentComplete" and facts.ended_at is not None:  # hung up already
                return self.calls.pop(uid)
        elif event == "UserEvent" and msg.get("UserEvent") == USEREVENT_QUEUE_EXIT:
            # Queue() returned with the caller still on the line: unless an agent answered,
            # the queue gave up on them (timeout, emptied), whatever QueueCallerAbandon said.
            if facts.answered_at is None and msg.get("HotlineStatus") != "CONTINUE":
                facts.disposition = "timeout"
        elif event == "QueueCallerAbandon":
            facts.disposition, facts.queue_wait_s = "abandoned", _int(msg, "HoldTime")
        elif event == "QueueCallerLeave":
            self.left.add(uid)
            if facts.answered_at is None and facts.queue_entered_at is not None:
                # Left without an answer and without hanging up: the queue timed out on them.
                facts.queue_wait_s = facts.queue_wait_s or int((now - facts.queue_entered_at).total_seconds())
        elif event == "Hangup" and facts.ended_at is None:
            return self._hung_up(uid, facts, now)
        return None

    def _late_complete(self, uid: str, msg: Message, now: dt.datetime) -> CallFacts | None:
        """An AgentComplete come after the grace: the record, written without it, completed."""
        facts = self.late.pop(uid, None)
        if facts is not None:
            _agent_event(facts, msg, now)
        return facts

    def _hung_up(self, uid: str, facts: CallFacts, now: dt.datetime) -> CallFacts | None:
        facts.ended_at = now
        self.left.discard(uid)
        if facts.answered_at is not None and facts.queue_exit is None and facts.talk_s is None:
            return None  # kept, hung up (ended_at): its AgentComplete is still to come
        return self.calls.pop(uid)

    def overdue(self, now: dt.datetime) -> list[CallFacts]:
        """The calls that hung up `COMPLETE_GRACE` ago or longer and are still waiting for
        their AgentComplete: finished without it, their talk time measured from the agent's
        answer to the hang-up as the events came (queue_log's import puts app_queue's own
        figure and who hung up in their place later)."""
        due = [uid for uid, f in self.calls.items() if f.ended_at is not None and f.ended_at + COMPLETE_GRACE <= now]
        finished = [self.calls.pop(uid) for uid in due]
        for facts in finished:
            if facts.answered_at is not None and facts.ended_at is not None:
                facts.talk_s = max(0, int((facts.ended_at - facts.answered_at).total_seconds()))
            self.late[facts.uniqueid] = facts
        while len(self.late) > LATE_KEPT:
            self.late.pop(next(iter(self.late)))
        return finished

    def forget(self, uid: str) -> None:
        self.calls.pop(uid, None)
        self.left.discard(uid)

    def closing(self, uid: str) -> bool:
        """Whether call `uid` hung up and waits for its AgentComplete."""
        facts = self.calls.get(uid)
        return facts is not None and facts.ended_at is not None

    def waiting(self) -> list[tuple[str, dt.datetime]]:
        """The callers in a queue now: (queue, since when), longest waiting first."""
        out = [
            (f.queue or "", f.queue_entered_at)
            for uid, f in self.calls.items()
            if uid not in self.left and f.answered_at is None and f.queue_entered_at is not None
        ]
        return sorted(out, key=lambda w: w[1])


# Device states (DeviceStateChange, class call; Asterisk's devicestate names) under which
# a PJSIP device has no reachable contact: chan_pjsip reports UNAVAILABLE for an endpoint
# with no registered or no qualified contact, INVALID for an endpoint that does not exist.
NOT_REACHABLE = ("UNAVAILABLE", "INVALID")
PJSIP_PREFIX = "PJSIP/"


@dataclass
class DeviceStates:
    """The state of each PJSIP device, from DeviceStateChange events (live) and the
    DeviceStateList reply after each login (a sequence of the same events)."""

    states: dict[str, str] = field(default_factory=dict)

    def feed(self, msg: Message) -> bool:
        """Take a DeviceStateChange of a PJSIP device; True if it was one."""
        device = msg.get("Device", "")
        if msg.get("Event") != "DeviceStateChange" or not device.startswith(PJSIP_PREFIX):
            return False
        self.states[device] = msg.get("State", "UNKNOWN")
        return True

    def phone_registered(self, interface: str) -> bool | None:
        """Whether the phone behind a queue member `PJSIP/<endpoint>` is registered and
        reachable; None when it is not a PJSIP phone or its state is not known yet.

        >>> d = DeviceStates({"PJSIP/1001": "NOT_INUSE", "PJSIP/1002": "UNAVAILABLE"})
        >>> d.phone_registered("PJSIP/1001"), d.phone_registered("PJSIP/1002"), d.phone_registered("Local/1@x")
        (True, False, None)
        """
        if not interface.startswith(PJSIP_PREFIX):
            return None
        state = self.states.get(interface)
        if state is None or state == "UNKNOWN":
            return None
        return state not in NOT_REACHABLE


def failed_originate(msg: Message, prefix: str) -> tuple[int, str] | None:
    """(our id, Asterisk's Reason) of an OriginateResponse failure whose ActionID is
    `prefix` + that id: how a call the platform placed never answered.

    >>> failed_originate({"Event": "OriginateResponse", "ActionID": "x-7", "Response": "Failure", "Reason": "3"}, "x-")
    (7, '3')
    >>> failed_originate({"Event": "OriginateResponse", "ActionID": "y-7", "Response": "Failure"}, "x-")
    """
    action = msg.get("ActionID", "")
    raw = action.removeprefix(prefix)
    if msg.get("Event") != "OriginateResponse" or msg.get("Response") != "Failure":
        return None
    return (int(raw), msg.get("Reason", "")) if action.startswith(prefix) and raw.isdigit() else None
