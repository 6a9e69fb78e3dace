"""Typed settings, built once at start-up from a TOML file and `HOTLINE_*` variables.

The environment wins over the file. A variable is named after its section and field:
`HOTLINE_DATABASE_URL` sets `database.url`, `HOTLINE_AMI_SECRET` sets `ami.secret`.
Secrets have no default: the local demo writes its own (see `hotline.demo.toml`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import json
import os
import re
import tomllib
import typing
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.cluster_settings import ClusterSettings
from core.destinations import DestinationSettings
from core.errors import SettingsError
from core.sip_settings import SipSettings, check_networks

DEFAULT_CONFIG = Path("hotline.toml")
ENV_PREFIX = "HOTLINE_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/hotline.db"

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql (e.g. postgresql+psycopg://...)")
        return value


class AgiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(4573, ge=1, le=65535)
    # Only these peers may open a FastAGI session (Asterisk's address as seen from here).
    allowed_peers: tuple[str, ...] = ("127.0.0.1",)
    # The longest a single AGI command may take; GET DATA over a long prompt is the worst case.
    command_timeout_s: float = Field(90.0, gt=0)
    header_timeout_s: float = Field(5.0, gt=0)
    # Processes sharing the port (SO_REUSEPORT): one per core lifts the GIL's ceiling.
    workers: int = Field(1, ge=1, le=64)
    # Sessions (calls in the IVR) one process serves at once; over it a call is refused at
    # once and the dialplan apologises and queues it, instead of every caller waiting longer.
    max_sessions: int = Field(1000, ge=1)
    # The FastAGI servers Asterisk tries, in order, as "host:port": a call goes to the next
    # when one cannot be reached (the dialplan's hotline-agi). Empty: host:port above alone.
    servers: tuple[str, ...] = ()

    def address(self) -> str:
        """host:port that Asterisk dials for this server (it listens everywhere: loopback)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def dial_servers(self) -> tuple[str, ...]:
        """The FastAGI servers Asterisk tries in order: `servers`, else this one."""
        return self.servers or (self.address(),)

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for server in value:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in "&,;/ "):
                raise ValueError(f"agi.servers: {server!r} is not host:port")
        return value


class AmiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    user: str = "hotline"
    secret: str = Field("", description="no default: set it in the TOML file or HOTLINE_AMI_SECRET")
    connect_attempts: int = Field(8, ge=1)
    # Who may log in to AMI (manager.conf permit): this host, and on a site whose nodes are
    # other machines, the hosts that run `hotline serve`.
    permit: tuple[str, ...] = ("127.0.0.1/32",)

    @field_validator("permit")
    @classmethod
    def _permit(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("ami.permit: at least this host (127.0.0.1/32)")
        return check_networks(value)

    # Asterisk's queue_log and cdr-csv Master.csv as this host sees them. After every AMI
    # (re)login the monitor imports them, so calls that ended while the link (or `hotline
    # serve`) was down are recorded. Unset: the local Asterisk's (`hotline asterisk up`), if any.
    queue_log: Path | None = None
    cdr_csv: Path | None = None


class AsteriskSettings(_Section):
    cache_dir: Path = Path("~/.cache/hotline").expanduser()
    suite: str = "sid"
    mirror: str = "http://deb.debian.org/debian"
    # Whose Asterisk records these are. The dialplan marks every call into 12333 with it (the
    # CDR's accountcode), and the monitor's catch-up imports only calls so marked (or already
    # recorded live); the local Asterisk writes its logs in /var/log/asterisk/<instance> in its
    # root. The demo, the tests and the benchmarks share one root but not their records.
    instance: str = "hotline"

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", value):
            raise ValueError("asterisk.instance: 1 to 32 of a-z, 0-9, '_', '-' (a directory and an accountcode)")
        return value


class IvrSettings(_Section):
    menu_file: Path = Path(__file__).resolve().parent.parent / "ivr" / "menu.toml"
    prompts_dir: Path = Path(__file__).resolve().parent.parent / "prompts"
    attempts_per_step: int = Field(3, ge=1, le=9)
    max_pin_failures: int = Field(5, ge=1)
    lockout_hours: float = Field(24.0, gt=0)
    # One call may identify with at most this many different ID numbers (then only an agent
    # is offered), and one calling number may fail identification this many times a local
    # day: a caller cannot walk through other people's ID numbers.
    ids_per_call: int = Field(2, ge=1, le=9)
    caller_failures_per_day: int = Field(10, ge=1)
    # What a call from a number on the nuisance list hears (core/blocked_callers.py):
    # `self_service`, a prompt and then the menu without any agent; `hang_up`, a prompt and
    # the end of the call. Either way it never reaches an agent.
    blocked_treatment: Literal["self_service", "hang_up"] = "self_service"
    # A number that calls more than this many times in 24 hours is proposed for the nuisance
    # list (shown to supervisors; listed only by one).
    nuisance_calls_per_day: int = Field(20, ge=1)


# The shortest AMI secret `hotline serve` (with AMI) and `hotline asterisk up` accept outside
# the demo: AMI can originate calls through the trunk.
AMI_SECRET_MIN = 16
AUDIT_KEY_MIN = 32


class SecuritySettings(_Section):
    # A server-side secret mixed into every PIN hash: a copy of the database alone cannot
    # be searched for the million possible 6-digit PINs.
    pin_pepper: str = Field("", description="no default: set it in the TOML file or HOTLINE_SECURITY_PIN_PEPPER")
    # The local demo (`hotline.demo.toml` sets it): its published secrets are accepted as
    # they are. Never set on a site: then short secrets are refused and an unsealed audit
    # chain is warned about.
    demo: bool = False
    # The key that seals the audit chain's head (core/audit_seal.py), kept outside the
    # database so a copy of it cannot be rebuilt into a chain that verifies: the key itself
    # (HOTLINE_SECURITY_AUDIT_KEY; never in a log line) or a file holding it (readable by
    # the hotline's user only). At least AUDIT_KEY_MIN characters. Unset: the head is
    # logged but not sealed, and `hotline serve` and `hotline audit verify` say so loudly.
    audit_key: str = Field("", repr=False)
    audit_key_file: Path | None = None

    @model_validator(mode="after")
    def _one_audit_key(self) -> SecuritySettings:
        if self.audit_key and self.audit_key_file is not None:
            raise ValueError("set security.audit_key or security.audit_key_file, not both")
        if self.audit_key and len(self.audit_key) < AUDIT_KEY_MIN:
            raise ValueError(f"security.audit_key: at least {AUDIT_KEY_MIN} characters")
        return self

    def audit_seal_key(self) -> bytes | None:
        """The audit chain's sealing key (from the file if one is named), or None if unset."""
        if self.audit_key_file is None:
            return self.audit_key.encode() or None
        try:
            key = self.audit_key_file.expanduser().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"security.audit_key_file: cannot read {self.audit_key_file}: {exc}") from exc
        if len(key) < AUDIT_KEY_MIN:
            raise SettingsError(
                f"security.audit_key_file: {self.audit_key_file} holds under {AUDIT_KEY_MIN} characters"
            )
        return key.encode()


class SmppSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(2775, ge=1, le=65535)
    system_id: str = Field("hotline", max_length=15)
    password: str = Field("", max_length=8)  # SMPP 3.4 §5.2.2: at most 8 characters
    source_addr: str = "12333"
    # Unanswered submit_sm at any moment, and submits per second: both as agreed with the SMSC.
    window: int = Field(10, ge=1, le=1000)
    # The part of the window batch messages may fill; the rest is kept for instant
    # reminders, which then never wait for a window full of a batch.
    batch_share: float = Field(0.8, gt=0, le=1)
    tps: float = Field(100.0, gt=0)
    throttle_pause_s: float = Field(1.0, gt=0)
    # SMPP 3.4 §7.2's timers (sms/smpp_link.py). A submit_sm unanswered for
    # `response_timeout_s`, or an enquire_link for `enquire_link_timeout_s`, means a dead
    # bind: it is dropped, bound again after `rebind_first_s` (doubling up to
    # `rebind_most_s` while binds fail), and what it left unanswered is queued again as a
    # possible duplicate. An enquire_link goes out after `enquire_link_s` with nothing received.
    response_timeout_s: float = Field(15.0, gt=0, le=600)
    enquire_link_s: float = Field(30.0, gt=0, le=3600)
    enquire_link_timeout_s: float = Field(10.0, gt=0, le=600)
    rebind_first_s: float = Field(1.0, gt=0, le=600)
    rebind_most_s: float = Field(30.0, gt=0, le=3600)
    socket_timeout_s: int = Field(10, ge=1)  # connect and bind (§7.2's session_init_timer)
    # A bind that answers but takes nothing (sms/bind_health.py): `sick_after_refusals`
    # submit_sm refused in a row with temporary errors (0x14, 0x58, 0x08...), or refusals
    # only for `sick_after_s`, and it is unbound and bound again (to the next address).
    sick_after_refusals: int = Field(50, ge=1)
    sick_after_s: float = Field(30.0, gt=0)
    # More SMSC addresses ("host:port", or "host" for `port`), tried in turn after
    # host:port when a bind fails or turns sick. Env: comma-separated.
    fallbacks: tuple[str, ...] = ()
    # How message ids are written in submit_sm_resp and in receipts: 16, 10, or 0 (opaque).
    # Receipts' base, unset, is learnt per link from the first receipts that match (sms/receipts.py).
    submit_id_base: int = 16
    receipt_id_base: int | None = None

    @field_validator("submit_id_base", "receipt_id_base")
    @classmethod
    def _a_base(cls, value: int | None) -> int | None:
        if value not in (None, 0, 10, 16):
            raise ValueError("must be 16, 10 or 0 (opaque text)")
        return value

    @model_validator(mode="after")
    def _backoff_grows(self) -> SmppSettings:
        if self.rebind_most_s < self.rebind_first_s:
            raise ValueError("rebind_most_s must be at least rebind_first_s")
        return self

    @field_validator("fallbacks")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            host, sep, port = address.rpartition(":")
            if not address.strip() or (sep and (not host or not port.isdigit() or not 1 <= int(port) <= 65535)):
                raise ValueError(f"{address!r}: expected host:port or host")
        return value

    def addresses(self) -> list[tuple[str, int]]:
        """host:port, then each fallback, in the order they are tried."""
        out = [(self.host, self.port)]
        for address in self.fallbacks:
            host, sep, port = address.rpartition(":")
            out.append((host, int(port)) if sep else (address, self.port))
        return out


