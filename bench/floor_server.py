"""The floor: stock panoramisk FastAGI `Application` replaying a recorded command sequence.

No business work, no store, no hardening: each call gets exactly the commands our server
sent for one recorded balance-query call, each reply read and ignored. What our server
costs above this is our own work.

    python -m bench.floor_server COMMANDS.json   # prints "ready <port>"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import Any

from panoramisk.fast_agi import Application


async def main(commands: list[str], port: int) -> None:
    async def replay(request: Any) -> None:
        for command in commands:
            await request.send_command(command)

    app = Application()
    app.add_route("ivr", replay)
    server = await asyncio.start_server(app.handler, "127.0.0.1", port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__)
    cli.add_argument("commands", type=Path, help="JSON list of AGI command lines")
    cli.add_argument("--port", type=int, default=0)
    args = cli.parse_args()
    asyncio.run(main(json.loads(args.commands.read_text(encoding="utf-8")), args.port))
