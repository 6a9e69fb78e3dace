"""The phones' part of pjsip.conf and what keeps them apart from the trunks."""

from __future__ import annotations

from pathlib import Path

from core.sip_phones import PhoneEntry, password_digests
from core.sip_settings import PRIVATE_NETWORKS, SipTrunk
from ivr.pjsip_config import identify_warnings, render_pjsip
from tests.conftest import make_settings

PHONE = PhoneEntry("1001", password_digests("1001", "hotline", "desk-phone-1001"))


def test_a_phone_is_identified_by_user_name_challenged_and_holds_one_contact(tmp_path: Path) -> None:
    conf = render_pjsip(make_settings(tmp_path, f"sqlite:///{tmp_path}/x.db"), [PHONE])
    section = conf[conf.index("[1001]") :]
    for line in ("identify_by = username", "auth = 1001", "realm = hotline", "max_contacts = 1"):
        assert line in section
    assert f"password_digest = {PHONE.digests[1]}" in section and "desk-phone-1001" not in conf
    # The first registration keeps the phone: a second one from elsewhere is refused.
    assert "remove_existing = no" in section and "remove_unavailable = yes" in section


def _options(conf: str, name: str, kind: str) -> list[tuple[str, str]]:
    for block in conf.split("\n\n"):
        lines = block.strip().splitlines()
        if lines and lines[0] == f"[{name}]" and f"type = {kind}" in lines:
            return [(k.strip(), v.strip()) for k, _, v in (line.partition("=") for line in lines[1:])]
    raise LookupError(f"[{name}] type={kind}")


def test_phones_register_only_from_the_phone_networks(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/x.db")
    sip = settings.sip.model_copy(update={"phone_networks": ("10.20.0.0/16", "192.0.2.9")})
    softphone = PhoneEntry("1001-web", PHONE.digests, webrtc=True)
    conf = render_pjsip(settings.model_copy(update={"sip": sip}), [PHONE, softphone])
    desk = _options(conf, "1001", "endpoint")
    deny_first = [("deny", "0.0.0.0/0.0.0.0"), ("deny", "::/0"), ("permit", "10.20.0.0/16"), ("permit", "192.0.2.9")]
    assert [o for o in desk if o[0] in ("deny", "permit")] == deny_first
    contact = [(k.removeprefix("contact_"), v) for k, v in desk if k.startswith("contact_")]
    assert contact == deny_first
    web = _options(conf, "1001-web", "endpoint")
    assert [o for o in web if o[0] in ("deny", "permit")] == deny_first
    assert ("transport", "transport-wss") in web
    # A WebSocket client's Contact is a `.invalid` host: no contact ACL to resolve it against.
    assert not [k for k, _ in web if k.startswith("contact_")]


def test_without_networks_phones_register_from_private_ranges_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/x.db")
    assert settings.sip.phone_nets() == PRIVATE_NETWORKS
    lan = settings.sip.model_copy(update={"local_networks": ("10.9.0.0/16",)})
    assert lan.phone_nets() == ("10.9.0.0/16",)
    conf = render_pjsip(settings, [PHONE])
    assert [v for k, v in _options(conf, "1001", "endpoint") if k == "permit"] == list(PRIVATE_NETWORKS)


def test_a_trunk_matching_this_host_is_named_when_phones_would_be_taken_for_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/x.db")
    loopback = SipTrunk(name="lab", match=("127.0.0.0/8",))
    carrier = SipTrunk(name="carrier", match=("127.0.0.2",))
    ip_first = settings.sip.model_copy(update={"trunks": (loopback,)})
    (warning,) = identify_warnings(ip_first, [PHONE])
    assert "trunk lab matches 127.0.0.1" in warning and "identify_order" in warning
    assert identify_warnings(ip_first.model_copy(update={"identify_order": ("username", "ip")}), [PHONE]) == []
    assert identify_warnings(settings.sip.model_copy(update={"trunks": (carrier,)}), [PHONE]) == []
    assert identify_warnings(ip_first, []) == []
