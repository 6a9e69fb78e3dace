"""`hotline doctor`: a running site checked end to end, each finding in words a county IT
person can act on: the settings, the store and its schema, `hotline serve`, Asterisk and
its modules, the trunks and phones, the SMS link, the TLS certificate, the disk under the
recordings, the audit chain and the clock. Exit status 0 (all well), 1 (warnings) or 2
(failures).

Each check is a function from the settings to findings; one that cannot reach what it
checks says so as its finding (never a stack trace), and the others still run.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from core.db import Store
from core.errors import HotlineError
from core.settings import Settings
from hotline.errors import NoDatabase

# Asterisk modules without which calls do not work: SIP, the IVR's FastAGI, queues,
# recordings, and the dialplan functions the 12333 dialplan uses.
REQUIRED_MODULES = ("chan_pjsip.so", "res_pjsip.so", "res_agi.so", "app_queue.so", "app_mixmonitor.so")
CERT_WARN_DAYS = 21
DISK_WARN_FREE = 0.15
DISK_FAIL_FREE = 0.05
CLOCK_WARN_S = 2.0


class Level(IntEnum):
    OK = 0
    WARNING = 1
    FAILURE = 2


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level.name.lower(), "message": self.message}


Check = Callable[[Settings], Iterator[Finding]]


def run(settings: Settings, checks: tuple[Check, ...] | None = None, expect_head: str | None = None) -> list[Finding]:
    """Every check's findings; `expect_head` is the audit head kept outside the database."""
    out: list[Finding] = []
    for check in checks or ALL:
        name = check.__name__.removeprefix("check_")
        try:
            out.extend(check_audit(settings, expect_head) if check is check_audit else check(settings))
        except (HotlineError, OSError, subprocess.SubprocessError) as exc:
            out.append(Finding(name, Level.FAILURE, f"could not be checked: {exc}"))
        except DBAPIError as exc:  # a store without its schema, or one that refused the read
            first = str(exc.orig).splitlines()[0] if exc.orig is not None else type(exc).__name__
            out.append(Finding(name, Level.FAILURE, f"could not be checked: the store said {first}"))
    return out


def exit_status(findings: list[Finding]) -> int:
    return max((f.level for f in findings), default=Level.OK).value


def as_text(findings: list[Finding]) -> str:
    marks = {Level.OK: "ok  ", Level.WARNING: "WARN", Level.FAILURE: "FAIL"}
    lines = [f"{marks[f.level]}  {f.check:<10} {f.message}" for f in findings]
    worst = Level(exit_status(findings))
    summary = {Level.OK: "all well", Level.WARNING: "warnings above", Level.FAILURE: "FAILURES above"}[worst]
    return "\n".join([*lines, f"hotline doctor: {summary}"])


def _store(settings: Settings) -> Store:
    """The site's store as it is: never migrated, and a SQLite file that is not there is not
    made (an empty one would answer every check)."""
    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        raise NoDatabase(
            f"no SQLite database at {url.database}: `hotline db upgrade` makes one (or check database.url)"
        )
    return Store(settings.database.url)


def check_settings(settings: Settings) -> Iterator[Finding]:
    if settings.security.demo:
        yield Finding("settings", Level.WARNING, "the local demo's settings (security.demo = true): never on a site")
    else:
        yield Finding("settings", Level.OK, "valid")
    if settings.web.host not in ("127.0.0.1", "::1", "localhost") and not settings.web.secure_cookies:
        yield Finding(
            "settings",
            Level.WARNING,
            f"the console listens on {settings.web.host} with web.secure_cookies = false: put it behind TLS"
            " (a reverse proxy) and turn secure_cookies on",
        )


def check_database(settings: Settings) -> Iterator[Finding]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from core.db import MIGRATIONS

    store = _store(settings)
    try:
        with store.transaction() as c:
            current = set(MigrationContext.configure(c).get_current_heads())
        heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
    finally:
        store.dispose()
    kind = store.engine.dialect.name
    if current == heads:
        yield Finding("database", Level.OK, f"{kind} answers; schema at the newest revision ({', '.join(heads)})")
    elif not current:
        yield Finding("database", Level.FAILURE, f"{kind} answers but has no schema: run `hotline db upgrade`")
    else:
        yield Finding(
            "database",
            Level.FAILURE,
            f"{kind} schema at {', '.join(sorted(current))}, the code needs {', '.join(heads)}:"
            " run `hotline db upgrade`",
        )
    if kind == "sqlite" and not settings.security.demo:
        yield Finding("database", Level.WARNING, "SQLite: fine for one small site; PostgreSQL is what a site runs")


