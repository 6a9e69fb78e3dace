"""The [wechat] settings: off by default, credentials required once enabled (the secret from
the environment, never in a repr), and the small pure parts of the transport."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.errors import SettingsError
from core.masking import mask_openid
from core.settings import load_settings
from sms.wechat import Outcome, WeChatTransport, next_beijing_midnight, parse_reply, send_outcome, token_outcome


def test_wechat_is_off_until_enabled() -> None:
    assert load_settings(None, {}).wechat.enabled is False


def test_enabled_without_credentials_names_what_is_missing() -> None:
    with pytest.raises(SettingsError, match="HOTLINE_WECHAT_APP_SECRET"):
        load_settings(None, {"HOTLINE_WECHAT_ENABLED": "true", "HOTLINE_WECHAT_APP_ID": "wx1"})


def test_the_secret_comes_from_the_environment_and_stays_out_of_reprs(tmp_path: Path) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text(
        '[wechat]\nenabled = true\napp_id = "wx0123"\ntimeout_s = 5\n'
        '[wechat.templates]\npension_credited = "TPL-1"\ncard_loss_confirmed = "TPL-2"\n',
        encoding="utf-8",
    )
    environ = {"HOTLINE_WECHAT_APP_SECRET": "very-secret-value", "HOTLINE_WECHAT_TOKEN": "push-token-value"}
    settings = load_settings(config, environ)
    assert settings.wechat.app_secret == "very-secret-value"
    assert settings.wechat.token == "push-token-value"
    assert settings.wechat.templates == {"pension_credited": "TPL-1", "card_loss_confirmed": "TPL-2"}
    assert "very-secret-value" not in repr(settings) + str(settings.wechat)
    assert "push-token-value" not in repr(settings) + str(settings.wechat)


def test_enabled_without_the_push_token_names_it() -> None:
    environ = {"HOTLINE_WECHAT_ENABLED": "true", "HOTLINE_WECHAT_APP_ID": "wx1", "HOTLINE_WECHAT_APP_SECRET": "s"}
    with pytest.raises(SettingsError, match="HOTLINE_WECHAT_TOKEN"):
        load_settings(None, environ)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HOTLINE_WECHAT_API_BASE": "api.weixin.qq.com"}, "http"),
        ({"HOTLINE_WECHAT_TIMEOUT_S": "0"}, "timeout_s"),
        ({"HOTLINE_WECHAT_OAUTH_BASE": "open.weixin.qq.com"}, "http"),
        ({"HOTLINE_WECHAT_BIND_CODE_TRIES": "0"}, "bind_code_tries"),
    ],
)
def test_bad_wechat_settings_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, environ)


def test_openids_are_masked_to_their_first_four_characters() -> None:
    assert mask_openid("oLk3s5y0uFollowsTheAccount01") == "oLk3***"
    assert mask_openid("short") == "***"
    assert mask_openid("") == "-"


@pytest.mark.parametrize(
    ("now", "midnight"),
    [
        (dt.datetime(2026, 12, 2, 15, 59, tzinfo=dt.UTC), dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC)),
        (dt.datetime(2026, 12, 2, 16, 0, tzinfo=dt.UTC), dt.datetime(2026, 12, 3, 16, 0, tzinfo=dt.UTC)),
        (dt.datetime(2026, 12, 31, 3, 0, tzinfo=dt.UTC), dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)),
    ],
)
def test_the_daily_limit_ends_at_the_next_beijing_midnight(now: dt.datetime, midnight: dt.datetime) -> None:
    assert next_beijing_midnight(now) == midnight


def test_errcodes_mean_what_the_docs_say() -> None:
    assert send_outcome(0) is Outcome.SENT
    assert send_outcome(43004) is Outcome.NOT_FOLLOWING
    assert send_outcome(40003) is Outcome.BAD_OPENID
    assert send_outcome(45009) is Outcome.LIMIT_REACHED
    assert send_outcome(40037) is Outcome.CONFIG_ERROR
    assert send_outcome(-1) is Outcome.TEMPORARY
    assert send_outcome(99999) is Outcome.TEMPORARY  # unknown: retried, never lost
    assert token_outcome(40125) is Outcome.CONFIG_ERROR
    assert token_outcome(-1) is Outcome.TEMPORARY


def test_replies_that_are_not_wechat_json_are_told_apart() -> None:
    reply = parse_reply('{"errcode":0,"errmsg":"ok","msgid":200228332}')
    assert reply is not None and reply.body["msgid"] == 200228332
    token = parse_reply('{"access_token":"T","expires_in":7200}')
    assert token is not None and token.errcode == 0
    for text in ("<html>502</html>", "[1, 2]", '{"errcode": "0"}', ""):
        assert parse_reply(text) is None


def test_the_transport_refuses_settings_that_leave_wechat_off() -> None:
    with pytest.raises(SettingsError, match=r"wechat\.enabled"):
        WeChatTransport(load_settings(None, {}).wechat)
