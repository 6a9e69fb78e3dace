"""http.conf, the softphone's certificate, and where a phone's transfer may lead."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from core.sip_settings import SipSettings
from ivr.pjsip_config import render_trunk_dialplan
from ivr.webrtc_config import CERT_FILE, KEY_FILE, install_tls, render_http


def _options(text: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith(";")]
    return {k.strip(): v.strip() for k, v in pairs}


def test_http_conf_is_tls_on_the_https_port_and_plain_on_loopback() -> None:
    options = _options(render_http(SipSettings(https_bind="192.0.2.10", https_port=38189), "/etc/asterisk"))
    assert options["enabled"] == "yes" and options["tlsenable"] == "yes"
    assert options["tlsbindaddr"] == "192.0.2.10:38189"
    assert options["bindaddr"] == "127.0.0.1" and options["bindport"] == "38188"
    assert (options["enablestatic"], options["enable_status"]) == ("no", "no")
    assert options["tlscertfile"] == f"/etc/asterisk/keys/{CERT_FILE}"
    assert _options(render_http(SipSettings(webrtc=False), "/etc/asterisk"))["enabled"] == "no"


def test_the_demo_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    install_tls(SipSettings(), tmp_path, os.getgid())
    cert = (tmp_path / "keys" / CERT_FILE).read_bytes()
    install_tls(SipSettings(), tmp_path, os.getgid())
    assert (tmp_path / "keys" / CERT_FILE).read_bytes() == cert
    shown = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(tmp_path / "keys" / CERT_FILE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in shown and "DNS:localhost" in shown
    assert (tmp_path / "keys" / KEY_FILE).stat().st_mode & 0o777 == 0o640


def test_a_sites_certificate_is_copied_with_a_private_key(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "c.pem").write_text("CERT")
    (site / "k.pem").write_text("KEY")
    (site / "k.pem").chmod(0o644)
    etc = tmp_path / "etc"
    etc.mkdir()
    install_tls(SipSettings(tls_cert=site / "c.pem", tls_key=site / "k.pem"), etc, 4242)
    key = etc / "keys" / KEY_FILE
    assert key.read_text() == "KEY" and (etc / "keys" / CERT_FILE).read_text() == "CERT"
    assert (key.stat().st_mode & 0o777, key.stat().st_gid) == (0o640, 4242)


def test_departments_lead_to_their_queue_and_nowhere_else() -> None:
    text = render_trunk_dialplan(SipSettings(departments={"hotline-labour": "8002"}))
    block = text[text.index("[hotline-departments]") :]
    assert block.splitlines()[1:] == [
        "exten => 8002,1,Set(HOTLINE_QUEUE=hotline-labour)",
        " same => n,Goto(hotline-queue,12333,1)",
    ]
    assert "hotline-outbound" not in text


@pytest.mark.parametrize(
    "departments",
    [{"Labour!": "8002"}, {"hotline-labour": "80a2"}, {"a": "8002", "b": "8002"}, {"hotline-labour": "12333"}],
)
def test_bad_departments_are_refused(departments: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        SipSettings(departments=departments)
