"""A small CMPP client for tests, built on the codec (`sms/cmpp_pdu.py`): it connects,
matches responses to requests by Sequence_Id, answers DELIVER and ACTIVE_TEST itself,
and keeps what arrived, in order, for the test to look at."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sms.cmpp_deliver import Deliver, DeliverResp
from sms.cmpp_pdu import (
    HEADER,
    ActiveTest,
    ActiveTestResp,
    Body,
    Connect,
    ConnectResp,
    Header,
    Submit,
    SubmitResp,
    Terminate,
    Version,
    decode,
    encode,
    read_header,
    timestamp,
)


class CmppTestClient:
    def __init__(self, port: int, version: Version) -> None:
        self.port, self.version = port, version
        self.arrived: list[object] = []  # every PDU body read, in order
        self.delivers: asyncio.Queue[Deliver] = asyncio.Queue()
        self.active_tests: asyncio.Queue[int] = asyncio.Queue()  # sequences of those answered
        self.closed = asyncio.Event()
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, source_addr: str, secret: str, version: int | None = None) -> tuple[Connect, ConnectResp]:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._task = asyncio.create_task(self._read())
        request = Connect.signed(source_addr, secret, self.version, timestamp(datetime.now()))
        if version is not None:
            request = Connect(request.source_addr, request.authenticator, version, request.timestamp)
        resp = await self.request(request)
        assert isinstance(resp, ConnectResp)
        return request, resp

    async def request(self, body: Body, wait_s: float = 2.0) -> object:
        self._seq += 1
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting[self._seq] = future
        self.send(self._seq, body)
        async with asyncio.timeout(wait_s):
            return await future

    async def submit(self, submit: Submit, wait_s: float = 2.0) -> SubmitResp:
        resp = await self.request(submit, wait_s)
        assert isinstance(resp, SubmitResp)
        return resp

    def send(self, sequence: int, body: Body) -> None:
        assert self._writer is not None
        self._writer.write(encode(sequence, body, self.version))

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                head = await self._reader.readexactly(HEADER.size)
                header = read_header(head)
                rest = await self._reader.readexactly(header.length - HEADER.size)
                _, body = decode(head + rest, self.version)
                self.arrived.append(body)
                self._dispatch(header, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()

    def _dispatch(self, header: Header, body: object) -> None:
        if isinstance(body, Deliver):
            self.send(header.sequence, DeliverResp(body.msg_id, 0))
            self.delivers.put_nowait(body)
        elif isinstance(body, ActiveTest):
            self.send(header.sequence, ActiveTestResp())
            self.active_tests.put_nowait(header.sequence)
        elif (future := self._waiting.pop(header.sequence, None)) is not None and not future.done():
            future.set_result(body)

    async def terminate(self) -> object:
        return await self.request(Terminate())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
