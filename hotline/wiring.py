"""Building the platform's parts from settings, once, for the CLI and `hotline serve`."""

from __future__ import annotations

import datetime as dt

from core.business import AuditedReader, SampleBusinessPort
from core.db import Store
from core.identify import Identifier, IdentifyLimits
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


def ivr_services(settings: Settings, store: Store) -> IvrServices:
    settings.require_secrets("security.pin_pepper")
    catalogue = load_catalogue(settings.ivr.prompts_dir / "catalogue.toml")
    menu = load_menu(settings.ivr.menu_file, catalogue)
    port = SampleBusinessPort(store, settings.security.pin_pepper)
    writer = GroupWriter(store)  # one per process: trail steps and audit entries share its commits
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
    )
