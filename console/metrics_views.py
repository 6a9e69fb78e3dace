"""`/metrics`: the platform's figures in Prometheus' text format, for an operations team's
Prometheus to scrape, graph and alert on (docs/operations.md, "Metrics").

Two kinds of figures:
- counted as the work is done, in every FastAGI process (core.metrics): each command's
  turnaround, identifications by result; added up over the processes here;
- read when scraped, from what the console already reads: calls in progress and the day's
  calls by disposition, callers waiting and the longest wait, agents by state, SMS
  messages by category and state, the SMPP links, notices by channel and state, work
  orders open and overdue, the SIP bans, and `hotline serve`'s components with their
  restarts (the supervisor's figures).

No label carries a phone number, an ID number, an address or a name: only categories,
states and component names, each from a fixed set (Prometheus' naming docs: "label
values with unbounded cardinality" are to be avoided).

Not behind the console's sign-in (a scraper keeps no cookie): behind a bearer token,
`web.metrics_token`, which Prometheus sends from its scrape config (`authorization:
credentials_file:`). Without a token set, `/metrics` is off.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from cases.orders import count_orders
from console.errors import NotAllowed, NotFound
from console.live import wallboard
from console.request import ConsoleDeps, deps
from core import metrics
from core.errors import StoreUnavailable
from core.health import HEALTHY
from core.models import Call, utcnow
from reports import notices
from sms import link_status
from sms.outbox import counts as sms_counts

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus' text exposition format
# A call without its end for this long is not counted as in progress: its end was lost
# (a node killed), and the reports' import closes it later.
IN_PROGRESS_WITHIN = dt.timedelta(hours=4)
DISPOSITIONS = ("automated", "agent", "abandoned", "timeout", "callback")


class LiveFigures(Collector):
    """The figures read at each scrape (see the module's docstring)."""

    def __init__(self, d: ConsoleDeps) -> None:
        self.d = d

    def collect(self) -> Iterator[Any]:
        yield from self._components()
        try:
            yield from self._store_figures()
        except StoreUnavailable as exc:
            log.warning("metrics: the store did not answer (%s); store figures left out of this scrape", exc)
            yield GaugeMetricFamily("hotline_store_up", "1 when the store answered this scrape", value=0)
        else:
            yield GaugeMetricFamily("hotline_store_up", "1 when the store answered this scrape", value=1)
        yield from self._bans()
        yield from self._asterisk()
        usage = shutil.disk_usage(_existing(self.d.settings.recordings.dir))
        yield GaugeMetricFamily(
            "hotline_recordings_disk_free_ratio",
            "Free share of the disk under the recordings",
            value=usage.free / usage.total,
        )

    def _components(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "hotline_component_up", "1 while a component of hotline serve is up", labels=["component"]
        )
        restarts = CounterMetricFamily(
            "hotline_component_restarts", "Restarts of a supervised component since serve started", labels=["component"]
        )
        health = self.d.health
        for part in health.components() if health is not None else []:
            up.add_metric([part.name], 1 if part.state in HEALTHY else 0)
            restarts.add_metric([part.name], part.restarts)
        yield up
        yield restarts

    def _store_figures(self) -> Iterator[Any]:
        d = self.d
        now = utcnow()
        board = wallboard(d.store, d.settings.queue, d.callers, d.phones)
        yield from self._calls(board, now)
        yield from self._sms(now)
        notice_states = GaugeMetricFamily(
            "hotline_notices",
            "Notices to residents by channel (sms, wechat, voice) and state",
            labels=["channel", "state"],
        )
        with d.store.transaction() as c:
            built = notices.build(c)
        for channel, states in built.by_channel.items():
            for state, n in states.items():
                notice_states.add_metric([channel, state], n)
        yield notice_states
        yield GaugeMetricFamily(
            "hotline_work_orders_open",
            "Work orders not yet answered or closed",
            value=count_orders(d.store, status="open"),
        )
        yield GaugeMetricFamily(
            "hotline_work_orders_overdue", "Work orders past their deadline (督办)", value=board["overdue_orders"]
        )

    def _calls(self, board: dict[str, Any], now: dt.datetime) -> Iterator[Any]:
        with self.d.store.transaction() as c:
            in_progress = c.scalar(
                select(func.count())
                .select_from(Call)
                .where(Call.ended_at.is_(None), Call.started_at >= now - IN_PROGRESS_WITHIN)
            )
        yield GaugeMetricFamily("hotline_calls_in_progress", "Calls into the IVR not yet ended", value=in_progress or 0)
        today = board["today"]
        by_disposition = GaugeMetricFamily(
            "hotline_calls_today", "Calls of the local day by disposition (resets at midnight)", labels=["disposition"]
        )
        for disposition in DISPOSITIONS:
            by_disposition.add_metric([disposition], today[f"{disposition}_calls"])
        yield by_disposition
        yield GaugeMetricFamily(
            "hotline_service_level_today_ratio",
            "Calls of the day answered within queue.service_level_s, of those that waited",
            value=today["service_level"] or 0,
        )
        yield GaugeMetricFamily(
            "hotline_connection_rate_today_ratio",
            "Calls of the day answered, of those offered to agents less the short abandons (接通率)",
            value=today["connection_rate"] or 0,
        )
        if board["live"]:  # this serve follows Asterisk over AMI
            yield GaugeMetricFamily("hotline_callers_waiting", "Callers waiting in a queue", value=board["waiting"])
            yield GaugeMetricFamily(
                "hotline_callers_longest_wait_seconds",
                "How long the longest-waiting caller has waited",
                value=board["longest_wait_s"],
            )
        agents = GaugeMetricFamily("hotline_agents", "Agents by state", labels=["state"])
        for state, n in board["agents"].items():
            agents.add_metric([state], n)
        yield agents

    def _sms(self, now: dt.datetime) -> Iterator[Any]:
        store = self.d.store
        messages = GaugeMetricFamily(
            "hotline_sms_messages", "SMS messages by category and state", labels=["category", "state"]
        )
        for category, states in sms_counts(store).items():
            if category.startswith("_"):
                continue
            for state, n in states.items():
                messages.add_metric([category, state], n)
        yield messages
        links = GaugeMetricFamily(
            "hotline_sms_link_up", "1 while an SMPP link is bound (its gateway reported lately)", labels=["link"]
        )
        # Current links only: a link is named by its gateway process, so the links of
        # gateways gone (restarted) would pile up as series that never change again.
        for link in link_status.links(store, now):
            if link["current"]:
                links.add_metric([link["name"]], 1 if link["state"] == "bound" else 0)
        yield links

    def _bans(self) -> Iterator[Any]:
        from ivr.asterisk import LocalAsterisk

        state = LocalAsterisk(self.d.settings).sip_bans().state()
        if state.state == "active":
            yield GaugeMetricFamily(
                "hotline_sip_bans", "Addresses the SIP bans (fail2ban) hold now", value=len(state.bans)
            )

    def _asterisk(self) -> Iterator[Any]:
        """Registering trunks as the local Asterisk has them (a trunk the carrier sends to
        without registering shows nothing here; `hotline doctor` says so)."""
        from ivr.asterisk import LocalAsterisk
        from ivr.errors import AsteriskError
        from ivr.pjsip_config import trunk_endpoint
        from ivr.pjsip_status import registration_states

        settings = self.d.settings
        registering = [t for t in settings.sip.trunks if t.registration]
        if settings.cluster.enabled or not registering:
            return
        local = LocalAsterisk(settings)
        if local.running_pid() is None:
            return
        try:
            shown = local.cli("pjsip show registrations", timeout_s=5)
        except AsteriskError as exc:
            log.warning("metrics: pjsip show registrations failed (%s); trunks left out of this scrape", exc)
            return
        trunks = GaugeMetricFamily(
            "hotline_trunk_registered",
            "1 while a trunk that registers is registered with its carrier",
            labels=["trunk"],
        )
        states = registration_states(shown)
        for trunk in registering:
            registered = states.get(trunk_endpoint(trunk) + "-registration") == "Registered"
            trunks.add_metric([trunk.name], 1 if registered else 0)
        yield trunks


def _existing(path: Path) -> Path:
    return path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))


def _registry(d: ConsoleDeps) -> CollectorRegistry:
    registry = CollectorRegistry()
    if metrics.multiproc_dir() is not None:
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # every FastAGI process's counts, added up
    registry.register(LiveFigures(d))
    return registry


def allowed(token: str, header: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time.

    >>> allowed("s3cret", "Bearer s3cret"), allowed("s3cret", "Bearer s3cre"), allowed("", "Bearer ")
    (True, False, False)
    """
    scheme, _, given = header.partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def metrics_page(request: web.Request) -> web.StreamResponse:
    d = deps(request)
    token = d.settings.web.metrics_token
    if not token:
        raise NotFound("metrics are off: set web.metrics_token (HOTLINE_WEB_METRICS_TOKEN) to turn them on")
    if not allowed(token, request.headers.get("Authorization", "")):
        raise NotAllowed("metrics need the bearer token of web.metrics_token")
    body = await asyncio.to_thread(generate_latest, _registry(d))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_page)
