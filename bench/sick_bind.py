"""A batch through an SMSC whose bind turns sick mid-batch: how long it stalls, and whether it ends.

The simulator (`sick_after`) accepts that many segments and then answers every submit_sm on
the existing bind with ESME_RMSGQFUL (0x14), the connection kept open, while a new bind is
served normally. One dispatcher on a fresh SQLite store sends `--messages` one-segment
statements; the run waits for them all to be final, or `--limit` seconds, and prints:

    python -m bench.sick_bind --messages 900 --sick-after 300 --limit 120

- total_s: from the start of sending until every message was final (null: not within the limit);
- stalled_s: from the segment that made the bind sick until the next segment was accepted;
- by_status: the messages' states at the end (what stayed `queued` or `sending`), and
  since_sick_s: how long after the bind turned sick that was;
- accepted: segments the SMSC took, binds, sick binds seen by the simulator.

It only uses what the gateway had before sick binds were handled, so it measures either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import insert, select

from bench.procs import free_port
from bench.sms_gateway import people, statement
from core.db import Store
from core.models import BusinessEvent, Resident, SmsMessage
from core.sample_port import SampleBusinessPort
from core.settings import SmppSettings, load_settings
from sms.dispatcher import Dispatcher
from sms.pdu import Inbound
from sms.simulator import SimConfig, Simulator
from sms.smpp import SmppTransport

FINAL = {"delivered", "undelivered", "expired", "rejected", "deleted", "unknown", "failed"}
PEPPER = "bench-pepper"


def _statuses(store: Store) -> Counter[str]:
    with store.session() as s:
        return Counter(s.scalars(select(SmsMessage.status)))


async def run(messages: int, sick_after: int, limit_s: float, env: dict[str, str]) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="sick-bind-"))
    store = Store(f"sqlite:///{tmp}/hotline.db")
    store.migrate()
    batch = people(messages)
    with store.transaction() as c:
        c.execute(insert(Resident), batch)
        c.execute(insert(BusinessEvent), [statement(p) for p in batch])
    sim = Simulator(SimConfig(port=free_port(), receipt_delay_s=0.05, sick_after=sick_after))
    await sim.start()
    environ = {
        "HOTLINE_DATABASE_URL": store.url,
        "HOTLINE_SECURITY_PIN_PEPPER": PEPPER,
        "HOTLINE_SMPP_PORT": str(sim.config.port),
        "HOTLINE_SMPP_PASSWORD": "secret",
        "HOTLINE_SMS_POLL_S": "0.05",
        **env,
    }
    settings = load_settings(None, environ)
    settings = settings.model_copy(update={"sms": settings.sms.model_copy(update={"quiet_hours": {}})})
    holder: dict[str, Dispatcher] = {}

    async def on_deliver(inbound: Inbound) -> None:
        if inbound.is_receipt:
            await holder["d"].on_receipt(inbound)

    transport = SmppTransport(settings.smpp, on_deliver)
    port = SampleBusinessPort(store, PEPPER)
    dispatcher = holder["d"] = Dispatcher(settings, store, port, transport, "bench-1")
    await transport.start()
    stop = asyncio.Event()
    loop_task = asyncio.create_task(dispatcher.run(stop))
    started = time.monotonic()
    total_s: float | None = None
    sick_at: float | None = None
    resumed_at: float | None = None
    try:
        while time.monotonic() - started < limit_s:
            await asyncio.sleep(0.05)
            if sick_at is None and sim.counts["sickened"]:
                sick_at = time.monotonic()
            if sick_at is not None and resumed_at is None and sim.counts["accepted"] > sick_after:
                resumed_at = time.monotonic()
            states = await asyncio.to_thread(_statuses, store)
            if sum(states.values()) == messages and set(states) <= FINAL:
                total_s = time.monotonic() - started
                break
        states = await asyncio.to_thread(_statuses, store)  # before stopping puts anything back
        queued_for_s = time.monotonic() - (sick_at or started)
    finally:
        stop.set()
        await asyncio.wait({loop_task}, timeout=3.0)  # as `hotline serve` stops: then the link
        await transport.stop()
        await asyncio.wait_for(loop_task, 20)
        await sim.stop()
    store.dispose()
    return {
        "messages": messages,
        "sick_after": sick_after,
        "limit_s": limit_s,
        "total_s": None if total_s is None else round(total_s, 1),
        "stalled_s": None if sick_at is None or resumed_at is None else round(resumed_at - sick_at, 1),
        "by_status": dict(states),
        "since_sick_s": None if sick_at is None else round(queued_for_s, 1),
        "accepted": sim.counts["accepted"],
        "refused_0x14": sim.counts["rejected_0x14"],
        "binds": sim.counts["binds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=900)
    parser.add_argument("--sick-after", type=int, default=300)
    parser.add_argument("--limit", type=float, default=120.0, metavar="S")
    parser.add_argument("--set", action="append", default=[], metavar="HOTLINE_X=V", help="more settings")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.set)
    if "sick_after_refusals" not in SmppSettings.model_fields:  # the gateway before sick binds
        env = {k: v for k, v in env.items() if "SICK" not in k and "FALLBACKS" not in k}
    print(json.dumps(asyncio.run(run(args.messages, args.sick_after, args.limit, env)), indent=1))


if __name__ == "__main__":
    main()
