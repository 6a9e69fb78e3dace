"""aiosmpplib behind the transport's seams: its ESME with our connection keeper and our
handling of deliver_sm, the hook that hands every PDU to the transport, our codecs and its log."""

from __future__ import annotations

import codecs
import logging
from typing import TYPE_CHECKING, Any

from aiosmpplib import ESME, AbstractHook
from aiosmpplib.protocol import (
    BindTransceiverResp,
    DeliverSm,
    EnquireLink,
    GenericNack,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
)
from aiosmpplib.state import SmppCommand

from core.masking import mask_numbers
from sms.encoding import DATA_CODING_UCS2
from sms.transport import SubmitResult

if TYPE_CHECKING:
    from sms.smpp import SmppTransport

log = logging.getLogger("sms.smpp")
library_log = logging.getLogger("sms.aiosmpplib")


class LibraryLog(logging.Handler):
    """aiosmpplib's own error lines (its StructuredLogger writes bare `message >>> {json}`
    lines to stderr by default) into the platform's log, under `sms.aiosmpplib`, with any
    phone number in them masked."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            library_log.log(record.levelno, "%s", mask_numbers(self.format(record)))
        except Exception:  # logging must not raise (logging.Handler.handleError)
            self.handleError(record)


ENCODING_NAMES = {0x00: "gsm0338", DATA_CODING_UCS2: "ucs2"}
BOUND = (0x00, 0x05)  # bind_transceiver_resp: ESME_ROK, or ESME_RALYBND (aiosmpplib takes both)
UNBIND_RESP = 0x80000006


def _passthrough(name: str) -> codecs.CodecInfo:
    """A codec that maps bytes 1:1 to code points 0-255 and back: our bytes, untouched."""

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return text.encode("latin-1", errors), len(text)

    def decode(data: Any, errors: str = "strict") -> tuple[str, int]:
        return bytes(data).decode("latin-1", errors), len(data)

    return codecs.CodecInfo(encode, decode, name=name)


CODECS = {name: _passthrough(name) for name in ENCODING_NAMES.values()}


UNSENT = SubmitResult(None, detail="not sent: the SMPP transport stopped", sent=False)


class Esme(ESME):  # type: ignore[misc]  # aiosmpplib ships no type hints
    """aiosmpplib answers a deliver_sm as soon as its hook returns, before a receipt or a
    resident's text is in the store: a crash then would lose what the SMSC believes
    delivered. Here deliver_sm is left unanswered by aiosmpplib (its request handler
    returns None, which it treats as "answered already") and the transport answers it
    once what it carries is stored; what is never answered, the SMSC delivers again.

    aiosmpplib's connection keeper sends enquire_link only after a quiet spell and waits for
    any data in reply (so a peer that answers enquire_link and nothing else looks alive);
    here the keeper of each bind is the transport's `LinkWatch`, whose return ends the bind
    (aiosmpplib then binds again). A bind attempt that fails closes its connection (aiosmpplib
    leaves it open, one socket per attempt against a refusing SMSC). To drop a bind the
    transport reaches into `_bound`, `_writer` and `_send_data`: aiosmpplib 0.7.4's own
    (pinned), used as its connection keeper and disconnect use them."""

    transport: SmppTransport

    async def _handle_request(self, pdu: bytes, header: Any) -> SmppMessage | None:
        if header.smpp_command == SmppCommand.DELIVER_SM:
            return None
        result: SmppMessage | None = await super()._handle_request(pdu, header)
        return result

    async def _connection_keeper(self) -> None:
        await self.transport.keep_bind()

    async def connect(self) -> None:
        self.smsc_host, self.smsc_port = self.transport.connecting()
        try:
            await super().connect()
        except BaseException as exc:
            self.transport.bind_failed(exc)
            raise


class Hook(AbstractHook):  # type: ignore[misc]  # aiosmpplib ships no type hints
    def __init__(self, transport: SmppTransport) -> None:
        self.t = transport

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSm):
            self.t.broker.written(smpp_message)
            if smpp_message.log_id in self.t.waiting:
                self.t.sent.add(smpp_message.log_id)
            self.t.watch.sent("submit_sm", smpp_message.sequence_num)
        elif isinstance(smpp_message, EnquireLink):
            self.t.watch.sent("enquire_link", smpp_message.sequence_num)

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if len(pdu) >= 16:  # every PDU, read or not: the link is alive, and a response is in
            command_id = int.from_bytes(pdu[4:8], "big")
            self.t.watch.received(command_id, int.from_bytes(pdu[12:16], "big"))
            if command_id == UNBIND_RESP:
                self.t.unbound.set()
        if isinstance(smpp_message, BindTransceiverResp) and smpp_message.command_status in BOUND:
            self.t.on_bound()
        elif isinstance(smpp_message, SubmitSmResp | GenericNack):
            tag: str = getattr(smpp_message, "log_id", "") or ""
            message_id: str | None = getattr(smpp_message, "message_id", None) or None
            status = int(smpp_message.command_status)
            self.t.answered(status)
            if tag:
                self.t.settle(tag, SubmitResult(status, message_id))
        elif isinstance(smpp_message, DeliverSm) or (smpp_message is None and len(pdu) > 8 and pdu[7] == 0x05):
            # Our own reading of the PDU: aiosmpplib strips the UDH of inbound texts.
            await self.t.deliver(pdu)

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSm) and smpp_message.log_id:
            log.warning("submit %s not sent: %r", smpp_message.log_id, error)
            self.t.settle(smpp_message.log_id, SubmitResult(None))
