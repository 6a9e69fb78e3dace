"""Call the local hotline as its carrier would: SIPp from 127.0.0.2 over the demo trunk,
RFC 4733 DTMF from a generated pcap (the test tier's SIPp support, tests/sip_peers).

    HOTLINE_CONFIG=hotline.demo.toml .venv/bin/python -m tools.sip_call --dtmf "1W1W1W330523199411187594W320769"

Then `hotline calls show --last` prints the call's trail. Needs root (SIPp plays the pcap
through a raw socket) and a trunk matching 127.0.0.2 (the demo has one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from core.settings import load_settings
from tests.sip_peers.sipp import CarrierCall, UacPlan, hotline_address, place_calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtmf", default="", help="keys after the answer; w = 0.5 s pause, W = 1 s, X keyed as *")
    parser.add_argument("--caller", default="+8613800138000", help="the caller id the carrier sends")
    parser.add_argument("--called", default="12333", help="the called number the carrier sends")
    parser.add_argument("--lead", type=float, default=1.0, help="seconds after the answer before the first key")
    parser.add_argument("--tail", type=float, default=20.0, help="seconds to stay on the line after the keys")
    parser.add_argument("--tcp", action="store_true", help="SIP over TCP instead of UDP")
    parser.add_argument("--edge", action="store_true", help="call the cluster's SIP edge (`hotline cluster up`)")
    args = parser.parse_args(argv)
    settings = load_settings()
    plan = UacPlan(
        (CarrierCall(args.caller, args.called),),
        dtmf=args.dtmf.replace("X", "*"),
        lead_s=args.lead,
        tail_s=args.tail,
        transport="tcp" if args.tcp else "udp",
    )
    with tempfile.TemporaryDirectory(prefix="sip-call-") as work:
        target = (settings.cluster.edge_address, settings.cluster.edge_port) if args.edge else hotline_address(settings)
        result = place_calls(target, plan, Path(work))
    for call in result.calls:
        print(f"call {call.call_id}: INVITE answered {list(call.invite_codes)}, final {call.final_code}")
    if not result.successful:
        print(result.log[-2000:], file=sys.stderr)
        return 1
    print("its trail: hotline calls show --last")
    return 0


if __name__ == "__main__":
    sys.exit(main())
