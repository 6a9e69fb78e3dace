"""Asterisk's own records, parsed as Asterisk 22 writes them (shared/fixtures/asterisk22).

queue_log: `time|callid|queue|agent|event|data1|data2|...` (Asterisk's queue_log docs):
  ENTERQUEUE url|callerid|position          CONNECT holdtime|bridged uniqueid|ringtime
  COMPLETEAGENT / COMPLETECALLER holdtime|calltime|origposition
  ABANDON position|origposition|waittime    EXITWITHTIMEOUT position|origposition|waittime
  EXITEMPTY position|origposition|waittime  EXITWITHKEY key|position|origposition|waittime
  RINGNOANSWER ringtime
  BLINDTRANSFER exten|context|holdtime|calltime|origposition
  ATTENDEDTRANSFER BRIDGE|bridge id|holdtime|calltime|origposition (or APP|app|... or
    LINK|channel|channel|...: the target takes one or two fields, so the times are read from
    the end; app_queue.c's log_attended_transfer and handle_blind_transfer, Asterisk 22)
Master.csv (cdr-csv, Debian's cdr.conf: usegmtime, loguniqueid, loguserfield): 18 fields.
Only the row whose dst is 12333 is the caller's; its uniqueid is the callid in queue_log.

>>> parse_queue_log_line("1795835552|1795835549.16|support|Agent One|CONNECT|2|1795835550.18|2").event
'CONNECT'
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ivr.errors import AsteriskLogError

CDR_FIELDS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
    "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
)  # fmt: skip


@dataclass(frozen=True)
class QueueLogEvent:
    at: dt.datetime
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]


@dataclass(frozen=True)
class CdrRow:
    uniqueid: str
    accountcode: str  # asterisk.instance, set by our dialplan on every call into 12333
    src: str
    dst: str
    dcontext: str
    channel: str
    start: dt.datetime
    answer: dt.datetime | None
    end: dt.datetime
    duration: int
    billsec: int
    disposition: str
    userfield: str


def _epoch(text: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(text), dt.UTC)


def parse_queue_log_line(line: str) -> QueueLogEvent:
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 5 or not parts[0].isdigit():
        raise AsteriskLogError(f"not a queue_log line: {line[:80]!r}")
    return QueueLogEvent(_epoch(parts[0]), parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


def _cdr_time(text: str) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)


def parse_cdr_row(fields: list[str]) -> CdrRow:
    if len(fields) != len(CDR_FIELDS):
        raise AsteriskLogError(f"a Master.csv row has {len(fields)} fields, expected {len(CDR_FIELDS)}")
    row = dict(zip(CDR_FIELDS, fields, strict=True))
    try:
        start, end = _cdr_time(row["start"]), _cdr_time(row["end"])
        if start is None or end is None:
            raise ValueError("no start or end time")
        return CdrRow(
            row["uniqueid"],
            row["accountcode"],
            row["src"],
            row["dst"],
            row["dcontext"],
            row["channel"],
            start,
            _cdr_time(row["answer"]),
            end,
            int(row["duration"]),
            int(row["billsec"]),
            row["disposition"],
            row["userfield"],
        )
    except ValueError as exc:
        raise AsteriskLogError(f"bad Master.csv row for {row['uniqueid']!r}: {exc}") from exc


@dataclass
class Problems:
    """Lines that could not be read: counted and kept (first few) for the report, never fatal."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, where: str, exc: Exception) -> None:
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {exc}")


def read_queue_log(lines: Iterable[str], problems: Problems) -> Iterator[QueueLogEvent]:
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield parse_queue_log_line(line)
            except AsteriskLogError as exc:
                problems.add(f"queue_log line {n}", exc)


def read_master_csv(text: str, problems: Problems, hotline_exten: str) -> Iterator[CdrRow]:
    """The caller's rows only (dst is the hotline number); the Local legs are skipped."""
    for n, fields in enumerate(csv.reader(io.StringIO(text)), 1):
        if not fields:
            continue
        try:
            row = parse_cdr_row(fields)
        except AsteriskLogError as exc:
            problems.add(f"Master.csv line {n}", exc)
            continue
        if row.dst == hotline_exten:
            yield row


@dataclass
class CallFacts:
    """What Asterisk's records say of one call; absolute values, so folding twice is the same."""

    uniqueid: str
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    caller: str | None = None
    our_call_id: str | None = None  # CDR userfield: the IVR's call id, when the IVR ran
    queue: str | None = None
    queue_entered_at: dt.datetime | None = None
    queue_wait_s: int | None = None
    answered_at: dt.datetime | None = None
    agent: str | None = None
    talk_s: int | None = None
    ring_no_answer: int = 0
    disposition: str = "automated"
    # After an agent answered: agent_hangup | caller_hangup | transferred (and to where).
    queue_exit: str | None = None
    transferred_to: str | None = None


