"""pyst2 0.5.1's FastAGI server, ported to Python 3, replaying a recorded command sequence.

pyst2 ships `asterisk/fastagi.py`: a `SocketServer.ForkingTCPServer` whose handler builds
`asterisk.agi.AGI(stdin=rfile, stdout=wfile)`. That module imports the Python 2 name
`SocketServer` and hands `AGI` a binary `wfile` it writes `str` to, so it cannot run on
Python 3 as shipped. This is the same server with the two fixes it needs and nothing
else: `socketserver.ForkingTCPServer` (one process per call; `max_children` 40 and
`request_queue_size` 5 as stock unless --max-children/--backlog say otherwise) and a text
wrapper around the socket for `AGI`'s writes.
It cannot be threaded: `AGI.__init__` calls `signal.signal`, allowed in a main thread only.
Each command goes through `AGI.execute`, pyst2's generic send-and-parse.

    python -m bench.pyst2_server COMMANDS.json   # prints "ready <port>"
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socketserver
from pathlib import Path
from types import FrameType

from asterisk.agi import AGI

COMMANDS: list[str] = []


class FastAgiHandler(socketserver.StreamRequestHandler):
    timeout = 5  # pyst2's fastagi.py: close connections not finished in 5 seconds

    def handle(self) -> None:
        stdout = io.TextIOWrapper(self.wfile, encoding="utf-8", write_through=True)  # type: ignore[type-var]
        with open(os.devnull, "w", encoding="utf-8") as debug:  # AGI writes every line to stderr
            agi = AGI(stdin=self.rfile, stdout=stdout, stderr=debug)
            for command in COMMANDS:
                agi.execute(command)
            stdout.detach()


def main(port: int, backlog: int, max_children: int) -> None:
    server_class = type(
        "Pyst2FastAgi", (socketserver.ForkingTCPServer,), {"request_queue_size": backlog, "max_children": max_children}
    )
    server = server_class(("127.0.0.1", port), FastAgiHandler)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"ready {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("commands", type=Path, help="JSON list of AGI command lines")
    cli.add_argument("--port", type=int, default=0)
    cli.add_argument("--backlog", type=int, default=5, help="listen queue (socketserver's default: 5)")
    cli.add_argument("--max-children", type=int, default=40, help="calls at once (ForkingMixIn's default: 40)")
    args = cli.parse_args()
    COMMANDS.extend(json.loads(args.commands.read_text(encoding="utf-8")))
    main(args.port, args.backlog, args.max_children)
