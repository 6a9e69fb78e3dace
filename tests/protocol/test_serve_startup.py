"""`hotline serve` started before Asterisk: it retries with backoff and says so clearly."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from hotline.serve import watch_asterisk
from tests.conftest import make_settings
from tests.waiting import until


async def _fake_ami(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"Asterisk Call Manager/11.0.0\r\n")
    while (await reader.readline()).strip():
        pass
    writer.write(b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n")
    await writer.drain()
    writer.close()


async def test_asterisk_late_at_start_is_retried_and_logged(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/x.db", HOTLINE_AMI_PORT=str(port))
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_asterisk(settings, stop))
    # Attempts 1 and 2 fail; Asterisk comes up while the watcher waits 2 s for the third.
    await until(lambda: any("retrying in 2 s" in r.getMessage() for r in caplog.records), "the second failed attempt")
    server = await asyncio.start_server(_fake_ami, "127.0.0.1", port)
    await asyncio.wait_for(watcher, 10)
    server.close()
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"AMI at 127.0.0.1:{port} not ready (attempt 1" in m and "retrying in 1 s" in m for m in messages)
    assert any("retrying in 2 s" in m for m in messages)
    assert any(f"AMI at 127.0.0.1:{port} answers (attempt 3)" in m for m in messages)
