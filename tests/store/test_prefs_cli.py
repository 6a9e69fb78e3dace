"""`hotline prefs show|set|clear|optout-voice`: what an operator types to see and change the
channels a resident or an employer chose, each read and change in the audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from core.db import Store
from core.models import AuditEntry, NoticePreference, VoiceOptOut, WeChatBinding
from hotline.cli import main
from tests.conftest import load_sample

OPENID = "oPrefsCli0123456789abcdefghij"
CALL = "13900001111"


@pytest.fixture
def cli(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)
    load_sample(store)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["prefs", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _audit(store: Store) -> list[AuditEntry]:
    with store.session() as s:
        return list(
            s.scalars(select(AuditEntry).where(AuditEntry.action.like("%preferences%")).order_by(AuditEntry.id))
        )


def test_set_then_show_gives_every_category_and_the_choice_made(cli, store: Store, sample_data: Any) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][0]
    code, out, err = cli("set", r.id_number, "--channels", "voice, sms", "--language", "en", "--quiet", "21:00-08:00")
    assert (code, err) == (0, "")
    assert out.strip() == f"person {r.id_number[:6]}********{r.id_number[-4:]} *: voice, sms · en · quiet 21:00-08:00"
    code, _, _ = cli("set", r.id_number, "--channels", "wechat", "--category", "medical", "--call", "139-0000-1111")
    assert code == 0
    with store.session() as s:
        rows = {p.category: p for p in s.scalars(select(NoticePreference))}
    assert (rows["*"].channels, rows["*"].language, rows["*"].quiet_start, rows["*"].quiet_end) == (
        "voice,sms",
        "en",
        "21:00",
        "08:00",
    )
    assert (rows["medical"].channels, rows["medical"].voice_number, rows["medical"].source) == (
        "wechat",
        CALL,
        rows["*"].source,
    )
    assert rows["*"].source.startswith("cli:")

    code, text, _ = cli("show", r.id_number)
    assert code == 0
    lines = text.splitlines()
    assert lines[0].endswith("WeChat bound: no")
    assert any(line.split()[:2] == ["medical", "wechat"] and "(own row)" in line for line in lines)
    assert any(line.split()[0] == "statement" and "voice, sms · en" in line and "(from *)" in line for line in lines)
    assert f"{r.phone[:3]}****{r.phone[-4:]}  registered, notice calls allowed" in text
    assert "139****1111  to call, notice calls allowed" in text
    assert r.phone not in text and CALL not in text and r.id_number not in text


def test_show_json_shape_with_opt_outs_and_wechat(cli, store: Store, sample_data: Any) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][1]
    assert cli("show", r.id_number, "--format", "json")[0] == 0  # no row at all: SMS for everything
    cli("set", r.id_number, "--channels", "voice,sms", "--call", CALL)
    with store.transaction() as c:
        c.execute(insert(WeChatBinding).values(subject_id=r.id_number, openid=OPENID))
    code, out, _ = cli("optout-voice", CALL)
    assert (code, out.strip()) == (0, "139****1111: no notice calls")
    code, out, _ = cli("show", r.id_number, "--format", "json")
    shown = json.loads(out)
    assert set(shown) == {"subject_id", "subject_kind", "star", "categories", "other_rows", "numbers", "wechat_bound"}
    assert shown["star"] == {
        "channels": ["voice", "sms"],
        "language": "zh",
        "quiet": None,
        "voice_number": "139****1111",
        "source": shown["star"]["source"],
    }
    assert [c["category"] for c in shown["categories"]] == [
        "medical",
        "policy",
        "resident_reminder",
        "security",
        "statement",
    ]
    assert {
        (c["via"], c["own"] is None, c["effective"]["channels"] == ["voice", "sms"]) for c in shown["categories"]
    } == {("*", True, True)}
    numbers = {
        r.phone: {"phone": f"{r.phone[:3]}****{r.phone[-4:]}", "registered": True, "voice_opt_out": False},
        CALL: {"phone": "139****1111", "registered": False, "voice_opt_out": True},
    }
    assert shown["numbers"] == [numbers[p] for p in sorted(numbers)]
    assert shown["wechat_bound"] is True and shown["subject_kind"] == "person"
    assert r.phone not in out and CALL not in out and r.id_number not in out and OPENID not in out
    assert cli("optout-voice", "+86 139 0000 1111", "--undo")[1].strip() == "139****1111: notice calls allowed"
    with store.session() as s:
        assert s.scalars(select(VoiceOptOut)).all() == []


def test_an_employer_is_set_by_credit_code_with_its_own_categories(cli, store: Store, sample_data: Any) -> None:  # type: ignore[no-untyped-def]
    unit = sample_data[0][0]
    code, _, err = cli("set", unit.credit_code, "--unit", "--channels", "sms", "--category", "medical")
    assert code == 2 and err.strip().endswith("'medical': * or one of employer_notice")
    code, _, _ = cli("set", unit.credit_code, "--unit", "--channels", "voice", "--category", "employer_notice")
    assert code == 0
    code, out, _ = cli("show", unit.credit_code, "--unit", "--format", "json")
    shown = json.loads(out)
    assert [(c["category"], c["via"], c["effective"]["channels"]) for c in shown["categories"]] == [
        ("employer_notice", "own", ["voice"])
    ]
    assert shown["wechat_bound"] is False and shown["subject_kind"] == "unit"
    code, _, err = cli("show", unit.credit_code)  # a credit code is no ID number
    assert code == 2 and "not a valid ID number" in err
    code, _, err = cli("show", "91330523XXXXXXXXX1", "--unit")
    assert code == 2 and "not a valid unified social credit code" in err


def test_bad_input_exits_2_naming_what_is_allowed_and_keeps_nothing(cli, store: Store, sample_data: Any) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][0]
    wrong_check = r.id_number[:17] + ("0" if r.id_number[17] != "0" else "1")
    cases = [
        (("set", r.id_number, "--channels", "fax"), "unknown channel 'fax': the channels are sms, voice, wechat"),
        (("set", r.id_number, "--channels", "sms,sms"), "channel sms is named twice"),
        (
            ("set", r.id_number, "--channels", "sms", "--category", "weather"),
            "unknown notice category 'weather': * or one of medical, policy, resident_reminder, security, statement",
        ),
        (("set", r.id_number, "--channels", "sms", "--language", "fr"), "the languages are zh, en"),
        (("set", r.id_number, "--channels", "sms", "--quiet", "21:00"), "write HH:MM-HH:MM"),
        (("set", r.id_number, "--channels", "sms", "--quiet", "25:00-08:00"), "not a time of day '25:00'"),
        (("set", r.id_number, "--channels", "voice", "--call", "12345"), "the number to call is not a phone number"),
        (("set", "33052319800101001", "--channels", "sms"), "not a valid ID number (GB 11643)"),
        (("show", wrong_check), "not a valid ID number (GB 11643): its check character is wrong"),
        (("clear", r.id_number, "--category", "weather"), "unknown notice category 'weather'"),
        (("optout-voice", "12345"), "is not a phone number"),
    ]
    for argv, said in cases:
        code, out, err = cli(*argv)
        assert code == 2, argv
        assert out == "" and len(err.strip().splitlines()) == 1 and said in err, (argv, err)
        assert err.startswith(f"hotline prefs {argv[0]}: ")
    with store.session() as s:
        assert s.scalars(select(NoticePreference)).all() == []
        assert s.scalars(select(VoiceOptOut)).all() == []
    assert _audit(store) == []


def test_every_read_and_change_is_audited_as_the_cli_user(cli, store: Store, sample_data: Any) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][0]
    cli("set", r.id_number, "--channels", "voice,sms", "--call", CALL)
    cli("set", r.id_number, "--channels", "wechat", "--category", "policy")
    cli("show", r.id_number)
    code, out, _ = cli("clear", r.id_number, "--category", "policy")
    assert code == 0 and "1 row(s) cleared" in out
    code, out, _ = cli("clear", r.id_number)
    assert code == 0 and "1 row(s) cleared" in out
    cli("optout-voice", r.phone)
    entries = _audit(store)
    assert [(e.action, e.channel, e.resident_id) for e in entries] == [
        ("change:preferences", "cli", r.id),
        ("change:preferences", "cli", r.id),
        ("read:preferences", "cli", r.id),
        ("clear:preferences", "cli", r.id),
        ("clear:preferences", "cli", r.id),
    ]
    assert {e.actor.split(":")[0] for e in entries} == {"cli"} and len({e.actor for e in entries}) == 1
    assert entries[0].detail.endswith("*: voice, sms · zh · call 139****1111")
    assert entries[4].detail.endswith("all categories")
    with store.session() as s:
        opt = s.scalars(select(AuditEntry).where(AuditEntry.action == "change:voice_optout")).one()
        assert s.scalars(select(NoticePreference)).all() == []
    assert (opt.channel, opt.resident_id, opt.actor) == ("cli", r.id, entries[0].actor)
    for e in [*entries, opt]:
        assert r.id_number not in e.detail and r.phone not in e.detail and CALL not in e.detail
