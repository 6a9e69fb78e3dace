"""Why `sms` splits long messages itself instead of trusting aiosmpplib (0.7.4), measured
against the library's own functions. If an upgrade fixes these, these tests say so."""

from __future__ import annotations

from aiosmpplib.sequence import SimpleSequenceGenerator
from aiosmpplib.utils import split_sms, split_sms_udh

from sms.encoding import encode

TEXT = "您好，您2026年11月的养老金已发放到账，请注意查收。" * 8  # 224 characters


def test_its_sar_split_sends_parts_larger_than_one_sms() -> None:
    parts = split_sms(TEXT, "ucs2")
    # One UCS2 SMS carries 140 octets; its parts are up to 254 (a short_message's limit),
    # which an SMSC must re-split or refuse.
    assert max(len(p) for p in parts) > 140
    assert all(len(s.payload) <= 134 for s in encode(TEXT, 1).segments)


def test_its_concatenation_reference_wraps_at_256_for_every_recipient() -> None:
    # ESME uses SimpleSequenceGenerator(0, 255) for every message to every number: the
    # 257th long message reuses the first one's reference, and a handset still holding
    # parts of the first may splice the two.
    refs = SimpleSequenceGenerator(0, 255)
    first = refs.next_sequence()
    for _ in range(255):
        refs.next_sequence()
    assert refs.next_sequence() == first
    # Its UDH path uses an 8-bit IE for references up to 255; ours is always 16-bit.
    assert split_sms_udh(TEXT, "ucs2", 7)[0][1:3] == bytes((0x00, 0x03))
    assert encode(TEXT, 7).segments[0].udh[1:3] == bytes((0x08, 0x04))
