"""aiosmpplib's two queues, ours: what waits for the wire (`Broker`) and the requests on
it waiting for their responses (`Correlator`)."""

from __future__ import annotations

import asyncio
import itertools

from aiosmpplib import AbstractBroker, AbstractCorrelator
from aiosmpplib.protocol import DeliverSm, SmppMessage, SubmitSm


class Broker(AbstractBroker):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """What waits for the wire: urgent submits (instant reminders) before the others, each
    kind first in, first out."""

    def __init__(self) -> None:
        self.queue: asyncio.PriorityQueue[tuple[int, int, SubmitSm]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        # Taken by aiosmpplib's sender and not written yet (it may be pacing or waiting out
        # a throttle): if the bind ends then, the sender is cancelled holding it.
        self.in_hand: tuple[int, int, SubmitSm] | None = None

    async def enqueue(self, message: SmppMessage) -> None:
        assert isinstance(message, SubmitSm)
        self.put(message, urgent=False)

    def put(self, message: SubmitSm, *, urgent: bool) -> None:
        self.queue.put_nowait((0 if urgent else 1, next(self._order), message))

    async def dequeue(self) -> SmppMessage:
        self.in_hand = await self.queue.get()  # cancellation-safe: nothing is lost if cancelled
        return self.in_hand[2]

    def written(self, message: SubmitSm) -> None:
        if self.in_hand is not None and self.in_hand[2] is message:
            self.in_hand = None

    def give_back(self) -> None:
        """What the last bind's sender held unsent goes out first on the next one."""
        if self.in_hand is not None:
            self.queue.put_nowait(self.in_hand)
            self.in_hand = None


class Correlator(AbstractCorrelator):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """Requests waiting for their response, by sequence number, and nothing else.

    aiosmpplib's SimpleCorrelator also keeps every accepted submit for three days to match
    its receipt, and walks all it keeps on every operation: sending slows down as the
    square of what has been sent (70 messages/s after 5,000 here). Receipts are ours to
    match (`sms.receipts`, in the store), and so are long messages (each segment is a
    submit_sm of its own; inbound parts are reassembled by `sms.mo`), so this one keeps
    only the requests in flight. It expires nothing: a request's response timer is its
    own (`sms.smpp_link`), and a new bind forgets the old one's requests.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, SmppMessage] = {}

    def get_cumulated_status(self, ref_num: int) -> int:
        return 0

    def clear(self) -> None:
        self._waiting.clear()

    async def expired(self, smpp_message: SmppMessage) -> None:
        pass  # never called: nothing expires here

    async def put(self, smpp_message: SmppMessage) -> None:
        self._waiting[smpp_message.sequence_num] = smpp_message

    async def get(self, response: SmppMessage) -> SmppMessage | None:
        return self._waiting.pop(response.sequence_num, None)

    async def put_delivery(self, smsc_message_id: str, submit_sm: SubmitSm) -> None:
        pass

    async def put_delivery_segmented(self, deliver_sm: DeliverSm) -> DeliverSm:
        return deliver_sm  # every part goes to the hook as it is

    async def get_segmented(self, smpp_seq_num: int, remove: bool = False) -> tuple[None, int]:
        return None, 0

    async def get_delivery(self, receipt: DeliverSm) -> None:
        return None
