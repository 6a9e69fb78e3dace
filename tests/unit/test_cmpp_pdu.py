"""The CMPP codec against the spec's field tables (CMPP 2.0 / 3.0 §6.3), octet by octet:
each table below is the spec's (field, octets) list, and the expected PDU is built from it
here, apart from the codec. Round trips with hypothesis; malformed PDUs named."""

from __future__ import annotations

import doctest
import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms import cmpp_deliver, cmpp_msgid, cmpp_pdu, cmpp_results, cmpp_text
from sms.cmpp_deliver import Deliver, DeliverResp, StatusReport
from sms.cmpp_msgid import MsgId
from sms.cmpp_pdu import (
    ActiveTest,
    ActiveTestResp,
    Command,
    Connect,
    ConnectResp,
    Submit,
    SubmitResp,
    Terminate,
    Version,
    authenticator_ismg,
    check_connect_resp,
    decode,
    encode,
    read_header,
)
from sms.cmpp_results import FLOW_CONTROL, PERMANENT, TEMPORARY, outcome
from sms.errors import (
    BadCmppPdu,
    CmppConnectRefused,
    CmppFieldTooLong,
    CmppGatewayNotAuthentic,
    UnknownCmppCommand,
)

V20, V30 = Version.V20, Version.V30
MSG_ID = MsgId(11, 28, 9, 30, 15, 12333, 7)


def _field(value: bytes | int, size: int) -> bytes:
    if isinstance(value, int):
        return value.to_bytes(size, "big")
    assert len(value) <= size
    return value.ljust(size, b"\0")


def _pdu(command: int, seq: int, fields: list[tuple[bytes | int, int]]) -> bytes:
    body = b"".join(_field(v, n) for v, n in fields)
    return struct.pack("!III", 12 + len(body), command, seq) + body


def test_the_doctests_hold() -> None:
    for module in (cmpp_pdu, cmpp_deliver, cmpp_msgid, cmpp_results, cmpp_text):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_connect_is_source_addr_authenticator_version_timestamp() -> None:
    stamp = 1128093015  # 11-28 09:30:15
    expected_auth = hashlib.md5(b"901234" + b"\0" * 9 + b"s3cret" + b"1128093015").digest()
    pdu = encode(1, Connect.signed("901234", "s3cret", V30, stamp), V30)
    assert pdu == _pdu(0x1, 1, [(b"901234", 6), (expected_auth, 16), (0x30, 1), (stamp, 4)])
    assert len(pdu) == 39


def test_the_timestamp_is_hashed_as_ten_digits_in_january_too() -> None:
    auth = Connect.signed("901234", "k", V20, 102030405).authenticator
    assert auth == hashlib.md5(b"901234" + bytes(9) + b"k" + b"0102030405").digest()


@pytest.mark.parametrize(("version", "status_width", "length"), [(V20, 1, 30), (V30, 4, 33)])
def test_connect_resp_status_width_and_the_ismg_authenticator(version: Version, status_width: int, length: int) -> None:
    source = bytes(range(16))
    expected = hashlib.md5(bytes(status_width) + source + b"s3cret").digest()
    pdu = _pdu(0x80000001, 1, [(0, status_width), (expected, 16), (version, 1)])
    assert len(pdu) == length
    header, resp = decode(pdu, version)
    assert header.command == Command.CONNECT_RESP and resp == ConnectResp(0, expected, version)
    assert encode(1, resp, version) == pdu
    assert isinstance(resp, ConnectResp)
    check_connect_resp(resp, source, "s3cret", version)
    with pytest.raises(CmppGatewayNotAuthentic):
        check_connect_resp(resp, source, "other", version)


def test_a_3_0_gateway_hashing_one_status_octet_is_told_apart() -> None:
    source = bytes(16)
    one_octet = ConnectResp(0, authenticator_ismg(0, source, "k", V20), 0x30)
    with pytest.raises(CmppGatewayNotAuthentic, match="one octet"):
        check_connect_resp(one_octet, source, "k", V30)


def test_a_refused_connect_names_its_status() -> None:
    with pytest.raises(CmppConnectRefused, match=r"Status 4 \(version too high\)"):
        check_connect_resp(ConnectResp(4, bytes(16), 0x20), bytes(16), "k", V20)


