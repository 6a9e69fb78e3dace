"""pjsip.conf and the trunks' contexts as `hotline asterisk up` renders them."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from core.settings import Settings
from core.sip_phones import PhoneEntry, password_digests, softphone_password
from core.sip_settings import SipSettings, SipTrunk
from ivr.pjsip_config import render_pjsip, render_trunk_dialplan


def _settings(**sip: object) -> Settings:
    trunk = {"name": "telecom", "match": ["198.51.100.20"], "host": "198.51.100.20", "outbound": True}
    values: dict[str, object] = {"trunks": [trunk], **sip}
    return Settings(sip=SipSettings.model_validate(values))


def _sections(text: str) -> dict[tuple[str, str], dict[str, list[str]]]:
    """{(name, type): {option: [values]}}: PJSIP sections share names across types."""
    out: dict[tuple[str, str], dict[str, list[str]]] = {}
    for block in re.split(r"\n(?=\[)", text):
        match = re.match(r"\[([^\]]+)\]\n", block)
        if not match:
            continue
        options: dict[str, list[str]] = {}
        for line in block[match.end() :].splitlines():
            if "=" in line and not line.startswith(";"):
                key, value = (part.strip() for part in line.split("=", 1))
                options.setdefault(key, []).append(value)
        out[(match.group(1), options["type"][0])] = options
    return out


def test_a_trunk_is_known_by_its_address_only_and_calls_out_as_the_hotline() -> None:
    sections = _sections(render_pjsip(_settings(), []))
    endpoint = sections[("trunk-telecom", "endpoint")]
    assert endpoint["identify_by"] == ["ip"]
    assert endpoint["context"] == ["hotline-trunk-telecom"]
    assert endpoint["from_user"] == ["12333"]
    # No callerid: PJSIP would give it to every incoming call in place of the caller's number.
    assert "callerid" not in endpoint
    assert sections[("trunk-telecom", "identify")]["match"] == ["198.51.100.20"]
    assert sections[("trunk-telecom", "aor")]["contact"] == ["sip:198.51.100.20:5060"]
    # No anonymous endpoint: nothing else can call in.
    assert not any(name == "anonymous" for name, _ in sections)
    assert {p for (_, kind), o in sections.items() if kind == "transport" for p in o["protocol"]} == {
        "udp",
        "tcp",
        "wss",
    }


def test_phones_carry_digests_never_the_password() -> None:
    settings = _settings()
    password = "desk-phone-secret-1001"
    phones = [PhoneEntry("1001", password_digests("1001", "hotline", password))]
    text = render_pjsip(settings, phones)
    assert password not in text
    auth = _sections(text)[("1001", "auth")]
    assert auth["password_digest"][0].startswith("MD5:") and auth["password_digest"][1].startswith("SHA-256:")
    assert "password" not in auth
    endpoint = _sections(text)[("1001", "endpoint")]
    assert endpoint["identify_by"] == ["username"] and endpoint["context"] == ["hotline-phones"]


def test_the_digest_is_rfc_7616_a1() -> None:
    # echo -n "fred:asterisk:mypass" | openssl dgst -md5 (Asterisk's pjsip.conf sample)
    assert password_digests("fred", "asterisk", "mypass")[0] == "MD5:43a8d9be3da524f9a59ca0593d7b1b5d"


def test_a_softphone_is_a_webrtc_endpoint_on_wss() -> None:
    password = softphone_password("secret", "1001-web")
    text = render_pjsip(_settings(), [PhoneEntry("1001-web", password_digests("1001-web", "hotline", password), True)])
    endpoint = _sections(text)[("1001-web", "endpoint")]
    assert endpoint["webrtc"] == ["yes"] and endpoint["transport"] == ["transport-wss"]
    assert password not in text
    assert softphone_password("secret", "1001-web", 1) != password  # a new generation revokes the old


def test_a_registration_password_goes_to_the_carrier_only_through_its_auth() -> None:
    trunk = {
        "name": "telecom",
        "match": ["198.51.100.20"],
        "host": "sbc.example.net",
        "registration": True,
        "username": "0571-12333",
        "password": "carrier-pass",
    }
    sections = _sections(render_pjsip(Settings(sip=SipSettings.model_validate({"trunks": [trunk]})), []))
    assert sections[("trunk-telecom-auth", "auth")]["password"] == ["carrier-pass"]
    registration = sections[("trunk-telecom-registration", "registration")]
    assert registration["server_uri"] == ["sip:sbc.example.net:5060"]
    assert registration["outbound_auth"] == ["trunk-telecom-auth"]


def test_the_trunks_numbers_reach_the_ivr_as_12333_and_others_get_404() -> None:
    text = render_trunk_dialplan(_settings(trunks=[_trunk(numbers=["057112333", "+8657112333"])]).sip)
    assert "[hotline-trunk-telecom]" in text
    for number in ("057112333", "+8657112333", "12333"):
        assert f"exten => {number},1,Goto(hotline-12333,12333,1)" in text
    assert "Hangup(1)" in text


def _trunk(**values: object) -> dict[str, object]:
    return {"name": "telecom", "match": ["198.51.100.20"], **values}


@pytest.mark.parametrize(
    ("trunks", "message"),
    [
        ([_trunk(match=[])], "addresses its carrier sends from"),
        ([_trunk(match=["carrier.example"])], "no IP address or network"),
        ([_trunk(numbers=["12333;x"])], "a called number is digits"),
        ([_trunk(outbound=True)], "need its host"),
        ([_trunk(host="h", registration=True)], "registration needs username and password"),
        ([_trunk(name="Telecom")], "lower-case letters"),
        ([_trunk(host="h", outbound=True), _trunk(name="mobile", host="h", outbound=True)], "at most one trunk"),
        ([_trunk(), _trunk()], "trunk names must differ"),
        ([_trunk(password="a;b")], "printable ASCII"),
    ],
)
def test_bad_trunks_are_named(trunks: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SipSettings.model_validate({"trunks": trunks})


def test_a_trunk_needs_nothing_more_than_its_addresses() -> None:
    assert SipTrunk(name="t", match=("10.0.0.0/24",)).numbers == ("12333",)


def test_a_trunk_naming_a_12345_order_header_keeps_only_a_safe_value() -> None:
    trunk = {"name": "telecom", "match": ["198.51.100.20"], "numbers": ["12333"], "order_header": "X-12345-Order"}
    text = render_trunk_dialplan(SipSettings.model_validate({"trunks": [trunk]}))
    block = text[text.index("[hotline-trunk-telecom]") :].splitlines()
    assert block[1:5] == [
        "exten => 12333,1,Set(HOTLINE_TRANSFER_ORDER=${PJSIP_HEADER(read,X-12345-Order)})",
        ' same => n,GotoIf($[${REGEX("^[A-Za-z0-9_-]{1,40}$" ${HOTLINE_TRANSFER_ORDER})}]?keep)',
        " same => n,Set(HOTLINE_TRANSFER_ORDER=)",
        " same => n(keep),Goto(hotline-12333,12333,1)",
    ]
    plain = render_trunk_dialplan(SipSettings.model_validate({"trunks": [trunk | {"order_header": ""}]}))
    assert "PJSIP_HEADER" not in plain and "exten => 12333,1,Goto(hotline-12333,12333,1)" in plain
    for bad in ("X 12345", "X-12345-Order: x", "1X", "X" * 65):
        with pytest.raises(ValidationError, match="a SIP header name"):
            SipTrunk.model_validate(trunk | {"order_header": bad})