def check_serve(settings: Settings) -> Iterator[Finding]:
    from hotline.status import NotRunning, ask_health

    try:
        answer = ask_health(settings.web)
    except NotRunning as exc:
        yield Finding("serve", Level.FAILURE, str(exc))
        return
    down = [name for name, part in answer.get("components", {}).items() if part["state"] not in ("up", "done")]
    if down:
        yield Finding("serve", Level.FAILURE, f"components not up: {', '.join(down)} (hotline status; the serve log)")
    else:
        yield Finding("serve", Level.OK, f"answers; {len(answer.get('components', {}))} components up")
    for warning in answer.get("warnings", []):
        yield Finding("serve", Level.WARNING, warning)


def check_asterisk(settings: Settings) -> Iterator[Finding]:
    from ivr.asterisk import LocalAsterisk, ami_login

    if settings.cluster.enabled:
        yield Finding("asterisk", Level.OK, "a cluster: `hotline cluster status` lists each node")
        return
    local = LocalAsterisk(settings)
    if local.running_pid() is None:
        yield Finding("asterisk", Level.FAILURE, "Asterisk is not running: `hotline asterisk up`")
        return
    ami_login(settings.ami.host, settings.ami.port, settings.ami.user, settings.ami.secret)
    loaded = local.cli("module show")
    missing = [m for m in REQUIRED_MODULES if m not in loaded]
    if missing:
        yield Finding("asterisk", Level.FAILURE, f"Asterisk runs without {', '.join(missing)}: calls cannot work")
    else:
        yield Finding("asterisk", Level.OK, f"running; AMI answers; {len(REQUIRED_MODULES)} needed modules loaded")
    yield from _trunks(settings, local.cli("pjsip show registrations"))


def _trunks(settings: Settings, registrations: str) -> Iterator[Finding]:
    """A trunk that registers with its carrier must show as Registered; one that does not
    register takes the carrier's calls from its `match` addresses, which nothing here can
    test without a call (`hotline call` through it)."""
    from ivr.pjsip_config import trunk_endpoint
    from ivr.pjsip_status import registration_states

    states = registration_states(registrations)
    for trunk in settings.sip.trunks:
        if not trunk.registration:
            yield Finding(
                "trunk", Level.OK, f"{trunk.name}: takes calls from {', '.join(trunk.match)}; no registration"
            )
            continue
        state = states.get(trunk_endpoint(trunk) + "-registration", "not configured in Asterisk")
        if state == "Registered":
            yield Finding("trunk", Level.OK, f"{trunk.name}: registered with {trunk.host}")
        else:
            yield Finding("trunk", Level.FAILURE, f"{trunk.name}: not registered with {trunk.host} ({state})")


def check_phones(settings: Settings) -> Iterator[Finding]:
    from hotline.phones import listing

    store = _store(settings)
    try:
        phones = listing(settings, store)
    finally:
        store.dispose()
    if not phones:
        yield Finding("phones", Level.OK, "no SIP phones configured (scripted or softphone agents only)")
        return
    if any(p["registered"] is None for p in phones):
        yield Finding("phones", Level.FAILURE, "the registrar (Asterisk or the edge) does not answer")
        return
    registered = sum(1 for p in phones if p["registered"])
    level = Level.OK if registered else Level.WARNING
    yield Finding("phones", level, f"{registered} of {len(phones)} phones registered (hotline phones list)")


def check_sms(settings: Settings) -> Iterator[Finding]:
    from sms import link_status

    if settings.sms.transport == "twilio":
        yield Finding("sms", Level.OK, f"transport {settings.sms.transport}: its cloud cannot be checked from here")
        return
    name = settings.sms.transport.upper()  # SMPP or CMPP: each publishes its link's state the same way
    store = _store(settings)
    try:
        links = [lk for lk in link_status.links(store, dt.datetime.now(dt.UTC)) if lk["current"]]
    finally:
        store.dispose()
    bound = [lk["name"] for lk in links if lk["state"] == "bound"]
    if bound:
        yield Finding("sms", Level.OK, f"{name} bound ({', '.join(bound)})")
    elif links:
        states = ", ".join(f"{lk['name']} {lk['state']}" for lk in links)
        yield Finding("sms", Level.FAILURE, f"no {name} link up: {states} (hotline sms status)")
    else:
        yield Finding("sms", Level.FAILURE, f"no {name} link reported lately: is `hotline serve` with sms running?")


