"""Reading phones' registrations from Asterisk's CLI, and their device states from AMI,
against what Asterisk 22.10 printed and sent here (baresip 1.0 registered as 1001)."""

from __future__ import annotations

from ivr.ami_events import DeviceStates
from ivr.pjsip_status import parse_contacts, registrations

CONTACTS = """
  Contact:  <Aor/ContactUri..............................> <Hash....> <Status> <RTT(ms)..>
==========================================================================================

  Contact:  1001/sip:1001-0x55fbadd86150@127.0.0.1:25170   cdd2479a75 Avail         0.670
  Contact:  trunk-carrier/sip:127.0.0.2:25260              587b5b6859 NonQual        -nan

Objects found: 2
"""
DETAIL_1001 = """
 ParameterName        : ParameterValue
 ==============================================================
 authenticate_qualify : no
 call_id              : 502cbb688d007337
 endpoint             : 1001
 expiration_time      : 1796173645
 outbound_proxy       :
 uri                  : sip:1001-0x55fbadd86150@127.0.0.1:25170
 user_agent           : baresip v1.0.0 (x86_64/linux)
 via_addr             : 127.0.0.1
 via_port             : 25170
"""
DETAIL_TRUNK = """
 ParameterName        : ParameterValue
 ==========================================
 call_id              :
 endpoint             :
 expiration_time      : 0
 uri                  : sip:127.0.0.2:25260
 user_agent           :
 via_addr             :
 via_port             : 0
"""


def fake_cli(command: str) -> str:
    return {
        "pjsip show contacts": CONTACTS,
        "pjsip show contact 1001/sip:1001-0x55fbadd86150@127.0.0.1:25170": DETAIL_1001,
        "pjsip show contact trunk-carrier/sip:127.0.0.2:25260": DETAIL_TRUNK,
    }[command]


def test_contacts_are_read_without_the_table_head() -> None:
    assert [(c.aor, c.status) for c in parse_contacts(CONTACTS)] == [("1001", "Avail"), ("trunk-carrier", "NonQual")]


def test_a_phone_registration_has_its_address_user_agent_and_expiry_and_trunks_are_left_out() -> None:
    found = registrations(fake_cli)
    assert list(found) == ["1001"]
    phone = found["1001"]
    assert (phone.address, phone.status) == ("127.0.0.1:25170", "Avail")
    assert (phone.user_agent, phone.expires) == ("baresip v1.0.0 (x86_64/linux)", "2026-12-02T01:07:25+00:00")


def test_device_states_say_whether_a_phone_is_registered() -> None:
    devices = DeviceStates()
    assert devices.phone_registered("PJSIP/1001") is None  # not known yet
    for device, state in (("PJSIP/1001", "UNAVAILABLE"), ("PJSIP/1002", "INUSE"), ("Queue:q_avail", "INUSE")):
        assert devices.feed({"Event": "DeviceStateChange", "Device": device, "State": state}) == device.startswith(
            "PJSIP/"
        )
    assert devices.phone_registered("PJSIP/1001") is False
    devices.feed({"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "NOT_INUSE"})
    assert devices.phone_registered("PJSIP/1001") is True and devices.phone_registered("PJSIP/1002") is True
    assert devices.phone_registered("Local/1003-2-4@hotline-agents/n") is None
    assert not devices.feed({"Event": "Hangup", "Device": "PJSIP/1001"})
