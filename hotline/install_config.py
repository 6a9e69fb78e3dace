"""`/etc/hotline/hotline.toml` as `hotline install` writes it: the current settings that
differ from the defaults, the server's paths, and secrets generated here.

Pure: nothing here reads or writes a file. The text is checked by `core.settings` itself
before it is returned, so a file the installer writes always loads.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from core.errors import SettingsError
from core.settings import AMI_SECRET_MIN, AUDIT_KEY_MIN, Settings

DATA_DIR: Final = Path("/var/lib/hotline")
# Under DATA_DIR: what the platform keeps besides the database.
RECORDINGS: Final = "recordings"
NOTICE_SPEECH: Final = "notice-speech"
ASTERISK_CACHE: Final = "asterisk"  # the debootstrap root, its logs, the SIP bans' fail2ban
DB_NAME: Final = "hotline"
DB_ROLE: Final = "hotline"


@dataclass(frozen=True)
class Secrets:
    """Fresh secrets for one server, from the `secrets` module (a CSPRNG). URL-safe base64
    only, so each may stand in a URL, in SQL quotes and in Asterisk's manager.conf as it is."""

    ami_secret: str = field(repr=False)
    pin_pepper: str = field(repr=False)
    audit_key: str = field(repr=False)
    softphone_secret: str = field(repr=False)
    db_password: str = field(repr=False)
    metrics_token: str = field(repr=False)  # Prometheus' bearer token for /metrics

    @classmethod
    def generate(cls) -> Secrets:
        # 24 bytes are 32 characters: twice AMI_SECRET_MIN; 32 bytes are 43, over AUDIT_KEY_MIN.
        made = cls(
            ami_secret=secrets.token_urlsafe(24),
            pin_pepper=secrets.token_urlsafe(32),
            audit_key=secrets.token_urlsafe(32),
            softphone_secret=secrets.token_urlsafe(32),
            db_password=secrets.token_urlsafe(24),
            metrics_token=secrets.token_urlsafe(32),
        )
        assert len(made.ami_secret) >= AMI_SECRET_MIN and len(made.audit_key) >= AUDIT_KEY_MIN
        return made

    def values(self) -> tuple[str, ...]:
        """Every secret, for masking them in what a command prints."""
        return (
            self.ami_secret,
            self.pin_pepper,
            self.audit_key,
            self.softphone_secret,
            self.db_password,
            self.metrics_token,
        )


def local_database_url(password: str) -> str:
    """The hotline's database on this server's PostgreSQL (Debian's pg_hba.conf lets local
    TCP connections in with a password: scram-sha-256)."""
    return f"postgresql+psycopg://{DB_ROLE}:{password}@localhost:5432/{DB_NAME}"


def server_values(settings: Settings, made: Secrets, data_dir: Path = DATA_DIR) -> dict[str, dict[str, Any]]:
    """What the installer sets over the current settings: paths under `data_dir`, the
    generated secrets, and a PostgreSQL URL unless the settings name one already."""
    url = settings.database.url
    return {
        "database": {"url": url if url.startswith("postgresql") else local_database_url(made.db_password)},
        "ami": {"secret": made.ami_secret},
        "asterisk": {"cache_dir": str(data_dir / ASTERISK_CACHE)},
        "security": {"pin_pepper": made.pin_pepper, "audit_key": made.audit_key},
        "sip": {"softphone_secret": made.softphone_secret},
        # The console listens on 127.0.0.1 behind nginx's TLS (hotline/nginx_config.py).
        "web": {"metrics_token": made.metrics_token, "secure_cookies": True, "trusted_proxies": ["127.0.0.1"]},
        "recordings": {"dir": str(data_dir / RECORDINGS)},
        "notices": {"speech_dir": str(data_dir / NOTICE_SPEECH)},
    }


def render_config(settings: Settings, made: Secrets, when: dt.datetime, data_dir: Path = DATA_DIR) -> str:
    """hotline.toml for this server; SettingsError if the result would not load."""
    data = settings.model_dump(mode="json", exclude_defaults=True)
    security = data.get("security", {})
    # The demo's published secrets are accepted only with demo set: never on a server.
    security.pop("demo", None)
    security.pop("audit_key_file", None)  # the key is generated into this file instead
    if settings.security.demo:
        # The demo's 12345 counterpart signs with a key published in hotline.demo.toml: a
        # server taking orders with it would take them from anyone who read the repository.
        data.pop("hotline12345", None)
        # Nor does it log in to a carrier's gateway with the demo's CMPP secret.
        data.get("cmpp", {}).pop("secret", None)
    for section, values in server_values(settings, made, data_dir).items():
        data.setdefault(section, {}).update(values)
    head = (
        f"# Written by `hotline install` on {when:%Y-%m-%d %H:%M} UTC: this server's settings\n"
        '# (docs/operations.md, "Running it on a server"). It holds secrets: keep it mode 0640,\n'
        "# owner root, group hotline. `hotline install` never overwrites it; after a change,\n"
        "# `systemctl restart hotline-asterisk hotline-serve`.\n"
        "# A site sets at least: [[sip.trunks]], sip.external_address, [smpp], web.host.\n"
    )
    text = head + toml_text(data)
    check_config(text)
    return text


def check_config(text: str) -> Settings:
    """The settings `text` gives (the environment left out), or SettingsError naming why not."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"rendered hotline.toml is not TOML: {exc}") from exc
    try:
        return Settings.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError is one
        raise SettingsError(f"rendered hotline.toml is refused: {exc}") from exc


def toml_text(data: Mapping[str, Any]) -> str:
    """TOML for settings dumped as JSON values: tables of scalars, arrays and inline tables,
    and arrays of tables ([[sip.trunks]]). Strings are written as JSON strings, which TOML's
    basic strings read the same (TOML 1.0, "String": the same escapes, \\uXXXX included)."""
    out: list[str] = []
    for section, values in data.items():
        _table(out, section, values)
    return "\n".join(out) + "\n"


def _table(out: list[str], name: str, values: Mapping[str, Any]) -> None:
    plain = {k: v for k, v in values.items() if v is not None and not _is_table_array(v)}
    out.append(f"\n[{name}]")
    out.extend(f"{_key(k)} = {_value(v)}" for k, v in plain.items())
    for key, rows in values.items():
        if rows is not None and _is_table_array(rows):
            for row in rows:
                out.append(f"\n[[{name}.{_key(key)}]]")
                out.extend(f"{_key(k)} = {_value(v)}" for k, v in row.items() if v is not None)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise SettingsError(f"cannot write {type(value).__name__} into hotline.toml")
