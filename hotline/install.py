"""`hotline install` and `hotline uninstall` as plans: the list of actions that puts the
platform on a Debian server (or takes its units off), built without touching anything.

The executor (hotline/install_cli.py) applies a plan, prints it with `--dry-run`, or
applies its files under a temporary root with `--root`, skipping the `system` actions
(users, PostgreSQL, systemctl) that reach beyond files.
"""

from __future__ import annotations

import datetime as dt
import enum
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from core.settings import Settings
from hotline.install_config import (
    ASTERISK_CACHE,
    DB_NAME,
    DB_ROLE,
    NOTICE_SPEECH,
    RECORDINGS,
    Secrets,
    check_config,
    render_config,
)
from hotline.nginx_config import render_nginx
from hotline.units import SERVE, Layout, is_cluster, render_units

UNIT_DIR: Final = Path("/etc/systemd/system")
# Beside hotline.toml, written, not enabled: the site links it into /etc/nginx/sites-enabled/
# once its certificate is in place.
NGINX_SITE: Final = "nginx-hotline.conf"
NOLOGIN: Final = "/usr/sbin/nologin"


class Kind(enum.StrEnum):
    USER = "user"
    DIRECTORY = "directory"
    FILE = "file"
    COMMAND = "command"
    REMOVE = "remove"
    NOTE = "note"


@dataclass(frozen=True)
class Action:
    """One step. `text` and `stdin` may hold secrets: they are never printed (repr=False),
    and `mask` lists the secrets to hide in what a command prints back."""

    kind: Kind
    what: str  # one line for the operator; never a secret
    path: Path | None = None  # as the server sees it (--root prefixes it)
    mode: int | None = None
    owner: str = "root"
    group: str = "root"
    text: str = field(default="", repr=False)
    replace: bool = True  # FILE: False keeps an existing file (hotline.toml)
    argv: tuple[str, ...] = ()
    stdin: str = field(default="", repr=False)
    mask: tuple[str, ...] = field(default=(), repr=False)
    run_as: str = ""  # COMMAND: the account it runs as (runuser), "" for root
    cwd: Path = Path("/")  # COMMAND: where it runs (the account may not read the operator's)
    system: bool = False  # reaches beyond files: skipped with --root

    def describe(self) -> str:
        if self.kind in (Kind.DIRECTORY, Kind.FILE):
            return f"{self.what}: {self.path} ({self.mode:04o} {self.owner}:{self.group})"
        if self.kind in (Kind.COMMAND, Kind.USER):
            who = f" (as {self.run_as})" if self.run_as else ""
            return f"{self.what}: {shlex.join(self.argv)}{who}"
        if self.kind is Kind.REMOVE:
            return f"{self.what}: {self.path}"
        return self.what


@dataclass(frozen=True)
class Facts:
    """What the plan depends on, read from the server (or the --root) beforehand."""

    config_exists: bool  # hotline.toml is there: it is kept, with its secrets and database
    installed: Settings | None  # its settings, when it exists and could be read
    user_exists: bool
    unit_files: tuple[str, ...] = ()  # ALL_UNIT_FILES present in the unit directory


def install_plan(settings: Settings, layout: Layout, facts: Facts, made: Secrets, now: dt.datetime) -> list[Action]:
    """Every action of `hotline install`, in order."""
    user = layout.user
    plan = [_user(layout, facts)]
    plan += [
        Action(Kind.DIRECTORY, "configuration", layout.config.parent, 0o750, "root", user),
        Action(Kind.DIRECTORY, "data", layout.data_dir, 0o750, user, user),
        Action(Kind.DIRECTORY, "recordings", layout.data_dir / RECORDINGS, 0o750, user, user),
        Action(Kind.DIRECTORY, "notice speech", layout.data_dir / NOTICE_SPEECH, 0o750, user, user),
        # root's (Asterisk's root, the bans' fail2ban); serve reads Asterisk's logs in it.
        Action(Kind.DIRECTORY, "Asterisk root and SIP bans", layout.data_dir / ASTERISK_CACHE, 0o750, "root", user),
    ]
    if facts.config_exists:
        plan.append(Action(Kind.NOTE, f"kept {layout.config}: it exists (not overwritten; its secrets stay)"))
        served = facts.installed or settings
    else:
        text = render_config(settings, made, now, layout.data_dir)
        plan.append(Action(Kind.FILE, "settings with fresh secrets", layout.config, 0o640, "root", user, text, False))
        served = check_config(text)  # the units follow the file, not this shell's environment
        if not settings.database.url.startswith("postgresql"):
            plan.append(_postgresql(made))
        else:
            plan.append(Action(Kind.NOTE, "database.url names a PostgreSQL already: no role or database created"))
    tls = layout.config.parent / "tls"
    site = render_nginx(served, cert=tls / "console.pem", key=tls / "console.key")
    plan.append(
        Action(
            Kind.FILE,
            f"the console's TLS site for nginx (certificate into {tls})",
            layout.config.parent / NGINX_SITE,
            0o644,
            text=site,
        )
    )
    units = render_units(served, layout)
    for name, text in units.items():
        if "/" in name:
            plan.append(Action(Kind.DIRECTORY, "drop-in directory", UNIT_DIR / name.split("/")[0], 0o755))
        plan.append(Action(Kind.FILE, "systemd unit", UNIT_DIR / name, 0o644, text=text))
    plan += [Action(Kind.REMOVE, "unit no longer rendered", UNIT_DIR / n) for n in facts.unit_files if n not in units]
    plan.append(Action(Kind.COMMAND, "systemd reads the units", argv=("systemctl", "daemon-reload"), system=True))
    upgrade = (str(layout.program), "--config", str(layout.config), "db", "upgrade")
    # As serve runs: its user, its working directory (a relative SQLite path), and the
    # password of database.url hidden from what `db upgrade` prints (it names the URL).
    hidden = (*made.values(), urlsplit(served.database.url).password or made.db_password)
    plan.append(
        Action(
            Kind.COMMAND,
            "database schema",
            argv=upgrade,
            mask=hidden,
            run_as=user,
            cwd=layout.data_dir,
            system=True,
        )
    )
    plan.append(Action(Kind.NOTE, _next_steps(served, layout)))
    return plan


