"""Building the platform's parts from settings, once, for the CLI and `hotline serve`."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Executor

from core.business import AuditedReader, BusinessPort
from core.db import Store
from core.health import Health
from core.identify import Identifier, IdentifyLimits
from core.sample_port import SampleBusinessPort
from core.settings import Settings
from core.writer import GroupWriter
from ivr.caller_blocks import CallerBlocks
from ivr.catalogue import load_catalogue
from ivr.menu import load_menu
from ivr.messages import VoiceMessages
from ivr.notice_settings import NoticeSettings
from ivr.session import IvrServices
from ivr.trail import SqlCallSink


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    store = Store(settings.database.url)
    if migrate:
        store.migrate()
    return store


def business_port(settings: Settings, store: Store) -> BusinessPort:
    """The one door to the business system's data, built here only: the embedded sample
    adapter (a site's own adapter would be chosen here)."""
    return SampleBusinessPort(store, settings.security.pin_pepper)


def ivr_services(
    settings: Settings,
    store: Store,
    port: BusinessPort | None = None,
    *,
    health: Health | None = None,
    executor: Executor | None = None,
    threads: int = 8,
) -> IvrServices:
    settings.require_secrets("security.pin_pepper")
    catalogue = load_catalogue(settings.ivr.prompts_dir / "catalogue.toml")
    menu = load_menu(settings.ivr.menu_file, catalogue)
    port = port or business_port(settings, store)
    writer = GroupWriter(store, health=health)  # one per process: trail steps and audit entries share its commits
    limits = IdentifyLimits(
        max_failures=settings.ivr.max_pin_failures,
        lockout=dt.timedelta(hours=settings.ivr.lockout_hours),
        ids_per_call=settings.ivr.ids_per_call,
        caller_failures_per_day=settings.ivr.caller_failures_per_day,
        timezone=settings.queue.timezone,
    )
    identifier = Identifier(store, port, limits, id_secret=settings.security.pin_pepper, writer=writer)
    return IvrServices(
        menu=menu,
        catalogue=catalogue,
        identifier=identifier,
        reader=AuditedReader(store, port, writer),
        sink=SqlCallSink(store, writer),
        executor=executor,
        threads=threads,
        messages=VoiceMessages(store, port, settings.recordings, settings.queue.timezone),
        prefs=NoticeSettings(store),
        skills=settings.skills.names,
        callers=CallerBlocks(store, settings.ivr.blocked_treatment, executor=executor),
    )
