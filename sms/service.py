"""The SMS gateway as `hotline serve` runs it: the transport (SMPP, CMPP, or Twilio with
SMPP for replies), the dispatcher, the MO
handler, and on PostgreSQL a LISTEN on `hotline_events` so an instant reminder is taken up
the moment the business system commits it (SQLite: the dispatcher's short poll)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg

from core.business import AuditedReader, BusinessPort
from core.db import Store
from core.errors import SettingsError, StoreUnavailable
from core.health import Health
from core.settings import Settings
from sms import link_status
from sms.cmpp import CmppTransport
from sms.dispatcher import Dispatcher
from sms.inbound import DeadLetters
from sms.link_status import publish
from sms.mo import MoHandler
from sms.notice_moves import run_moves
from sms.pdu import Inbound
from sms.smpp import SmppTransport
from sms.transport import Transport
from sms.twilio import TwilioTransport
from sms.wechat import WeChatTransport
from sms.wechat_sender import WeChatSender

log = logging.getLogger(__name__)
CHANNEL = "hotline_events"
DRAIN_S = 3.0  # of serve's 10 s for the whole shutdown
# How `hotline serve` starts a long-running task: name, coroutine factory, its stop event
# (it supervises them: hotline/supervise.py); by default a plain task.
Factory = Callable[[], Coroutine[Any, Any, None]]
Spawn = Callable[[str, Factory, asyncio.Event], "asyncio.Task[None]"]


def _plain_task(name: str, factory: Factory, _stop: asyncio.Event) -> asyncio.Task[None]:
    return asyncio.create_task(factory(), name=name)


class SmsService:
    def __init__(self, settings: Settings, store: Store, port: BusinessPort, health: Health | None = None) -> None:
        self.settings = settings
        self.store = store
        self.health = health
        # `transport`: the link whose state is published and whose texts from residents (MO)
        # come in; `sender`: what sends. SMPP carries replies even when Twilio sends.
        self.transport: SmppTransport | CmppTransport
        self.twilio: TwilioTransport | None = None
        sender: Transport[Any]
        if settings.sms.transport == "cmpp":
            settings.require_secrets("cmpp.sp_id", "cmpp.secret")
            if not settings.cmpp.src_id:
                raise SettingsError("sms.transport is cmpp: set cmpp.src_id (the 106... service code)")
            sender = self.transport = CmppTransport(settings.cmpp, self.on_deliver)
        else:
            sender = self.transport = SmppTransport(settings.smpp, self.on_deliver)
        if settings.sms.transport == "twilio":
            settings.require_secrets("twilio.account_sid", "twilio.auth_token")
            if not (settings.twilio.from_number or settings.twilio.messaging_service_sid):
                raise SettingsError("sms.transport is twilio: set twilio.from_number or twilio.messaging_service_sid")
            sender = self.twilio = TwilioTransport(settings.twilio, settings.smpp.window)
        worker = self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.dispatcher = Dispatcher(settings, store, port, sender, worker)
        reader = AuditedReader(store, port)
        self.mo = MoHandler(store, reader, self.dispatcher.wake, settings.sms, settings.destinations)
        self.dead_letters = DeadLetters(store, settings.sms.inbound_max_tries)
        self.port = port
        # WeChat notices only when the account is configured (sms/wechat_sender.py).
        self.wechat: WeChatSender | None = None
        if settings.wechat.enabled:
            self.wechat = WeChatSender(settings, store, WeChatTransport(settings.wechat), worker)
        self.stop_event = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def on_deliver(self, inbound: Inbound) -> None:
        """Returns once the deliver_sm may be answered: handled, or a dead letter."""
        await self.dead_letters.handle(inbound, self._route)

    async def _route(self, inbound: Inbound) -> None:
        if inbound.is_receipt:
            await self.dispatcher.on_receipt(inbound)
        else:
            await self.mo.on_text(inbound)

    async def start(self, spawn: Spawn = _plain_task) -> None:
        await self.transport.start()
        if self.twilio is not None:
            await self.twilio.start()
            log.info("SMS gateway: sending through Twilio at %s; replies over SMPP", self.settings.twilio.base_url)
        self.tasks.append(spawn("sms-dispatcher", lambda: self.dispatcher.run(self.stop_event), self.stop_event))
        # The SMPP link's state, for `hotline sms status` and `hotline status` (sms/link_status.py).
        t = self.transport
        link = lambda: publish(self.store, self.worker, t.report, t.changed, self.stop_event, self.health)  # noqa: E731
        self.tasks.append(spawn("sms-link-status", link, self.stop_event))
        # Notices moved along their channels (sms/notice_moves.py), every notices.poll_s.
        moves = lambda: run_moves(self.settings, self.store, self.port, self.stop_event)  # noqa: E731
        self.tasks.append(spawn("sms-notices", moves, self.stop_event))
        if self.wechat is not None:
            await self.wechat.transport.start()
            wechat = self.wechat
            self.tasks.append(spawn("wechat-sender", lambda: wechat.run(self.stop_event), self.stop_event))
        if self.store.engine.dialect.name == "postgresql":
            self.tasks.append(spawn("sms-listen", self._listen, self.stop_event))
        if isinstance(self.transport, CmppTransport):
            c = self.settings.cmpp
            log.info(
                "SMS gateway: CMPP %s %s:%d as %s, %d links, window %d", c.version, c.host, c.port, c.sp_id, c.links,
                c.window,
            )  # fmt: skip
            return
        log.info(
            "SMS gateway: SMPP %s:%d as %s, window %d, %g submits/s",
            self.settings.smpp.host,
            self.settings.smpp.port,
            self.settings.smpp.system_id,
            self.settings.smpp.window,
            self.settings.smpp.tps,
        )

    async def _listen(self) -> None:
        """Wake the dispatcher on every commit of new events; reconnect with backoff."""
        dsn = self.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 1.0
        while not self.stop_event.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    delay = 1.0
                    async for _notify in conn.notifies():
                        self.dispatcher.events_committed()
            except psycopg.Error as exc:
                log.warning(
                    "SMS gateway: LISTEN %s failed (%s); polling meanwhile, retry in %.0f s", CHANNEL, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        self.stop_event.set()
        for task in self.tasks:
            if task.get_name() == "sms-listen":
                task.cancel()
        # The dispatcher finishes its sends in flight; those still waiting for a bind (an
        # SMSC that is down or silent) are released by stopping the transport, which
        # answers them unsent or lost, so the dispatcher puts them back for the next start.
        if self.tasks:
            _done, waiting = await asyncio.wait(self.tasks, timeout=DRAIN_S)
            if waiting:
                log.warning("SMS gateway: sends still waiting after %g s; stopping the link", DRAIN_S)
        await self.transport.stop()
        await asyncio.gather(*self.tasks, return_exceptions=True)  # a cancelled stop() stays cancelled
        stopped = self.transport.report()
        if self.health is not None:
            self.health.link(link_status.HEALTH_NAME, stopped.as_health())
        with contextlib.suppress(StoreUnavailable):  # the link's row then ages into "gone"
            await asyncio.to_thread(link_status.record, self.store, self.worker, stopped, dt.datetime.now(dt.UTC))
        if self.twilio is not None:
            await self.twilio.stop()
        if self.wechat is not None:
            await self.wechat.transport.stop()