def _user(layout: Layout, facts: Facts) -> Action:
    if facts.user_exists:
        return Action(Kind.NOTE, f"user {layout.user} exists: kept")
    argv = ("useradd", "--system", "--user-group", "--home-dir", str(layout.data_dir), "--no-create-home")
    return Action(Kind.USER, "system user", argv=(*argv, "--shell", NOLOGIN, layout.user), system=True)


def postgresql_sql(password: str) -> str:
    """psql's input: the role (its password set to the one in the new hotline.toml, whether
    it is made now or was there) and the database, each only if missing. Given on stdin,
    so the password is on no command line."""
    return (
        "DO $$ BEGIN\n"
        f"  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{DB_ROLE}') THEN\n"
        f"    ALTER ROLE {DB_ROLE} WITH LOGIN PASSWORD '{password}';\n"
        f"    RAISE NOTICE 'role {DB_ROLE} existed: kept, with the password of the new hotline.toml';\n"
        "  ELSE\n"
        f"    CREATE ROLE {DB_ROLE} WITH LOGIN PASSWORD '{password}';\n"
        "  END IF;\n"
        "END $$;\n"
        f"SELECT 'CREATE DATABASE {DB_NAME} OWNER {DB_ROLE}'\n"
        f"  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DB_NAME}')\\gexec\n"
    )


def _postgresql(made: Secrets) -> Action:
    argv = ("psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "--dbname", "postgres")
    return Action(
        Kind.COMMAND,
        f"PostgreSQL role and database {DB_NAME}",
        argv=argv,
        stdin=postgresql_sql(made.db_password),
        mask=made.values(),
        run_as="postgres",
        system=True,
    )


def _next_steps(settings: Settings, layout: Layout) -> str:
    units = " ".join(sorted(n for n in render_units(settings, layout) if "/" not in n))
    telephony = "hotline-cluster" if is_cluster(settings) else "hotline-asterisk"
    return (
        f"next: set the site's trunks, SMSC and addresses in {layout.config}; `hotline prompts build`; then\n"
        f"  systemctl enable --now {units}\n"
        f"  journalctl -u {SERVE} -u {telephony}.service -f"
    )


def uninstall_plan(layout: Layout, facts: Facts) -> list[Action]:
    """Every action of `hotline uninstall`: the units go; settings, data, the user and the
    database stay, and the last line says so."""
    present = [n for n in facts.unit_files if "/" not in n]
    plan = []
    if present:
        plan.append(
            Action(Kind.COMMAND, "stop and disable", argv=("systemctl", "disable", "--now", *present), system=True)
        )
    for name in facts.unit_files:
        plan.append(Action(Kind.REMOVE, "systemd unit", UNIT_DIR / name))
        if "/" in name:
            plan.append(Action(Kind.REMOVE, "drop-in directory (if empty)", UNIT_DIR / name.split("/")[0]))
    if not facts.unit_files:
        plan.append(Action(Kind.NOTE, f"no hotline unit in {UNIT_DIR}"))
    plan.append(Action(Kind.COMMAND, "systemd forgets the units", argv=("systemctl", "daemon-reload"), system=True))
    plan.append(
        Action(
            Kind.NOTE,
            f"left in place: {layout.config.parent} (settings and secrets), {layout.data_dir} (data, "
            f"recordings, the Asterisk root), the user {layout.user}, and the PostgreSQL database "
            f"{DB_NAME} if there is one (`runuser -u postgres -- dropdb {DB_NAME}` removes it)",
        )
    )
    return plan
