"""Agents' SIP phones in the store: only digests are kept, weak passwords are refused, a
softphone's password is derived and revoked by its generation, and `hotline phones`
says when a change waits for the next `hotline asterisk up`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from core import sip_phones
from core.db import Store
from core.errors import PhoneRefused
from core.settings import Settings
from hotline.cli import main
from ivr.pjsip_config import render_pjsip
from tests.conftest import make_settings

PASSWORD = "desk-phone-1001"


def test_a_phone_is_stored_as_digests_only_and_rendered_from_them(store: Store, settings: Settings) -> None:
    sip_phones.add_phone(store, settings, "1001", PASSWORD)
    with store.transaction() as c:
        row = c.execute(text("SELECT * FROM sip_phones")).mappings().one()
    assert PASSWORD not in json.dumps({k: str(v) for k, v in row.items()})
    (entry,) = sip_phones.phone_entries(store, settings)
    assert entry.digests == sip_phones.password_digests("1001", settings.sip.realm, PASSWORD)
    conf = render_pjsip(settings, [entry])
    assert f"password_digest = {entry.digests[0]}" in conf and PASSWORD not in conf
    # A new password replaces the old digests; the phone stays one row.
    sip_phones.add_phone(store, settings, "1001", "another-secret-1001")
    assert [p.endpoint for p in sip_phones.list_phones(store)] == ["1001"]
    assert sip_phones.phone_entries(store, settings)[0].digests != entry.digests


@pytest.mark.parametrize(
    ("agent", "password", "message"),
    [
        ("1001", "short-pw", "at least 10 characters"),
        ("1234567890", "1234567890", "must not be its user name"),
        ("10a1", PASSWORD, "2 to 20 digits"),
        ("1001;x", PASSWORD, "2 to 20 digits"),
    ],
)
def test_weak_passwords_and_bad_agent_ids_are_refused(
    store: Store, settings: Settings, agent: str, password: str, message: str
) -> None:
    with pytest.raises(PhoneRefused, match=message):
        sip_phones.add_phone(store, settings, agent, password)
    assert sip_phones.list_phones(store) == []


def test_a_softphone_needs_the_secret_and_adding_it_again_revokes_the_old_password(
    store: Store, tmp_path: Path, db_url: str
) -> None:
    with pytest.raises(PhoneRefused, match="softphone_secret"):
        sip_phones.add_softphone(store, make_settings(tmp_path, db_url), "1001")
    settings = make_settings(tmp_path, db_url, HOTLINE_SIP_SOFTPHONE_SECRET="s3cret-for-tests")
    first = sip_phones.add_softphone(store, settings, "1001")
    again = sip_phones.add_softphone(store, settings, "1001")
    assert (first.endpoint, first.kind, first.generation, again.generation) == ("1001-web", "softphone", 0, 1)
    (entry,) = sip_phones.phone_entries(store, settings)
    new = sip_phones.softphone_password("s3cret-for-tests", "1001-web", 1)
    old = sip_phones.softphone_password("s3cret-for-tests", "1001-web", 0)
    assert entry.webrtc and entry.digests == sip_phones.password_digests("1001-web", settings.sip.realm, new)
    assert entry.digests != sip_phones.password_digests("1001-web", settings.sip.realm, old)
    assert sip_phones.softphone_credentials(store, settings, "1001") == ("1001-web", new)
    assert sip_phones.softphone_credentials(store, settings, "1002") is None
    # Removing the softphone leaves a desk phone of the same agent alone.
    sip_phones.add_phone(store, settings, "1001", PASSWORD)
    sip_phones.remove_phone(store, "1001", softphone=True)
    assert [p.endpoint for p in sip_phones.list_phones(store)] == ["1001"]
    with pytest.raises(PhoneRefused, match="no softphone"):
        sip_phones.remove_phone(store, "1001", softphone=True)


def test_the_cli_adds_lists_and_removes_and_says_asterisk_is_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOTLINE_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    # An Asterisk root of our own, not running: nothing to reload.
    monkeypatch.setenv("HOTLINE_ASTERISK_CACHE_DIR", str(tmp_path / "asterisk"))
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["phones", "add", "1001", "--password-stdin"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["endpoint"] == "1001" and PASSWORD not in out.out + out.err
    assert "takes effect at the next `hotline asterisk up`" in out.err
    assert main(["phones", "list", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["endpoint"], row["agent"], row["kind"], row["registered"]) == ("1001", "1001", "phone", None)
    monkeypatch.setattr("sys.stdin", io.StringIO("1001\n"))
    assert main(["phones", "add", "1002", "--password-stdin"]) == 1
    assert "at least 10 characters" in capsys.readouterr().err
    assert main(["phones", "remove", "1001"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] is True
    assert main(["phones", "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