def _submit_table(version: Version, s: Submit) -> list[tuple[bytes | int, int]]:
    """CMPP 2.0 §6.3.3 / 3.0 §6.3.3's CMPP_SUBMIT table, top to bottom."""
    term = 21 if version == V20 else 32
    rows: list[tuple[bytes | int, int]] = [
        (s.msg_id.to_bytes(), 8), (s.pk_total, 1), (s.pk_number, 1), (s.registered_delivery, 1),
        (s.msg_level, 1), (s.service_id.encode(), 10), (s.fee_user_type, 1), (s.fee_terminal_id.encode(), term),
    ]  # fmt: skip
    if version == V30:
        rows.append((s.fee_terminal_type, 1))
    rows += [
        (s.tp_pid, 1), (s.tp_udhi, 1), (s.msg_fmt, 1), (s.msg_src.encode(), 6), (s.fee_type.encode(), 2),
        (s.fee_code.encode(), 6), (s.valid_time.encode(), 17), (s.at_time.encode(), 17), (s.src_id.encode(), 21),
        (len(s.destinations), 1),
    ]  # fmt: skip
    rows += [(d.encode(), term) for d in s.destinations]
    if version == V30:
        rows.append((s.dest_terminal_type, 1))
    rows += [(len(s.content), 1), (s.content, len(s.content))]
    rows.append((s.link_id.encode(), 20) if version == V30 else (b"", 8))  # LinkID / Reserve
    return rows


SUBMIT = Submit(
    ("13800000001", "13800000002"),
    "您好".encode("utf-16-be"),
    src_id="1233301",
    msg_src="901234",
    service_id="HOTLINE",
    pk_total=2,
    pk_number=1,
    tp_udhi=1,
    fee_user_type=2,
    fee_terminal_id="13800000009",
    fee_terminal_type=1,
    fee_code="000010",
    dest_terminal_type=1,
    link_id="LINK-0001",
)


@pytest.mark.parametrize(("version", "length"), [(V20, 12 + 117 + 42 + 1 + 4 + 8), (V30, 12 + 129 + 64 + 2 + 4 + 20)])
def test_submit_layout_octet_by_octet(version: Version, length: int) -> None:
    pdu = encode(9, SUBMIT, version)
    assert pdu == _pdu(0x4, 9, _submit_table(version, SUBMIT))
    assert len(pdu) == length


def test_a_2_0_submit_drops_the_3_0_only_fields() -> None:
    _, back = decode(encode(1, SUBMIT, V20), V20)
    assert back == Submit(**{**SUBMIT.__dict__, "fee_terminal_type": 0, "dest_terminal_type": 0, "link_id": ""})


@pytest.mark.parametrize(("version", "result_width"), [(V20, 1), (V30, 4)])
def test_submit_resp_and_deliver_resp_results(version: Version, result_width: int) -> None:
    for command, kind in ((0x80000004, SubmitResp), (0x80000005, DeliverResp)):
        pdu = _pdu(command, 3, [(MSG_ID.to_bytes(), 8), (8, result_width)])
        _, body = decode(pdu, version)
        assert body == kind(MSG_ID, 8) and encode(3, kind(MSG_ID, 8), version) == pdu
    assert SubmitResp(MSG_ID, 8).outcome(version) == FLOW_CONTROL


@pytest.mark.parametrize(("version", "term", "size"), [(V20, 21, 60), (V30, 32, 71)])
def test_a_status_report_in_a_deliver(version: Version, term: int, size: int) -> None:
    report_rows: list[tuple[bytes | int, int]] = [
        (MSG_ID.to_bytes(), 8), (b"DELIVRD", 7), (b"2611280930", 10), (b"2611280931", 10),
        (b"13800000001", term), (42, 4),
    ]  # fmt: skip
    content = b"".join(_field(v, n) for v, n in report_rows)
    assert len(content) == size
    rows: list[tuple[bytes | int, int]] = [
        (MsgId(11, 28, 9, 31, 0, 12333, 8).to_bytes(), 8), (b"1233301", 21), (b"", 10), (0, 1), (0, 1), (0, 1),
        (b"13800000001", term),
    ]  # fmt: skip
    rows += [(0, 1)] if version == V30 else []  # Src_terminal_type
    rows += [(1, 1), (size, 1), (content, size), (b"", 20 if version == V30 else 8)]
    _, deliver = decode(_pdu(0x5, 4, rows), version)
    assert isinstance(deliver, Deliver) and deliver.is_report
    expected = StatusReport(MSG_ID, "DELIVRD", "2611280930", "2611280931", "13800000001", 42)
    assert deliver.report(version) == expected
    assert expected.to_bytes(version) == content


def test_a_report_of_the_other_version_s_size_is_refused() -> None:
    report = StatusReport(MSG_ID, "DELIVRD", "2611280930", "2611280931", "13800000001", 1)
    with pytest.raises(BadCmppPdu, match="71 octets, not 60"):
        StatusReport.from_bytes(report.to_bytes(V20), V30)


