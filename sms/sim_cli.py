"""`hotline smsc-sim`: run the simulator until SIGINT/SIGTERM, with a control port.

The control port takes one command per line and answers one JSON line:
`stats`, `drop`, `hang` (the current binds stop answering anything, their connections
kept open; a new bind is served), `unhang` (the hung connections are reset at last), `sick` (the current binds answer
every submit_sm with ESME_RMSGQFUL, 0x14, their connections kept open; a new bind is
served), and
`mo HANDSET SHORT_CODE TEXT...` (a resident's text to the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
from typing import Any

from sms.simulator import SimConfig, Simulator

log = logging.getLogger(__name__)


def parse_pairs(items: list[str], value: type[int] | type[float]) -> dict[int, Any]:
    """["0x14:7", "8:0.5"] -> {0x14: 7, 8: 0.5}; ValueError names the bad item."""
    out: dict[int, Any] = {}
    for item in items:
        code, sep, amount = item.partition(":")
        if not sep:
            raise ValueError(f"{item!r}: expected STATUS:VALUE, e.g. 0x58:7")
        out[int(code, 0)] = value(amount)
    return out


def parse_outcomes(text: str) -> dict[str, float]:
    """ "DELIVRD:0.9,UNDELIV:0.1" -> weights."""
    out = {}
    for item in text.split(","):
        stat, _, weight = item.partition(":")
        out[stat.strip().upper()] = float(weight or 1)
    return out


async def _control(sim: Simulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while line := (await reader.readline()).decode("utf-8", errors="replace").strip():
            verb, _, rest = line.partition(" ")
            answer: dict[str, Any]
            if verb == "stats":
                answer = {"counts": dict(sim.counts), "bound": len(sim.esmes)}
            elif verb == "drop":
                asyncio.get_running_loop().create_task(sim.drop())
                answer = {"dropping_for_s": sim.config.down_s}
            elif verb == "hang":
                answer = {"hung": sim.hang()}
            elif verb == "unhang":
                answer = {"reset": sim.unhang()}
            elif verb == "sick":
                answer = {"sick": sim.sicken()}
            elif verb == "mo" and len(rest.split(" ", 2)) == 3:
                handset, short_code, text = rest.split(" ", 2)
                answer = {"deliver_sm": await sim.inject_mo(handset, short_code, text)}
            else:
                answer = {"error": "commands: stats | drop | hang | unhang | sick | mo HANDSET SHORT_CODE TEXT"}
            writer.write((json.dumps(answer, ensure_ascii=False) + "\n").encode())
            await writer.drain()
    finally:
        writer.close()


async def run(config: SimConfig, control_port: int | None) -> None:
    sim = Simulator(config)
    await sim.start()
    control = None
    if control_port is not None:
        control = await asyncio.start_server(lambda r, w: _control(sim, r, w), "127.0.0.1", control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gc.collect()
    gc.freeze()  # start-up's objects out of the collector's sight, as `hotline serve` does
    print(f"smsc-sim: ready on {config.host}:{config.port}", flush=True)
    try:
        await stop.wait()
    finally:
        if control is not None:
            control.close()
            with contextlib.suppress(Exception):
                await control.wait_closed()
        await sim.stop()
        log.info("SMSC simulator stopped: %s", dict(sim.counts))