class CmppSettings(_Section):
    """China Mobile's CMPP 2.0/3.0 to an SMS gateway (ISMG) as the transport
    (`sms.transport = "cmpp"`): sending, status reports and residents' replies (sms/cmpp.py)."""

    host: str = "127.0.0.1"
    port: int = Field(7890, ge=1, le=65535)
    # Source_Addr (the SP's enterprise code, 6 characters) and the shared secret: as the
    # carrier issued them. Secret: set it in the TOML file or HOTLINE_CMPP_SECRET.
    sp_id: str = Field("", max_length=6)
    secret: str = Field("", description="secret: set it in the TOML file or HOTLINE_CMPP_SECRET")
    # The 106... service code residents see (Src_Id), and an extension per category
    # appended to it ({"employer_notice": "01"}): 21 digits at most in all.
    src_id: str = Field("", max_length=21)
    src_extensions: dict[str, str] = Field(default_factory=dict)
    service_id: str = Field("", max_length=10)
    version: Literal["2.0", "3.0"] = "3.0"
    # TCP links to the gateway (as the account allows), and unanswered SUBMITs on each.
    links: int = Field(1, ge=1, le=32)
    window: int = Field(16, ge=1, le=1000)
    # The part of the window batch messages may fill; the rest is kept for instant reminders.
    batch_share: float = Field(0.8, gt=0, le=1)
    # CMPP §5.3's C, T and N: an ACTIVE_TEST after C s with nothing received; a request
    # unanswered for T s is sent again (ACTIVE_TEST) or lost (SUBMIT, requeued as a possible
    # duplicate); after N ACTIVE_TESTs unanswered the link is closed and connected again.
    active_test_s: float = Field(180.0, gt=0, le=3600)
    response_timeout_s: float = Field(60.0, gt=0, le=600)
    retries: int = Field(3, ge=1, le=10)
    # Result 8 (flow control) pauses the link this long; the SUBMIT is sent again.
    flow_pause_s: float = Field(1.0, gt=0, le=60)
    # Between connects while the gateway refuses or is unreachable: doubling up to the most.
    reconnect_first_s: float = Field(1.0, gt=0, le=600)
    reconnect_most_s: float = Field(30.0, gt=0, le=3600)
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    # Fees (CMPP §6.3.3): free of charge by default, the destination "paying" nothing.
    fee_user_type: int = Field(0, ge=0, le=3)
    fee_terminal_id: str = Field("", max_length=21)
    fee_type: str = Field("01", pattern=r"^0[1-5]$")
    fee_code: str = Field("000000", pattern=r"^[0-9]{1,6}$")
    # The SP's enterprise code in Msg_src; empty: sp_id.
    msg_src: str = Field("", max_length=6)

    @field_validator("src_extensions")
    @classmethod
    def _digits(cls, value: dict[str, str]) -> dict[str, str]:
        for category, extension in value.items():
            if not extension.isdigit():
                raise ValueError(f"{category}: an extension is digits, not {extension!r}")
        return value

    @model_validator(mode="after")
    def _fits(self) -> CmppSettings:
        if self.reconnect_most_s < self.reconnect_first_s:
            raise ValueError("reconnect_most_s must be at least reconnect_first_s")
        for category, extension in self.src_extensions.items():
            if len(self.src_id + extension) > 21:
                raise ValueError(f"src_id with the extension of {category} is over 21 digits (Src_Id)")
        return self

    def source_for(self, category: str | None) -> str:
        """Src_Id for a message of `category`: the service code and its extension."""
        return self.src_id + self.src_extensions.get(category or "", "")


class TwilioSettings(_Section):
    """Twilio's Messages API as the second transport (`sms.transport = "twilio"`); replies
    from residents (MO) stay on SMPP: Twilio offers no two-way SMS in mainland China."""

    account_sid: str = ""
    auth_token: str = Field("", description="secret: set it in the TOML file or HOTLINE_TWILIO_AUTH_TOKEN")
    from_number: str = ""  # E.164, or leave empty and set messaging_service_sid
    messaging_service_sid: str = ""
    # The public URL of the console's /twilio/status, as Twilio will call it (it is signed
    # over exactly this URL). Empty: no status callbacks, messages stay `submitted` until
    # `sms.receipt_timeout_s` makes them `unknown`.
    status_callback_url: str = ""
    # Where the Messages API is: Twilio's own unless a test points it at a local server.
    base_url: str = "https://api.twilio.com"
    country_code: str = "86"  # numbers in the store are national; Twilio wants E.164
    concurrency: int = Field(10, ge=1, le=200)  # requests in flight at once
    tps: float = Field(10.0, gt=0)  # requests per second
    throttle_pause_s: float = Field(1.0, gt=0)  # after HTTP 429
    timeout_s: float = Field(15.0, gt=0)


