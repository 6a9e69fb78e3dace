"""The CMPP ceiling of `bench/sms_gateway.py`: a bare client of `hotline ismg-sim` sending
the same parts as the gateway would (`sms.cmpp_text`) with the same window, one asyncio
connection and the codec's functions and nothing else (no store, no dispatcher), until every
status report is in and answered."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from sms.cmpp_deliver import Deliver, DeliverResp
from sms.cmpp_pdu import HEADER, Connect, Submit, SubmitResp, Terminate, check_connect_resp, decode, encode, timestamp
from sms.cmpp_results import Version
from sms.cmpp_text import split_text

SOURCE, SRC_ID = "901234", "10657123"


async def cmpp_ceiling(port: int, secret: str, texts: list[str], window: int, version: Version) -> float:
    """Seconds from the first SUBMIT until every report is answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def read() -> tuple[int, object]:
        head = await reader.readexactly(HEADER.size)
        pdu = head + await reader.readexactly(int.from_bytes(head[:4], "big") - HEADER.size)
        header, body = decode(pdu, version)
        return header.sequence, body

    connect = Connect.signed(SOURCE, secret, version, timestamp(dt.datetime.now()))
    writer.write(encode(1, connect, version))
    _, resp = await read()
    check_connect_resp(resp, connect.authenticator, secret, version)  # type: ignore[arg-type]
    submits = [
        Submit((f"139{i:08d}",), p.content, split.msg_fmt, SRC_ID, SOURCE, "", 1, p.pk_total, p.pk_number, p.tp_udhi)
        for i, text in enumerate(texts)
        for split in (split_text(text, i & 0xFF),)
        for p in split.parts
    ]
    room = asyncio.Semaphore(window)
    reports = 0
    start = time.monotonic()

    async def send() -> None:
        for sequence, submit in enumerate(submits, 2):
            await room.acquire()
            writer.write(encode(sequence, submit, version))
            await writer.drain()

    sending = asyncio.create_task(send())
    while reports < len(submits):
        sequence, body = await read()
        if isinstance(body, SubmitResp):
            if body.result != 0:
                raise RuntimeError(f"the simulator refused a SUBMIT: Result {body.result}")
            room.release()
        elif isinstance(body, Deliver):
            writer.write(encode(sequence, DeliverResp(body.msg_id, 0), version))
            reports += body.is_report
    seconds = time.monotonic() - start
    await sending
    writer.write(encode(len(submits) + 2, Terminate(), version))
    await writer.drain()
    writer.close()
    return seconds
