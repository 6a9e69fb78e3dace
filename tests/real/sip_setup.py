"""The SIP side of the real tier: a test carrier, agents' phones and softphones.

One Asterisk serves the whole test session, so its pjsip.conf carries everything SIP tests
need: a carrier trunk matching CARRIER_ADDR (SIPp binds there to place calls in, and answers
calls out on CARRIER_ADDR:CARRIER_UAS_PORT), and phones for agents TEST_PHONES with known
passwords. STRANGER_ADDR is no trunk's address. Phones register from 127.0.0.1, which no
trunk matches (PJSIP identifies by address before user name).
"""

from __future__ import annotations

import json
import os
from typing import Any, Final

from core.settings import Settings
from core.sip_phones import PhoneEntry, password_digests, softphone_endpoint, softphone_password
from core.sip_settings import SipSettings, SipTrunk

CARRIER_ADDR: Final = "127.0.0.2"
STRANGER_ADDR: Final = "127.0.0.3"
# Phones may register from 127.0.0.1 and 127.0.0.4-7 only (sip.phone_networks): the
# password guessers of tests/real/test_sip_bans.py are inside the phones' networks, as a
# guesser on a county's LAN would be; OUTSIDER_ADDR is outside them.
GUESSER_ADDR: Final = "127.0.0.7"
SECOND_GUESSER_ADDR: Final = "127.0.0.6"
ENUMERATOR_ADDR: Final = "127.0.0.5"
OUTSIDER_ADDR: Final = "127.0.0.8"
PHONE_NETWORKS: Final = ("127.0.0.1/32", "127.0.0.4/30")
# The bans: 10 failures in 10 minutes, as by default, but banned for 30 s, so that the
# test sees a ban end.
BAN_AFTER: Final = 10
BAN_S: Final = 30
# Where the test carrier's answering side (SIPp UAS) listens for calls out.
CARRIER_UAS_PORT: Final = int(os.environ.get("TEST_CARRIER_UAS_PORT", "15060"))
# Called numbers the carrier may send for the hotline (all reach the IVR as 12333).
CARRIER_NUMBERS: Final = ("12333", "057112333", "+8657112333")
# Where the carrier names the 12345 order of a call 12345 transferred here.
ORDER_HEADER: Final = "X-12345-Order"
TEST_PHONES: Final = {"1001": "test-sip-1001", "1002": "test-sip-1002", "1003": "test-sip-1003"}
SOFTPHONE_SECRET: Final = "test-softphone-secret"
# Where a phone may blind-transfer a caller: the labour queue on 8002.
DEPARTMENTS: Final = {"hotline-labour": "8002"}


def with_test_sip(settings: Settings) -> Settings:
    """The developer's settings plus the test carrier (SIP port and the rest as configured)."""
    carrier = SipTrunk(
        name="carrier",
        match=(CARRIER_ADDR,),
        host=CARRIER_ADDR,
        port=CARRIER_UAS_PORT,
        numbers=CARRIER_NUMBERS,
        outbound=True,
        order_header=ORDER_HEADER,
    )
    sip = settings.sip.model_copy(
        update={
            "trunks": (carrier,),
            "softphone_secret": settings.sip.softphone_secret or SOFTPHONE_SECRET,
            "departments": settings.sip.departments or DEPARTMENTS,
            "phone_networks": PHONE_NETWORKS,
            "ban_after": BAN_AFTER,
            "ban_window_s": 600,
            "ban_s": BAN_S,
        }
    )
    return settings.model_copy(update={"sip": SipSettings.model_validate(sip.model_dump())})


def phone_entries(settings: Settings) -> list[PhoneEntry]:
    """Desk phones 1001-1003 with TEST_PHONES' passwords, and a softphone for each."""
    realm = settings.sip.realm
    entries = [PhoneEntry(agent, password_digests(agent, realm, pw)) for agent, pw in TEST_PHONES.items()]
    for agent in TEST_PHONES:
        endpoint = softphone_endpoint(agent)
        password = softphone_password(settings.sip.softphone_secret, endpoint)
        entries.append(PhoneEntry(endpoint, password_digests(endpoint, realm, password), webrtc=True))
    return entries


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def sip_toml(sip: SipSettings) -> str:
    """The `[sip]` settings as TOML, for a `hotline serve` started by a test: it must know
    the trunks (the outbound one places callbacks) that the session's Asterisk was given."""
    fields = sip.model_dump(exclude={"trunks"}, exclude_none=True)
    lines = ["[sip]"] + [f"{key} = {_toml_value(value)}" for key, value in fields.items()]
    for trunk in sip.trunks:
        lines.append("\n[[sip.trunks]]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in trunk.model_dump().items()]
    return "\n".join(lines) + "\n"