def _int(data: tuple[str, ...], i: int) -> int | None:
    return int(data[i]) if 0 <= i < len(data) and data[i].lstrip("-").isdigit() else None


QUEUE_ENDS = {"ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout", "EXITEMPTY": "timeout"}
NOT_CALLS = ("NONE", "MANAGER", "")
COMPLETED = {"COMPLETEAGENT": "agent_hangup", "COMPLETECALLER": "caller_hangup"}
TRANSFERS = ("BLINDTRANSFER", "ATTENDEDTRANSFER")
TRANSFER_TARGET_MAX = 80  # calls.transferred_to


def transfer_target(event: str, data: tuple[str, ...]) -> str:
    """Where a transfer sent the caller, from the fields before holdtime|calltime|origpos.

    >>> transfer_target("BLINDTRANSFER", ("2001", "desk", "12", "95", "1"))
    '2001@desk'
    >>> transfer_target("ATTENDEDTRANSFER", ("LINK", "PJSIP/1001-01", "PJSIP/2001-02", "12", "95", "1"))
    'link:PJSIP/1001-01,PJSIP/2001-02'
    """
    head = data[:-3]
    if event == "BLINDTRANSFER" or not head:
        return "@".join(head[:2])[:TRANSFER_TARGET_MAX]
    return f"{head[0].lower()}:{','.join(head[1:])}"[:TRANSFER_TARGET_MAX]


def _transferred(f: CallFacts, e: QueueLogEvent) -> None:
    # Talk time is the calltime app_queue counted up to the transfer: the agent's share.
    f.disposition, f.agent, f.queue_exit = "agent", e.agent, "transferred"
    f.queue_wait_s, f.talk_s = _int(e.data, len(e.data) - 3), _int(e.data, len(e.data) - 2)
    f.transferred_to = transfer_target(e.event, e.data)
    f.ended_at = f.ended_at or e.at


def _apply_event(f: CallFacts, e: QueueLogEvent) -> None:
    if e.event == "ENTERQUEUE":
        f.queue, f.queue_entered_at = e.queue, e.at
        f.caller = f.caller or (e.data[1] if len(e.data) > 1 and e.data[1] else None)
    elif e.event == "CONNECT":
        f.disposition, f.answered_at, f.agent = "agent", e.at, e.agent
        f.queue_wait_s = _int(e.data, 0)
    elif e.event in COMPLETED:
        f.disposition, f.agent, f.queue_exit = "agent", e.agent, COMPLETED[e.event]
        f.queue_wait_s, f.talk_s = _int(e.data, 0), _int(e.data, 1)
        f.ended_at = f.ended_at or e.at
    elif e.event in TRANSFERS and len(e.data) >= 4:
        _transferred(f, e)
    elif e.event in QUEUE_ENDS:
        f.disposition, f.queue_wait_s = QUEUE_ENDS[e.event], _int(e.data, 2)
        f.ended_at = f.ended_at or e.at
    elif e.event == "EXITWITHKEY":
        f.disposition, f.queue_wait_s = "callback", _int(e.data, 3)
        f.ended_at = f.ended_at or e.at
    elif e.event == "RINGNOANSWER":
        f.ring_no_answer += 1


def fold(events: Iterable[QueueLogEvent], cdrs: Iterable[CdrRow]) -> dict[str, CallFacts]:
    """One CallFacts per caller uniqueid, from queue_log events and the callers' CDR rows."""
    facts: dict[str, CallFacts] = {}
    for row in cdrs:
        f = facts.setdefault(row.uniqueid, CallFacts(row.uniqueid))
        f.started_at, f.ended_at = row.start, row.end
        f.caller = row.src or f.caller
        f.our_call_id = row.userfield or None
    for e in sorted(events, key=lambda e: e.at):
        # Member events carry no call: callid NONE, or MANAGER when an AMI action caused them
        # (ADDMEMBER, REMOVEMEMBER, PAUSE as app_queue logs a QueueAdd, seen in the fixtures).
        if e.callid in NOT_CALLS or e.event in ("QUEUESTART", "CONFIGRELOAD"):
            continue
        f = facts.setdefault(e.callid, CallFacts(e.callid))
        f.started_at = f.started_at or e.at
        _apply_event(f, e)
    return facts