def check_certificate(settings: Settings) -> Iterator[Finding]:
    from cryptography import x509

    path = settings.sip.tls_cert
    if path is None:
        yield Finding("tls", Level.OK if not settings.sip.webrtc else Level.WARNING, _no_cert(settings))
        return
    cert = x509.load_pem_x509_certificate(Path(path).expanduser().read_bytes())
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    when = f"{cert.not_valid_after_utc:%Y-%m-%d}"
    if left <= dt.timedelta(0):
        yield Finding("tls", Level.FAILURE, f"{path} expired on {when}: softphones cannot connect")
    elif left < dt.timedelta(days=CERT_WARN_DAYS):
        yield Finding("tls", Level.WARNING, f"{path} expires on {when}, in {left.days} days: renew it")
    else:
        yield Finding("tls", Level.OK, f"{path} valid until {when}")


def _no_cert(settings: Settings) -> str:
    if not settings.sip.webrtc:
        return "no TLS certificate needed (sip.webrtc off)"
    return "softphones use a self-signed certificate made at `asterisk up`: set sip.tls_cert and sip.tls_key on a site"


def check_disk(settings: Settings) -> Iterator[Finding]:
    where = settings.recordings.dir
    probe = where if where.exists() else next((p for p in where.parents if p.exists()), Path("/"))
    usage = shutil.disk_usage(probe)
    free = usage.free / usage.total
    message = f"{usage.free / 2**30:.1f} GiB free ({free:.0%}) under {where}"
    level = Level.FAILURE if free < DISK_FAIL_FREE else Level.WARNING if free < DISK_WARN_FREE else Level.OK
    yield Finding("disk", level, message + ("" if level is Level.OK else ": recordings stop when it is full"))


def check_audit(settings: Settings, expect_head: str | None = None) -> Iterator[Finding]:
    from core.audit_log import Head, verify
    from core.audit_seal import verify_sealed

    key = settings.security.audit_seal_key()
    expect = Head.parse(expect_head) if expect_head else None
    store = _store(settings)
    try:
        verdict = verify(store, expect) if key is None else verify_sealed(store, key, expect)
    finally:
        store.dispose()
    if verdict.broken is not None:
        b = verdict.broken
        yield Finding("audit", Level.FAILURE, f"chain BROKEN at seq {b.seq}: {b.problem} (hotline audit verify)")
        return
    kept = " and holds the kept head" if expect else ""
    yield Finding("audit", Level.OK, f"{verdict.rows} rows, chain intact{kept}; head {verdict.head_seq}")
    if key is None and not settings.security.demo:
        yield Finding("audit", Level.WARNING, "security.audit_key is not set: the chain's seals are not checked")


def check_clock(settings: Settings) -> Iterator[Finding]:
    store = _store(settings)
    try:
        if store.engine.dialect.name == "postgresql":
            with store.transaction() as c:
                theirs = c.scalar(text("SELECT clock_timestamp()"))
            skew = abs((theirs - dt.datetime.now(dt.UTC)).total_seconds())
            level = Level.WARNING if skew > CLOCK_WARN_S else Level.OK
            yield Finding("clock", level, f"this machine and PostgreSQL differ by {skew:.1f} s")
    finally:
        store.dispose()
    try:
        synced = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        yield Finding("clock", Level.WARNING, "cannot ask timedatectl whether the clock is synchronised: check NTP")
        return
    answer = synced.stdout.strip()
    if synced.returncode != 0 or answer not in ("yes", "no"):
        yield Finding("clock", Level.WARNING, "timedatectl does not answer here (no systemd?): check NTP by hand")
    elif answer == "no":
        yield Finding("clock", Level.WARNING, "the clock is not synchronised (NTP): call times and deadlines drift")
    else:
        yield Finding("clock", Level.OK, "synchronised (NTP)")


ALL: tuple[Check, ...] = (
    check_settings,
    check_database,
    check_serve,
    check_asterisk,
    check_phones,
    check_sms,
    check_certificate,
    check_disk,
    check_audit,
    check_clock,
)
