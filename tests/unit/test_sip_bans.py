"""The SIP bans' fail2ban configuration, rendered from [sip], and what its client says."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from core.sip_settings import SipSettings, SipTrunk
from ivr.asterisk import LocalAsterisk
from ivr.fail2ban_config import (
    JAIL,
    NFT_TABLE,
    BanFiles,
    banned_ports,
    never_banned,
    parse_bans,
    parse_events,
    render_jail,
    render_server,
    utc_offset_name,
)
from ivr.sip_bans import BanState, SipBans, asterisk_timezone
from tests.conftest import make_settings

LOG = Path("/cache/asterisk-22-root/var/log/asterisk/security")


def _options(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in text.splitlines()) if _}


def test_the_jail_bans_after_the_configured_failures_on_the_sip_and_wss_ports() -> None:
    sip = SipSettings(ban_after=5, ban_window_s=300, ban_s=900, port=5070, https_port=8443)
    jail = render_jail(sip, LOG, "UTC+0800")
    section = _options(jail[jail.index(f"[{JAIL}]") :])
    assert (section["maxretry"], section["findtime"], section["bantime"]) == ("5", "300", "900")
    assert section["filter"] == "asterisk" and section["logpath"] == str(LOG)
    assert section["logtimezone"] == "UTC+0800"
    action = section["action"]
    assert action.startswith("nftables[") and 'port="5070,8443"' in action and 'protocol="tcp,udp"' in action
    assert f'table="{NFT_TABLE}"' in action and "blocktype=drop" in action
    assert banned_ports(sip.model_copy(update={"webrtc": False})) == (5070,)


def test_defaults_ten_failures_in_ten_minutes_ban_for_an_hour() -> None:
    section = _options(render_jail(SipSettings(), LOG, None))
    assert (section["maxretry"], section["findtime"], section["bantime"]) == ("10", "600", "3600")
    assert "logtimezone" not in section


def test_the_carrier_and_listed_addresses_are_never_banned_nor_this_host() -> None:
    trunk = SipTrunk(name="telecom", match=("198.51.100.20", "198.51.100.0/28"))
    sip = SipSettings(trunks=(trunk,), ban_ignore=("10.1.2.3",))
    assert never_banned(sip) == ("198.51.100.20", "198.51.100.0/28", "10.1.2.3")
    section = _options(render_jail(sip, LOG, None))
    assert section["ignoreip"] == "198.51.100.20 198.51.100.0/28 10.1.2.3"
    assert section["ignoreself"] == "true"


def test_the_server_keeps_its_socket_database_and_log_in_its_own_directory() -> None:
    files = BanFiles(Path("/cache/fail2ban"))
    server = _options(render_server(files))
    assert server["socket"] == "/cache/fail2ban/fail2ban.sock"
    assert server["pidfile"] == "/cache/fail2ban/fail2ban.pid"
    assert server["dbfile"] == "/cache/fail2ban/fail2ban.sqlite3"
    assert server["logtarget"] == "/cache/fail2ban/fail2ban.log"


def test_bans_as_fail2ban_client_lists_them() -> None:
    # fail2ban 1.0.2, `get hotline-sip banip --with-time`, as seen here
    text = (
        "127.0.0.7 \t2026-12-07 05:36:56 + 20 = 2026-12-07 05:37:16\n"
        "2001:db8::7 \t2026-12-07 05:36:57 + 20 = 2026-12-07 05:37:17\n"
    )
    first, second = parse_bans(text)
    assert first.address == "127.0.0.7" and first.until == dt.datetime(2026, 12, 7, 5, 37, 16)
    assert first.as_json()["banned_at"] == "2026-12-07T05:36:56"
    assert second.address == "2001:db8::7"
    assert parse_bans("\n") == []


def test_utc_offsets_as_fail2ban_spells_them() -> None:
    assert utc_offset_name(dt.timedelta(hours=8)) == "UTC+0800"
    assert utc_offset_name(dt.timedelta(hours=-3, minutes=-30)) == "UTC-0330"
    assert utc_offset_name(dt.timedelta(0)) == "UTC"


def test_the_log_times_zone_is_the_asterisk_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    (tmp_path / "etc").mkdir()
    assert asterisk_timezone(tmp_path) == "UTC"  # no zone file: glibc's UTC
    (tmp_path / "etc" / "localtime").symlink_to("/usr/share/zoneinfo/Asia/Shanghai")
    assert asterisk_timezone(tmp_path) == "UTC+0800"  # no summer time there
    monkeypatch.setenv("TZ", ":UTC")  # Asterisk inherits `hotline asterisk up`'s TZ
    assert asterisk_timezone(tmp_path) == "UTC"


def test_asterisk_up_says_plainly_when_the_bans_cannot_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/x.db")
    settings = settings.model_copy(update={"asterisk": settings.asterisk.model_copy(update={"cache_dir": tmp_path})})
    monkeypatch.setattr(SipBans, "missing", lambda self: "nft is not installed (apt-get install nftables)")
    with caplog.at_level(logging.WARNING):
        state = LocalAsterisk(settings).start_bans((0, 0))
    assert (state.state, state.reason) == ("unavailable", "nft is not installed (apt-get install nftables)")
    assert "SIP bans NOT active: nft is not installed" in caplog.text
    assert "is not banned on this machine" in caplog.text
    assert state.as_text() == "SIP bans: unavailable (nft is not installed (apt-get install nftables))"


def test_bans_and_unbans_as_fail2ban_logs_them() -> None:
    # fail2ban 1.0.2's log, as seen here (other jails' and other lines left out)
    log = (
        "2026-12-07 05:36:56,966 fail2ban.filter         [17922]: INFO    [hotline-sip] Found 127.0.0.7 - 2026-12-07\n"
        "2026-12-07 05:36:57,020 fail2ban.actions        [17922]: NOTICE  [hotline-sip] Ban 127.0.0.7\n"
        "2026-12-07 05:36:58,020 fail2ban.actions        [17922]: NOTICE  [sshd] Ban 192.0.2.1\n"
        "2026-12-07 05:37:27,101 fail2ban.actions        [17922]: NOTICE  [hotline-sip] Unban 127.0.0.7\n"
    )
    events = parse_events(log)
    assert [(e.what, e.address) for e in events] == [("ban", "127.0.0.7"), ("unban", "127.0.0.7")]
    assert events[1].as_json() == {"at": "2026-12-07T05:37:27", "what": "unban", "address": "127.0.0.7"}
    state = BanState("active", None, (), tuple(events))
    assert state.as_text() == (
        "SIP bans: active, no address banned\n"
        "  2026-12-07 05:36:57 ban   127.0.0.7\n"
        "  2026-12-07 05:37:27 unban 127.0.0.7"
    )
