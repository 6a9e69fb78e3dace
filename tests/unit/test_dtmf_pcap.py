"""The carrier's keys as SIPp plays them: a pcap of RFC 4733 telephone-events, read back."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.sip_peers.dtmf_pcap import (
    CLOCK_HZ,
    GAP_MS,
    KEY_MS,
    PT_EVENT,
    PT_PCMA,
    BadKeys,
    RtpPacket,
    TelephoneEvent,
    dtmf_pcap,
    read_pcap,
)


def _events(packets: list[RtpPacket]) -> list[list[RtpPacket]]:
    """The event packets grouped by event (by timestamp, in order)."""
    events = [p for p in packets if p.payload_type == PT_EVENT]
    return [list(group) for _, group in itertools.groupby(events, key=lambda p: p.timestamp)]


def test_a_repeated_key_is_two_events_with_their_own_timestamps(tmp_path: Path) -> None:
    """SIPp's shipped pcaps reuse timestamps, and Asterisk drops the repeated key."""
    path = tmp_path / "keys.pcap"
    length_ms = dtmf_pcap(path, "11w*#")
    packets = read_pcap(path)
    events = _events(packets)
    decoded = [[p.event for p in event if p.event] for event in events]
    assert [payloads[0].event for payloads in decoded] == [1, 1, 10, 11]
    for event, payloads in zip(events, decoded, strict=True):
        assert [p.marker for p in event] == [True] + [False] * (len(event) - 1)
        durations = [e.duration for e in payloads]
        assert durations == sorted(durations) and durations[-1] == KEY_MS * CLOCK_HZ // 1000
        # The final duration three times, with the E bit (RFC 4733 §2.5.1.4).
        assert [e.end for e in payloads] == [False] * (len(payloads) - 3) + [True] * 3
        assert len(set(durations[-3:])) == 1
        assert all(e.volume == 10 for e in payloads)
        # 20 ms apart on the wire
        assert [b.at_ms - a.at_ms for a, b in itertools.pairwise(event)] == [20] * (len(event) - 1)
    starts = [event[0].timestamp for event in events]
    assert starts == sorted(set(starts))
    # The pause: 0.5 s more between the second and third key than between the first two.
    gaps = [(b - a) * 1000 // CLOCK_HZ for a, b in itertools.pairwise(starts)]
    assert gaps[0] == gaps[2] >= KEY_MS + GAP_MS and gaps[1] - gaps[0] == 500
    assert packets[-1].at_ms + 20 == length_ms


def test_one_stream_with_silence_between_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.pcap"
    dtmf_pcap(path, "5W5")
    packets = read_pcap(path)
    seqs = [p.seq for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    assert len({p.ssrc for p in packets}) == 1
    assert {p.payload_type for p in packets} == {PT_EVENT, PT_PCMA}
    # Every 20 ms a packet, from the first to the last: audio where no key sounds.
    assert [p.at_ms for p in packets] == list(range(0, packets[-1].at_ms + 1, 20))
    audio = [p for p in packets if p.payload_type == PT_PCMA]
    assert all(len(p.payload) == 160 for p in audio)
    assert all((b.timestamp - a.timestamp) == (b.at_ms - a.at_ms) * 8 for a, b in itertools.pairwise(audio))


def test_without_silence_only_the_events(tmp_path: Path) -> None:
    path = tmp_path / "keys.pcap"
    dtmf_pcap(path, "12", silence=False)
    packets = read_pcap(path)
    assert {p.payload_type for p in packets} == {PT_EVENT}
    assert [e[0].event for e in _events(packets)] == [
        TelephoneEvent(1, False, 10, 160),
        TelephoneEvent(2, False, 10, 160),
    ]


def test_keys_outside_the_keypad_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadKeys):
        dtmf_pcap(tmp_path / "keys.pcap", "12x")
