"""Real SIP peers for the tests and benchmarks: SIPp as the carrier (calls in, calls out)
and the RTP it plays (RFC 4733 DTMF written as a pcap)."""
