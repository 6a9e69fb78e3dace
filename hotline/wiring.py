"""Building the platform's parts from settings, once, for the CLI and `hotline serve`."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Executor

from core.business import AuditedReader, Identifier, SampleBusinessPort
from core.db import Store
from core.health import Health
from core.settings import Settings
from core.writer import GroupWriter
from ivr.catalogue import load_catalogue
from ivr.menu import load_menu
from ivr.session import IvrServices
from ivr.trail import SqlCallSink


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    store = Store(settings.database.url)
    if migrate:
        store.migrate()
    return store


def ivr_services(
    settings: Settings, store: Store, *, health: Health | None = None, executor: Executor | None = None
) -> IvrServices:
    settings.require_secrets("security.pin_pepper")
    catalogue = load_catalogue(settings.ivr.prompts_dir / "catalogue.toml")
    menu = load_menu(settings.ivr.menu_file, catalogue)
    port = SampleBusinessPort(store, settings.security.pin_pepper)
    writer = GroupWriter(store, health=health)  # one per process: trail steps and audit entries share its commits
    lockout = dt.timedelta(hours=settings.ivr.lockout_hours)
    identifier = Identifier(store, port, settings.ivr.max_pin_failures, lockout, writer)
    return IvrServices(
        menu=menu,
        catalogue=catalogue,
        identifier=identifier,
        reader=AuditedReader(store, port, writer),
        sink=SqlCallSink(store, writer),
        executor=executor,
    )