class WeChatSettings(_Section):
    """The WeChat official account (微信公众号) whose template messages carry notices
    (`sms/wechat.py`), and the binding of residents' accounts to their ID numbers. Off unless
    `enabled`; then app_id, app_secret and token are required."""

    enabled: bool = False
    app_id: str = ""
    # Secret: set it in the TOML file or HOTLINE_WECHAT_APP_SECRET. Never in a log line or a repr.
    app_secret: str = Field("", repr=False)
    # Where the official-account API is: WeChat's own unless a test points it at a local server.
    api_base: str = "https://api.weixin.qq.com"
    timeout_s: float = Field(10.0, gt=0, le=120)
    # The template id (from the account's 模板库) per notice category, e.g. {pension_credited = "..."}.
    templates: dict[str, str] = Field(default_factory=dict)
    # A token is fetched again this long before WeChat said it runs out (at most half its life).
    token_margin_s: float = Field(300.0, ge=0)
    # A configuration error WeChat reports (a bad secret, an unknown template id) pauses the
    # channel this long; then notices are tried again, in case the account was fixed meanwhile.
    config_error_pause_s: float = Field(3600.0, gt=0)
    # Secret: the token entered with the server URL in the account's 基本配置, which signs the
    # event pushes (console/wechat_events.py). HOTLINE_WECHAT_TOKEN; never in a log line.
    token: str = Field("", repr=False)
    # Binding a resident's openid to their ID number (console/wechat_bind.py): where WeChat's
    # web authorisation (网页授权) page is, and our page's public address (its redirect_uri;
    # empty: the address the request came to).
    oauth_base: str = "https://open.weixin.qq.com"
    bind_url: str = ""
    bind_session_minutes: int = Field(30, ge=1, le=24 * 60)
    bind_code_minutes: int = Field(10, ge=1, le=60)
    bind_code_tries: int = Field(5, ge=1, le=10)
    # Codes asked for in any rolling hour, per WeChat account, per ID number and across the
    # hotline (each one an SMS to the number's registered phone, if it has one).
    bind_codes_per_openid_per_hour: int = Field(5, ge=1)
    bind_codes_per_id_per_hour: int = Field(3, ge=1)
    bind_codes_per_hour: int = Field(300, ge=1)
    # Security mode (安全模式, sms/wechat_crypt.py): the account's EncodingAESKey (43 characters,
    # secret: HOTLINE_WECHAT_ENCODING_AES_KEY, never in a log line). With it, pushes that come
    # encrypted (encrypt_type=aes) are decrypted and answered encrypted; `security_mode`
    # refuses every push that is not (set it once the account is switched to 安全模式).
    encoding_aes_key: str = Field("", repr=False)
    security_mode: bool = False

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, value: str) -> str:
        if not value:
            return value
        try:
            key = base64.b64decode(value + "=", validate=True)
        except binascii.Error:
            key = b""
        if len(value) != 43 or len(key) != 32:
            raise ValueError("an EncodingAESKey: the 43 characters of base64 the account's 基本配置 shows")
        return value

    @field_validator("api_base", "oauth_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL, e.g. https://api.weixin.qq.com")
        return value.rstrip("/")

    @field_validator("templates")
    @classmethod
    def _template_ids(cls, value: dict[str, str]) -> dict[str, str]:
        for category, template_id in value.items():
            if not template_id.strip():
                raise ValueError(f"{category}: an empty template id")
        return value

    @model_validator(mode="after")
    def _credentials_when_enabled(self) -> WeChatSettings:
        if self.enabled:
            needed = ("app_id", "app_secret", "token") + ("encoding_aes_key",) * self.security_mode
            missing = [name for name in needed if not getattr(self, name)]
            if missing:
                hint = ", ".join(f"wechat.{name} (or {ENV_PREFIX}WECHAT_{name.upper()})" for name in missing)
                raise ValueError(f"wechat.enabled needs {hint}")
        return self


class SmsSettings(_Section):
    """The gateway's own rules (the SMPP link is `smpp.*`)."""

    # Batch categories are not sent in these local hours (start, end; the window may cross
    # midnight); messages due inside wait for its end. Instant reminders ignore them.
    quiet_hours: dict[str, tuple[dt.time, dt.time]] = Field(
        default_factory=lambda: {
            "policy": (dt.time(21), dt.time(8)),
            "statement": (dt.time(21), dt.time(8)),
            "employer_notice": (dt.time(20), dt.time(8)),
        }
    )
    # An event stuck in `claimed`, or a message stuck in `sending`, this long (its claimer
    # died) is claimed again; a message so reclaimed is flagged as a possible duplicate.
    reclaim_after_s: int = Field(120, ge=1)
    # Attempts whose answer was lost with the link (the SMSC may have it): then a dead letter.
    max_attempts: int = Field(5, ge=1)
    # Temporary refusals (0x14, 0x58, 0x08...: nothing accepted) are no attempts: the message
    # is queued again after retry_base_s, doubling up to 32 times that, and is a dead letter
    # after `max_refusals` of them.
    retry_base_s: float = Field(2.0, gt=0)
    max_refusals: int = Field(50, ge=1)
    # Throttled segments are resubmitted after the transport's pause, this many times at most.
    max_resubmits: int = Field(50, ge=1)
    # A message without its final receipt this long after submission ends `unknown`.
    receipt_timeout_s: int = Field(48 * 3600, ge=1)
    # How often a dispatcher looks for due work when nothing wakes it (SQLite has no NOTIFY).
    poll_s: float = Field(0.2, gt=0)
    claim_batch: int = Field(200, ge=1)
    # How messages leave: "smpp" (smpp.*), "cmpp" (cmpp.*: replies come over it too) or
    # "twilio" (twilio.*; replies still come over SMPP).
    transport: Literal["smpp", "cmpp", "twilio"] = "smpp"
    # Numbers written without a country code are in this one (core.phones: the store keeps
    # national numbers of this country, E.164 for any other).
    country_code: str = Field("86", pattern=r"^[1-9][0-9]{0,2}$")
    # Replies to residents' texts (MO) per number in any rolling hour; texts past it are
    # stored and handled without a reply (auto-responder loops, spoofed senders).
    mo_replies_per_hour: int = Field(5, ge=0)
    # A deliver_sm whose handling fails this many times is kept as a dead letter and
    # answered, so the SMSC stops delivering it again.
    inbound_max_tries: int = Field(5, ge=1)


