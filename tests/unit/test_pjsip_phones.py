"""The phones' part of pjsip.conf and what keeps them apart from the trunks."""

from __future__ import annotations

from pathlib import Path

from core.sip_phones import PhoneEntry, password_digests
from core.sip_settings import SipTrunk
from ivr.pjsip_config import identify_warnings, render_pjsip
from tests.conftest import make_settings

PHONE = PhoneEntry("1001", password_digests("1001", "hotline", "desk-phone-1001"))


def test_a_phone_is_identified_by_user_name_challenged_and_holds_one_contact(tmp_path: Path) -> None:
    conf = render_pjsip(make_settings(tmp_path, f"sqlite:///{tmp_path}/x.db"), [PHONE])
    section = conf[conf.index("[1001]") :]
    for line in ("identify_by = username", "auth = 1001", "realm = hotline", "max_contacts = 1"):
        assert line in section
    assert f"password_digest = {PHONE.digests[1]}" in section and "desk-phone-1001" not in conf


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