def test_active_test_terminate_and_their_resps() -> None:
    assert encode(5, ActiveTest(), V20) == _pdu(0x8, 5, [])
    assert encode(5, ActiveTestResp(), V20) == _pdu(0x80000008, 5, [(0, 1)])
    assert encode(6, Terminate(), V30) == _pdu(0x2, 6, [])
    assert decode(_pdu(0x80000008, 5, []), V30)[1] == ActiveTestResp(0)  # a RESP without its octet


def test_msg_id_bits() -> None:
    value = (11 << 60) | (28 << 55) | (9 << 50) | (30 << 44) | (15 << 38) | (12333 << 16) | 7
    assert MSG_ID.to_int() == value and MsgId.from_int(value) == MSG_ID
    assert str(MSG_ID) == "1128093015" + "0012333" + "00007"
    with pytest.raises(CmppFieldTooLong):
        MsgId(16, 1, 1, 1, 1, 1, 1).to_bytes()


@given(st.integers(0, 2**64 - 1))
def test_every_msg_id_round_trips_and_its_string_is_unique(value: int) -> None:
    m = MsgId.from_int(value)
    assert m.to_int() == value and len(str(m)) == 22 and MsgId.parse(str(m)) == m


NUMBERS = st.text("0123456789", min_size=1, max_size=21)
ASCII = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=6)


@given(
    version=st.sampled_from(list(Version)),
    dests=st.lists(NUMBERS, min_size=1, max_size=5),
    content=st.binary(max_size=140),
    msg_fmt=st.sampled_from([0, 8, 15]),
    udhi=st.integers(0, 1),
    src=NUMBERS,
    msg_src=ASCII,
    seq=st.integers(0, 2**32 - 1),
)
def test_submit_round_trips(
    version: Version, dests: list[str], content: bytes, msg_fmt: int, udhi: int, src: str, msg_src: str, seq: int
) -> None:
    s = Submit(tuple(dests), content, msg_fmt=msg_fmt, tp_udhi=udhi, src_id=src, msg_src=msg_src)
    header, back = decode(encode(seq, s, version), version)
    assert back == s and header.sequence == seq


@given(
    version=st.sampled_from(list(Version)),
    content=st.binary(max_size=140),
    handset=NUMBERS,
    value=st.integers(0, 2**64 - 1),
)
def test_deliver_round_trips(version: Version, content: bytes, handset: str, value: int) -> None:
    d = Deliver(MsgId.from_int(value), "12333", handset, content, msg_fmt=8)
    assert decode(encode(1, d, version), version)[1] == d


def test_malformed_pdus_are_named() -> None:
    good = encode(1, SubmitResp(MSG_ID, 0), V20)
    with pytest.raises(BadCmppPdu, match="shorter than the 12-octet header"):
        read_header(good[:11])
    with pytest.raises(BadCmppPdu, match="Total_Length 21, but 20 octets"):
        decode(good[:-1], V20)
    with pytest.raises(BadCmppPdu, match="body of 9 octets, the layout has 12"):
        decode(good, V30)  # a 2.0 RESP read as 3.0
    with pytest.raises(UnknownCmppCommand) as unknown:
        decode(struct.pack("!III", 12, 0x00000006, 1), V20)  # CMPP_QUERY: not spoken here
    assert unknown.value.command_id == 6
    with pytest.raises(BadCmppPdu, match="Total_Length 5"):
        read_header(struct.pack("!III", 5, 1, 1))
    submit = encode(1, SUBMIT, V30)
    with pytest.raises(BadCmppPdu, match="Msg_Length 4"):
        decode(struct.pack("!I", len(submit) - 1) + submit[4:-1], V30)
    with pytest.raises(BadCmppPdu):
        decode(struct.pack("!III", 40, 4, 1) + bytes(28), V20)  # a SUBMIT cut short


def test_values_that_do_not_fit_their_field_are_refused() -> None:
    with pytest.raises(CmppFieldTooLong, match="src_id"):
        encode(1, Submit(("1",), b"", src_id="1" * 22), V20)
    with pytest.raises(CmppFieldTooLong, match="DestUsr_tl 101"):
        encode(1, Submit(("1",) * 101, b""), V30)
    with pytest.raises(CmppFieldTooLong, match="Dest_terminal_Id"):
        encode(1, Submit(("1" * 22,), b""), V20)  # 22 digits: too long for 2.0's 21
    encode(1, Submit(("1" * 32,), b""), V30)  # fits 3.0's 32


def test_the_result_table() -> None:
    kinds = {code: outcome(code, V30).kind for code in range(15)}
    assert kinds[0] == "ok" and kinds[8] == FLOW_CONTROL and kinds[3] == TEMPORARY
    assert [c for c, k in kinds.items() if k == PERMANENT] == [1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 13]
    assert kinds[14] == TEMPORARY and outcome(9, V20).meaning == "other error"
