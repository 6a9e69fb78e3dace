"""`[cmpp]` settings and their HOTLINE_CMPP_* overrides; how the transport reads what the
gateway delivers (no I/O: the DELIVER values are built here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import SettingsError
from core.settings import load_settings
from sms.cmpp import CmppTransport
from sms.cmpp_deliver import Deliver, StatusReport
from sms.cmpp_msgid import MsgId
from sms.cmpp_pdu import MSG_FMT_GBK
from sms.cmpp_results import Version
from sms.encoding import decode, split_udh
from sms.pdu import Inbound
from sms.receipts import parse_receipt

REPO = Path(__file__).resolve().parents[2]
ID = MsgId(12, 7, 9, 30, 1, 12333, 42)


def test_env_overrides_every_field_and_defaults_follow_the_spec() -> None:
    env = {
        "HOTLINE_SMS_TRANSPORT": "cmpp",
        "HOTLINE_CMPP_HOST": "10.1.2.3",
        "HOTLINE_CMPP_SP_ID": "901234",
        "HOTLINE_CMPP_SECRET": "s",
        "HOTLINE_CMPP_SRC_ID": "106571233",
        "HOTLINE_CMPP_VERSION": "2.0",
        "HOTLINE_CMPP_SRC_EXTENSIONS": '{"policy": "02"}',
    }
    s = load_settings(None, env)
    c = s.cmpp
    assert (s.sms.transport, c.host, c.port, c.sp_id, c.version) == ("cmpp", "10.1.2.3", 7890, "901234", "2.0")
    assert (c.window, c.active_test_s, c.response_timeout_s, c.retries, c.links) == (16, 180, 60, 3, 1)
    assert (c.fee_type, c.fee_code, c.fee_user_type) == ("01", "000000", 0)  # free of charge
    assert c.source_for("policy") == "10657123302" and c.source_for("reply") == "106571233"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"HOTLINE_CMPP_VERSION": "2.1"}, "cmpp.version"),
        ({"HOTLINE_CMPP_SP_ID": "9012345"}, "cmpp.sp_id"),
        ({"HOTLINE_CMPP_SRC_ID": "1065712330000000000", "HOTLINE_CMPP_SRC_EXTENSIONS": '{"policy": "123"}'}, "21"),
        ({"HOTLINE_CMPP_SRC_EXTENSIONS": '{"policy": "0x"}'}, "digits"),
        ({"HOTLINE_CMPP_FEE_TYPE": "09"}, "cmpp.fee_type"),
        ({"HOTLINE_CMPP_WINDOWS": "3"}, "cmpp has no setting 'windows'"),
    ],
)
def test_bad_values_are_refused_with_their_name(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(None, env)


def test_the_secret_has_no_default_outside_the_demo() -> None:
    assert load_settings(None, {}).cmpp.secret == ""
    with pytest.raises(SettingsError, match=r"cmpp.secret \(or HOTLINE_CMPP_SECRET\)"):
        load_settings(None, {}).require_secrets("cmpp.sp_id", "cmpp.secret")
    demo = load_settings(REPO / "hotline.demo.toml", {})
    assert demo.cmpp.secret and demo.security.demo


async def _nothing(_inbound: Inbound) -> None:
    pass


def _transport(version: str = "3.0") -> CmppTransport:
    return CmppTransport(load_settings(None, {"HOTLINE_CMPP_VERSION": version}).cmpp, _nothing)


@pytest.mark.parametrize("version", [Version.V20, Version.V30])
@pytest.mark.parametrize(("stat", "word", "err"), [("DELIVRD", "DELIVRD", "000"), ("MK:0005", "UNDELIV", "MK:0005")])
def test_a_status_report_reads_as_an_smpp_receipt(version: Version, stat: str, word: str, err: str) -> None:
    report = StatusReport(ID, stat, "2612070930", "2612070931", "13800000000", 7)
    deliver = Deliver(MsgId(12, 7, 9, 31, 0, 12333, 1), "106571233", "13800000000", report.to_bytes(version), 1)
    inbound = _transport("2.0" if version == Version.V20 else "3.0").inbound(deliver)
    receipt = parse_receipt(inbound.short_message.decode(), inbound.receipted_id)
    assert inbound.is_receipt and inbound.source == "13800000000"
    assert (receipt.message_id, receipt.stat, receipt.err) == (str(ID), word, err)


def test_a_gbk_part_is_handed_on_as_ucs2_with_its_header() -> None:
    header = bytes((5, 0, 3, 9, 2, 1))
    deliver = Deliver(ID, "106571233", "13912345678", header + "查询余额".encode("gbk"), 0, MSG_FMT_GBK, tp_udhi=1)
    inbound = _transport().inbound(deliver)
    concat, body = split_udh(inbound.short_message)
    assert inbound.esm_class == 0x40 and concat is not None and (concat.reference, concat.total) == (9, 2)
    assert decode(inbound.data_coding, body) == "查询余额"