class NoticeSettings(_Section):
    """How notices reach residents over the channels they chose (core/preferences.py): the
    voice channel's calls out (ivr/notice_calls.py) and the gateway's moves between channels."""

    # Calls out only in these local hours (queue.timezone), every day: stricter than SMS
    # quiet hours. A notice due outside them waits for the next start. Start = end: all day.
    calling_hours: tuple[dt.time, dt.time] = (dt.time(9), dt.time(20))
    # Calls out for one notice, each `retry_after_s` after the last (busy, no answer, failed);
    # then the notice moves to the resident's next channel.
    max_attempts: int = Field(3, ge=1, le=10)
    retry_after_s: float = Field(600.0, gt=0)
    # Notice calls up at once (also counted among sip.outbound_channels with callbacks):
    # inbound callers keep the rest of the trunk's lines.
    max_calls: int = Field(4, ge=0, le=200)
    # How long a resident's phone rings before the attempt counts as unanswered.
    ring_s: int = Field(30, ge=5, le=120)
    # The outbound trunk down (Asterisk refuses the channel, no trunk registered): the call is
    # not counted as an attempt and is placed again after this long.
    trunk_retry_s: float = Field(60.0, gt=0)
    # A call claimed this long without an outcome (its dialler died) is queued again.
    reclaim_after_s: int = Field(600, ge=60)
    # The hotline's name, spoken first in every notice call ("这里是12333...").
    caller_name: str = "12333人社服务热线"
    caller_name_en: str = "the 12333 social security hotline"
    # Where the notices' speech is kept, by a digest of its text (made once per text), and
    # where Asterisk reads it (for the local Asterisk, `speech_dir` is bind-mounted there in
    # its root; on a site whose Asterisk runs elsewhere, the two name one shared directory).
    speech_dir: Path = Path("var/notice-speech")
    speech_asterisk_dir: str = "/var/spool/asterisk/hotline-notices"
    # How often the gateway looks for notices whose channel gave up.
    poll_s: float = Field(1.0, gt=0)

    @field_validator("calling_hours")
    @classmethod
    def _a_day_window(cls, value: tuple[dt.time, dt.time]) -> tuple[dt.time, dt.time]:
        if value[0] > value[1]:
            raise ValueError('calling hours are start < end within one day, e.g. ["09:00", "20:00"] (equal: all day)')
        return value


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # A signed-in console expires after this long without a request.
    session_idle_minutes: int = Field(480, ge=1, le=7 * 24 * 60)
    # Send cookies only over HTTPS; turn on behind a TLS proxy (off for the local demo on http).
    secure_cookies: bool = False
    # Per network address, besides the per-account lock: this many failed sign-ins in the
    # window, then the address is refused for `sign_in_block_minutes`.
    sign_in_failures_per_address: int = Field(20, ge=1)
    sign_in_window_minutes: int = Field(15, ge=1)
    sign_in_block_minutes: int = Field(30, ge=1)
    # Passwords checked at once (16 MiB and ~50 ms of a core each, in threads of their own:
    # a flood of sign-ins takes one core, not the calls'), sign-ins under way at once in
    # all (waiting for a check included), from one address and for one user name; more
    # are answered 429.
    sign_ins_at_once: int = Field(1, ge=1, le=64)
    sign_ins_under_way: int = Field(32, ge=1)
    sign_ins_per_address_at_once: int = Field(4, ge=1)
    sign_ins_per_user_at_once: int = Field(2, ge=1)
    # Live pages (server-sent event streams) open at once per user and per address.
    streams_per_user: int = Field(4, ge=1)
    streams_per_address: int = Field(20, ge=1)
    # Reverse proxies in front of the console (their addresses as seen here): from them the
    # client's address is the last one X-Forwarded-For names that is not a proxy's. From
    # anyone else the header is ignored, or a client could name any address it likes.
    # Addresses or networks (`10.0.0.5`, `10.0.0.0/24`, `::1`); a hostname is refused.
    trusted_proxies: tuple[str, ...] = ()
    # `/metrics` (Prometheus' text format) answers a request bearing this token
    # (`Authorization: Bearer ...`, Prometheus' scrape `authorization`); empty: no metrics.
    metrics_token: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_networks(value)

    def is_trusted_proxy(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
        return any(ip in ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies)


class QueueSettings(_Section):
    """Service targets and when a caller is offered a callback instead of waiting."""

    # Service level: answered within this many seconds (GB/T 33358-2016 asks for 15; 20 is
    # the older industry 80/20), and the share of calls that should be (the goal).
    service_level_s: int = Field(15, ge=1, le=600)
    service_level_goal: float = Field(0.8, gt=0, lt=1)
    # 24-hour connection rate (接通率, GB/T 33358: at least 95 %): answered / offered to
    # agents, leaving out callers who hung up within `short_abandon_s` of joining the queue
    # (a misdial or a change of mind, not a call the floor failed to take).
    connection_rate_goal: float = Field(0.95, gt=0, le=1)
    short_abandon_s: int = Field(5, ge=0, le=120)
    # Staffing (reports/staffing.py): handling time is talk plus this wrap-up, the queues'
    # `wrapuptime` in dialplans/queues.conf; history of this many weeks by default.
    wrapup_s: int = Field(5, ge=0, le=600)
    staffing_weeks: int = Field(4, ge=1, le=52)
    # Agents see on their desk that a supervisor is listening to, whispering to or barging
    # into their call (many centres tell their agents; a site whose rules allow may not).
    monitor_notice: bool = True
    # Offer "press 1 to be called back" when the estimated wait exceeds this.
    callback_offer_wait_s: int = Field(120, ge=0)
    # Callbacks one calling number may book in any 24 hours (0: none); past it the IVR makes
    # no callback offer, so one caller (or a spoofed caller id) cannot fill the agents' list.
    callbacks_per_number_day: int = Field(2, ge=0)
    # Until there are answered calls to average, an agent call is assumed to take this long.
    default_talk_s: int = Field(180, ge=1)
    timezone: str = "Asia/Shanghai"
    open_time: dt.time = dt.time(8, 30)
    close_time: dt.time = dt.time(17, 30)  # equal to open_time: open all day
    open_weekdays: tuple[int, ...] = (1, 2, 3, 4, 5)  # ISO: Monday is 1
    # Public holidays (closed though a weekday) and adjusted working days (open though a weekend).
    holidays: tuple[dt.date, ...] = ()
    workdays: tuple[dt.date, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class RecordingSettings(_Section):
    """Where call recordings and voice messages live, and how long they are kept.

    `dir` is the directory as the platform sees it; Asterisk writes to `asterisk_dir` (for the
    local Asterisk, `dir` is bind-mounted there inside its root; on a site whose Asterisk runs
    elsewhere, the two name one shared directory). File names carry no private data.
    """

    dir: Path = Path("var/recordings")
    asterisk_dir: str = "/var/spool/asterisk/hotline"
    retention_days: int = Field(180, ge=1)  # then the file is deleted and the deletion recorded
    message_max_s: int = Field(60, ge=5, le=600)  # one voice message
    # Voice messages one calling number may leave in a local day (queue.timezone); 0: no limit.
    # Callers without a usable number share one budget. Each message becomes a work order: one
    # line must not fill the departments' queue (300 messages from one number were 300 orders).
    messages_per_number_day: int = Field(3, ge=0)
    # How often `hotline serve` looks for recordings past retention_days (and files that vanished).
    sweep_interval_s: float = Field(3600.0, gt=0)


class QualityItem(_Section):
    """One line of the quality-check form (质检评分表): its key, label and most points."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    label: str = Field(min_length=1, max_length=40)
    max_score: int = Field(ge=1, le=100)


class QualitySettings(_Section):
    """The quality-check form supervisors score recorded calls on ([quality] items)."""

    items: tuple[QualityItem, ...] = (
        QualityItem(key="greeting", label="问候规范", max_score=20),
        QualityItem(key="accuracy", label="业务准确", max_score=30),
        QualityItem(key="attitude", label="服务态度", max_score=25),
        QualityItem(key="resolution", label="问题解决", max_score=25),
    )

    @field_validator("items")
    @classmethod
    def _distinct_keys(cls, value: tuple[QualityItem, ...]) -> tuple[QualityItem, ...]:
        keys = [item.key for item in value]
        if not keys:
            raise ValueError("the form needs at least one item")
        if len(set(keys)) != len(keys):
            raise ValueError(f"item keys must be distinct: {keys}")
        return value


# Work-order categories as centres report them (GB/T 33358's 工单): the keys of
# `cases.deadline_days`, and what `work_orders.category` holds.
CASE_CATEGORIES: Final = ("policy_question", "account_lookup", "how_to", "complaint", "suggestion")


class CasesSettings(_Section):
    """Work orders (工单): the departments that answer them, deadlines, escalation, follow-up."""

    # The departments orders are handed to; a `department` console user belongs to one.
    departments: tuple[str, ...] = ("养老保险", "医疗保险", "就业", "劳动监察", "社保卡")
    # Deadline per category in working days on the queue's calendar (core.calendar): two
    # for questions, as centres promise; five for complaints and suggestions, which need
    # the department to look into the case (the 12345 hotlines' usual 5 working days).
    deadline_days: dict[str, int] = Field(
        default_factory=lambda: {
            "policy_question": 2,
            "account_lookup": 2,
            "how_to": 2,
            "complaint": 5,
            "suggestion": 5,
        }
    )
    # A voice message becomes an order of this category, for this department ("" leaves it
    # at the hotline, which assigns it).
    voice_message_category: str = "policy_question"
    voice_message_department: str = ""
    # Open orders due within this many hours are highlighted.
    near_deadline_hours: float = Field(8.0, ge=0)
    # Overdue open orders are escalated (督办) to supervisors, once per order.
    escalate_overdue: bool = True
    # This long after an order's answer, the resident is asked by SMS for their satisfaction
    # (回访; 0: no follow-up). Follow-ups go out only within the hotline's business hours.
    followup_after_hours: float = Field(24.0, ge=0)
    # A follow-up unanswered this long is recorded as no reply.
    followup_reply_hours: float = Field(72.0, gt=0)
    # The queue a callback booked for an answer (reply via callback) waits in.
    callback_queue: str = "hotline-12333"
    # How often `hotline serve` turns voice messages into orders, escalates and follows up.
    task_interval_s: float = Field(60.0, gt=0)

    @field_validator("departments")
    @classmethod
    def _departments(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one department")
        for name in value:
            if not name.strip() or len(name) > 40:
                raise ValueError(f"department {name!r}: a name of 1 to 40 characters")
        if len(set(value)) != len(value):
            raise ValueError("a department is named twice")
        return value

    @field_validator("deadline_days")
    @classmethod
    def _deadlines(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(CASE_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown categories {unknown} (known: {', '.join(CASE_CATEGORIES)})")
        for category, days in value.items():
            if not 1 <= days <= 60:
                raise ValueError(f"{category}: 1 to 60 working days")
        defaults = {"complaint": 5, "suggestion": 5}
        return {c: value.get(c, defaults.get(c, 2)) for c in CASE_CATEGORIES}

    @model_validator(mode="after")
    def _voice_defaults(self) -> CasesSettings:
        if self.voice_message_category not in CASE_CATEGORIES:
            raise ValueError(f"voice_message_category must be one of {', '.join(CASE_CATEGORIES)}")
        if self.voice_message_department and self.voice_message_department not in self.departments:
            raise ValueError("voice_message_department must be one of the departments (or empty)")
        return self


# The shortest shared key of a 12345 counterpart outside the demo: it signs work orders
# that become the departments' deadlines.
COUNTERPART_KEY_MIN = 32


class Hotline12345Settings(_Section):
    """Work orders sent (派单) by the 12345 government service hotline, of which 12333 is a
    sub-centre, to the console's `/api/12345/orders` (console/hotline12345_views.py). Off
    unless `enabled`; then at least one counterpart is required."""

    enabled: bool = False
    # The 12345 platforms that may send orders: name (X-12345-Counterpart) -> the shared key
    # that signs their requests (HMAC-SHA256). Secret: in the TOML file as a table, or
    # HOTLINE_HOTLINE12345_COUNTERPARTS as a JSON object; never in a log line or a repr.
    counterparts: dict[str, str] = Field(default_factory=dict, repr=False)
    # A request's X-12345-Timestamp may be this far from our clock either way; its nonce
    # is kept twice as long, so a replay is refused for as long as its timestamp is fresh.
    max_skew_s: int = Field(300, ge=1, le=3600)
    # The largest body taken (a request over it is refused before it is read).
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    # Outbound (cases/sender12345.py): where each counterpart takes our messages about its
    # orders (签收, 办结, 退单), name -> URL, signed with the same shared key; a counterpart
    # without one gets its messages kept until it has one. `our_name` is our
    # X-12345-Counterpart on them (the name 12345 knows this sub-centre by).
    endpoints: dict[str, str] = Field(default_factory=dict)
    our_name: str = ""
    send_timeout_s: float = Field(10.0, gt=0, le=120)
    # A try that failed for a while (network, 5xx, 429) is tried again after retry_base_s,
    # doubled each time up to retry_max_s, for as long as it takes: never given up.
    retry_base_s: float = Field(30.0, gt=0, le=3600)
    retry_max_s: float = Field(1800.0, gt=0, le=86400)

    @field_validator("counterparts")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, key in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", name):
                raise ValueError(f"counterpart {name[:40]!r}: a name of 1 to 40 of A-Z a-z 0-9 _ -")
            if not key.strip():
                raise ValueError(f"counterpart {name!r}: an empty key")
        return value

    @model_validator(mode="after")
    def _someone_when_enabled(self) -> Hotline12345Settings:
        if self.enabled and not self.counterparts:
            raise ValueError(
                f"hotline12345.enabled needs hotline12345.counterparts (or {ENV_PREFIX}HOTLINE12345_COUNTERPARTS)"
            )
        return self

    @model_validator(mode="after")
    def _endpoints(self) -> Hotline12345Settings:
        for name, url in self.endpoints.items():
            if name not in self.counterparts:
                raise ValueError(f"hotline12345.endpoints: {name[:40]!r} is not among hotline12345.counterparts")
            if not re.fullmatch(r"https?://[^\s]+", url):
                raise ValueError(f"hotline12345.endpoints: {name!r}: an http:// or https:// URL")
        if self.endpoints and not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", self.our_name):
            raise ValueError("hotline12345.endpoints needs hotline12345.our_name (1 to 40 of A-Z a-z 0-9 _ -)")
        if self.retry_max_s < self.retry_base_s:
            raise ValueError("hotline12345.retry_max_s is under retry_base_s")
        return self


class SkillSettings(_Section):
    """Skills-based routing (ivr/skills.py): agents' languages and business lines. Each
    skill has its queue, hotline-skill-<name>; its agents take its callers first, and
    after `overflow_s` any agent may. Empty `names`: no skill queues, as before."""

    # Languages as the menu names them (en; a dialect such as wuu) and business lines
    # (pension, medical, employment, labour): lower-case letters, 2 to 12 of them.
    names: tuple[str, ...] = ()
    overflow_s: int = Field(30, ge=0, le=3600)

    @field_validator("names")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.fullmatch(r"[a-z]{2,12}", name):
                raise ValueError(f"skills: {name!r} is no skill name (2 to 12 lower-case letters)")
        if len(set(value)) != len(value):
            raise ValueError("skills: a skill is named twice")
        return value


class Settings(_Section):
    database: DatabaseSettings = DatabaseSettings()
    agi: AgiSettings = AgiSettings()
    ami: AmiSettings = AmiSettings()
    asterisk: AsteriskSettings = AsteriskSettings()
    ivr: IvrSettings = IvrSettings()
    security: SecuritySettings = SecuritySettings()
    smpp: SmppSettings = SmppSettings()
    web: WebSettings = WebSettings()
    queue: QueueSettings = QueueSettings()
    sms: SmsSettings = SmsSettings()
    twilio: TwilioSettings = TwilioSettings()
    cmpp: CmppSettings = CmppSettings()
    wechat: WeChatSettings = WeChatSettings()
    notices: NoticeSettings = NoticeSettings()
    sip: SipSettings = SipSettings()
    recordings: RecordingSettings = RecordingSettings()
    cases: CasesSettings = CasesSettings()
    quality: QualitySettings = QualitySettings()
    destinations: DestinationSettings = DestinationSettings()
    cluster: ClusterSettings = ClusterSettings()
    hotline12345: Hotline12345Settings = Hotline12345Settings()
    skills: SkillSettings = SkillSettings()

    @model_validator(mode="after")
    def _strong_counterpart_keys(self) -> Settings:
        short = sorted(n for n, k in self.hotline12345.counterparts.items() if len(k) < COUNTERPART_KEY_MIN)
        if short and not self.security.demo:
            raise ValueError(
                f"hotline12345.counterparts: the keys of {', '.join(short)} have under {COUNTERPART_KEY_MIN} "
                "characters (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self

    def require_secrets(self, *names: str) -> None:
        """Fail clearly when a secret the caller needs is still empty."""
        missing = []
        for dotted in names:
            section, field = dotted.split(".")
            if not getattr(getattr(self, section), field):
                missing.append(f"{dotted} (or {ENV_PREFIX}{section.upper()}_{field.upper()})")
        if missing:
            raise SettingsError("missing secret setting: " + ", ".join(missing))

    def require_strong_ami_secret(self) -> None:
        """The AMI secret set, and at least AMI_SECRET_MIN characters outside the demo."""
        self.require_secrets("ami.secret")
        if len(self.ami.secret) < AMI_SECRET_MIN and not self.security.demo:
            raise SettingsError(
                f"ami.secret (or {ENV_PREFIX}AMI_SECRET) has {len(self.ami.secret)} characters: at least "
                f"{AMI_SECRET_MIN} are needed (AMI can place calls through the trunk); e.g. "
                "`python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`"
            )


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    sections = Settings.model_fields
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        rest = key[len(ENV_PREFIX) :].lower()
        for section in sections:
            if rest.startswith(section + "_"):
                field = rest[len(section) + 1 :]
                model = sections[section].annotation
                assert model is not None
                if field not in model.model_fields:
                    raise SettingsError(f"{key}: {section} has no setting {field!r}")
                parsed: Any = value
                origin = typing.get_origin(model.model_fields[field].annotation)
                if origin is tuple:
                    # Lists in the environment are comma-separated: HOTLINE_QUEUE_HOLIDAYS=2026-10-01,2026-10-02
                    parsed = tuple(p.strip() for p in value.split(",") if p.strip())
                elif origin is dict:
                    parsed = _env_table(key, value)
                out.setdefault(section, {})[field] = parsed
                break
        else:
            if key not in ("HOTLINE_CONFIG",):
                raise SettingsError(f"{key}: unknown setting (sections: {', '.join(sections)})")
    return out


def _env_table(key: str, value: str) -> dict[str, Any]:
    """A table in the environment is a JSON object: HOTLINE_HOTLINE12345_COUNTERPARTS='{"city": "..."}'.
    The error names the variable, never its value (it may hold keys)."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise SettingsError(f'{key}: a table is written as a JSON object, e.g. {{"name": "value"}}')
    return parsed


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if any) and the environment; raise SettingsError on any bad value."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get("HOTLINE_CONFIG"):
        path = Path(environ["HOTLINE_CONFIG"])
    data: dict[str, Any] = {}
    chosen = path if path is not None else DEFAULT_CONFIG
    if chosen.exists():
        try:
            data = tomllib.loads(chosen.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{chosen}: not valid TOML: {exc}") from exc
    elif path is not None:
        raise SettingsError(f"{path}: no such configuration file")
    for section, fields in _env_overrides(environ).items():
        data.setdefault(section, {}).update(fields)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {where}: {err['msg']}")
        source = f"{chosen} and the environment" if chosen.exists() else "the environment"
        raise SettingsError(f"invalid settings (from {source}):\n" + "\n".join(lines)) from None
