"""queue_log and Master.csv as Asterisk 22.10 wrote them here (tests/fixtures, from shared/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.asterisk_logs import Problems, fold, parse_queue_log_line, read_master_csv, read_queue_log
from ivr.errors import AsteriskLogError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def facts() -> dict:  # type: ignore[type-arg]
    problems = Problems()
    with (FIXTURES / "queue_log.sample").open(encoding="utf-8") as fh:
        events = list(read_queue_log(fh, problems))
    cdrs = list(read_master_csv((FIXTURES / "Master.csv.sample").read_text(encoding="utf-8"), problems, "12333"))
    assert problems.count == 0
    assert len(cdrs) == 2  # the Local legs' rows are not callers
    return fold(events, cdrs)


def test_answered_call_has_wait_talk_and_agent() -> None:
    f = facts()["1795835802.20"]
    assert (f.disposition, f.queue, f.agent, f.queue_wait_s, f.talk_s) == ("agent", "support", "Agent One", 2, 4)
    assert f.caller == "13812345678"
    assert (f.ended_at - f.started_at).total_seconds() == 7  # type: ignore[operator]
    assert f.answered_at is not None and f.queue_entered_at is not None
    assert (f.answered_at - f.queue_entered_at).total_seconds() == 2


def test_abandoned_call_has_its_wait() -> None:
    f = facts()["1795835496.14"]
    assert (f.disposition, f.queue_wait_s, f.agent, f.talk_s) == ("abandoned", 30, None, None)


def test_queue_start_is_not_a_call() -> None:
    assert set(facts()) == {"1795835496.14", "1795835549.16", "1795835802.20"}


@pytest.mark.parametrize(
    ("line", "disposition", "wait"),
    [
        ("1795835900|1.1|q|NONE|EXITWITHTIMEOUT|1|1|60", "timeout", 60),
        ("1795835900|1.1|q|NONE|EXITEMPTY|1|1|3", "timeout", 3),
        ("1795835900|1.1|q|NONE|EXITWITHKEY|1|1|1|45", "callback", 45),
    ],
)
def test_other_ways_out_of_the_queue(line: str, disposition: str, wait: int) -> None:
    enter = parse_queue_log_line("1795835800|1.1|q|NONE|ENTERQUEUE||13800000000|1")
    f = fold([enter, parse_queue_log_line(line)], [])["1.1"]
    assert (f.disposition, f.queue_wait_s, f.caller) == (disposition, wait, "13800000000")


def test_ring_no_answer_is_counted() -> None:
    lines = [
        "1795835800|1.1|q|NONE|ENTERQUEUE|||1",
        "1795835815|1.1|q|Agent Two|RINGNOANSWER|15000",
        "1795835817|1.1|q|Agent One|CONNECT|17|1.2|2",
        "1795835877|1.1|q|Agent One|COMPLETECALLER|17|60|1",
    ]
    f = fold([parse_queue_log_line(x) for x in lines], [])["1.1"]
    assert (f.ring_no_answer, f.agent, f.queue_wait_s, f.talk_s) == (1, "Agent One", 17, 60)


def test_bad_lines_are_counted_not_fatal() -> None:
    problems = Problems()
    events = list(read_queue_log(["garbage\n", "1795835800|1.1|q|NONE|ENTERQUEUE|||1\n", "12|x\n"], problems))
    rows = list(
        read_master_csv(
            '"a","b"\n"","","12333","x","","c","","","","bad","","bad",1,1,"A","D","1.1",""\n', problems, "12333"
        )
    )
    assert len(events) == 1 and rows == [] and problems.count == 4
    with pytest.raises(AsteriskLogError):
        parse_queue_log_line("not|a|line")


@pytest.mark.parametrize(
    ("last", "target"),
    [
        ("BLINDTRANSFER|2001|hotline-desk|17|95|1", "2001@hotline-desk"),
        (
            "ATTENDEDTRANSFER|BRIDGE|6c2e9f0a-4a1b-4c77-9b2e-52f6a1d0c3e1|17|95|1",
            "bridge:6c2e9f0a-4a1b-4c77-9b2e-52f6a1d0c3e1",
        ),
        ("ATTENDEDTRANSFER|APP|Voicemail|17|95|1", "app:Voicemail"),
        (
            "ATTENDEDTRANSFER|LINK|Local/2001@desk-0001;1|PJSIP/1001-0002|17|95|1",
            "link:Local/2001@desk-0001;1,PJSIP/1001-0002",
        ),
    ],
)
def test_a_transferred_call_keeps_its_talk_time(last: str, target: str) -> None:
    """app_queue writes holdtime|calltime|origpos last whatever the target's width; the
    calltime up to the transfer is the agent's talk time."""
    lines = [
        "1795835800|1.1|q|NONE|ENTERQUEUE||13800000000|1",
        "1795835817|1.1|q|Agent One|CONNECT|17|1.2|2",
        "1795835912|1.1|q|Agent One|" + last,
    ]
    f = fold([parse_queue_log_line(x) for x in lines], [])["1.1"]
    assert (f.disposition, f.agent, f.queue_wait_s, f.talk_s) == ("agent", "Agent One", 17, 95)
    assert (f.queue_exit, f.transferred_to) == ("transferred", target)
    assert f.ended_at is not None


def test_half_a_year_with_transfers_counts_every_agent_minute() -> None:
    """One call in twenty transferred: before, their talk time was lost (4.9 % of the minutes)."""
    lines = []
    for n in range(1000):
        uid, t = f"1795800000.{n}", 1795800000 + 1000 * n
        end = "BLINDTRANSFER|2001|desk" if n % 20 == 0 else "COMPLETEAGENT"
        lines += [
            f"{t}|{uid}|q|NONE|ENTERQUEUE|||1",
            f"{t + 10}|{uid}|q|A|CONNECT|10|x|1",
            f"{t + 200}|{uid}|q|A|{end}|10|190|1",
        ]
    facts = fold([parse_queue_log_line(x) for x in lines], [])
    assert sum(f.talk_s or 0 for f in facts.values()) == 1000 * 190
    assert sum(f.queue_exit == "transferred" for f in facts.values()) == 50
    assert {f.disposition for f in facts.values()} == {"agent"}
