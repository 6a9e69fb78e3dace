"""`hotline orders ...` against a temporary database: what a county IT team would type."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cases import orders as o
from core.db import Store
from core.models import AuditEntry, BusinessEvent, VoiceMessage
from hotline.cli import main
from tests.conftest import make_settings

LONG_AGO = dt.datetime(2026, 11, 2, 2, 0, tzinfo=dt.UTC)  # a Monday: long overdue by now


@pytest.fixture
def cli(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_list_show_answer_and_escalate_from_the_command_line(cli, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, store.url)
    with store.session() as s:
        s.add(
            VoiceMessage(
                call_id="vm-1",
                caller_number="13812345678",
                resident_id=3,
                id_number_masked="330523********123X",
                recording="messages/2026-11-02/" + "a" * 32 + ".wav",
                duration_s=31,
                created_at=LONG_AGO,
            )
        )
    code, out, _ = cli("orders", "run", "--format", "json")
    assert code == 0
    voice_id = json.loads(out)["voice_orders"][0]["id"]
    code, out, _ = cli(
        "orders", "create", "--category", "how_to", "--summary", "社保卡补办流程", "--department", "社保卡",
        "--number", "13900001111", "--format", "json",
    )  # fmt: skip
    assert code == 0
    card = json.loads(out)
    assert card["created_by"].startswith("cli") and card["status"] == "open"

    code, out, _ = cli("orders", "list", "--department", "社保卡", "--format", "json")
    assert [x["id"] for x in json.loads(out)] == [card["id"]]
    code, out, _ = cli("orders", "list", "--status", "overdue", "--format", "json")
    assert [x["id"] for x in json.loads(out)] == [voice_id]
    code, out, _ = cli("orders", "list")
    assert "OVERDUE (escalated)" in out and "138****5678" in out and "13812345678" not in out
    code, out, _ = cli("orders", "list", "--format", "json")
    assert "13812345678" not in out and {x["caller_number"] for x in json.loads(out)} == {"138****5678", "139****1111"}

    code, out, _ = cli("orders", "show", str(voice_id), "--format", "json")
    shown = json.loads(out)
    assert shown["recording_path"] == str(settings.recordings.dir / ("messages/2026-11-02/" + "a" * 32 + ".wav"))
    assert shown["due_at"] == "2026-11-04T09:30:00+00:00"  # Wednesday 17:30 in Beijing
    assert [h["action"] for h in shown["history"]] == ["created", "escalated"]
    code, out, _ = cli("orders", "show", str(voice_id))
    assert "recording" in out and "2026-11-04 17:30" in out and "escalated" in out
    with store.session() as s:
        audits = [(a.actor.split(":")[0], a.action, a.resident_id) for a in s.scalars(select(AuditEntry))]
    assert audits == [("cli", "read:order", 3)] * 2

    code, out, _ = cli("orders", "escalate", "--format", "json")
    assert json.loads(out) == {"escalated": []}  # once per order

    code, out, err = cli("orders", "answer", str(card["id"]), "--text", "请携身份证到窗口补办。", "--reply", "sms")
    assert code == 0 and "answered" in out
    code, out, err = cli("orders", "answer", str(card["id"]), "--text", "again", "--reply", "sms")
    assert code == 1 and f"work order {card['id']} is answered: it cannot be answered" in err
    with store.session() as s:
        assert [e.event_type for e in s.scalars(select(BusinessEvent))] == ["order_answered"]
    code, _, err = cli("orders", "assign", str(voice_id), "--department", "财务")
    assert code == 1 and "unknown department '财务'" in err
    code, _, err = cli("orders", "close", str(voice_id))
    assert code == 1 and "needs a note" in err
    code, _, err = cli("orders", "show", "999999")
    assert code == 1 and "no work order 999999" in err
    assert o.get_order(store, card["id"], actor="t").order.status == "answered"

    code, _, err = cli("orders", "followup", str(voice_id), "--satisfaction", "1")
    assert code == 1 and "cannot be followed up before it is answered" in err
    with pytest.raises(SystemExit):  # argparse: "invalid choice: 5 (choose from 1, 2, 3)"
        cli("orders", "followup", str(card["id"]), "--satisfaction", "5")
    code, out, _ = cli("orders", "followup", str(card["id"]), "--satisfaction", "2", "--format", "json")
    assert code == 0 and (json.loads(out)["followup_state"], json.loads(out)["satisfaction"]) == ("answered", 2)
    code, _, err = cli("orders", "followup", str(card["id"]), "--satisfaction", "1")
    assert code == 1 and "followed up already" in err


def test_list_by_department_and_status_as_json_and_an_unknown_department(cli, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, store.url)

    def new(department: str, summary: str, now: dt.datetime | None = None) -> int:
        made = o.create_order(
            store, settings, kind="call", category="policy_question", summary=summary, created_by="test",
            department=department, caller_number="13812345678", now=now,
        )  # fmt: skip
        return made.id

    late = new("养老保险", "养老金待遇核定", LONG_AGO)
    fresh = new("养老保险", "补缴养老保险咨询")
    medical_late = new("医疗保险", "医保转移接续", LONG_AGO + dt.timedelta(hours=1))
    done = new("养老保险", "已办结的咨询", LONG_AGO)
    o.close_order(store, done, actor="cli:test", note="重复工单")

    code, out, err = cli("orders", "list", "--department", "养老保险", "--format", "json")
    assert (code, err) == (0, "")
    listed = json.loads(out)
    assert sorted(x["id"] for x in listed) == sorted([late, fresh, done])
    assert {x["department"] for x in listed} == {"养老保险"}
    code, out, _ = cli("orders", "list", "--department", "养老保险", "--status", "overdue", "--format", "json")
    [only] = json.loads(out)
    assert (only["id"], only["status"], only["summary"]) == (late, "open", "养老金待遇核定")
    assert only["due_at"] == "2026-11-04T09:30:00+00:00" and only["escalated_at"] is None
    code, out, _ = cli("orders", "list", "--status", "overdue", "--format", "json")
    assert [x["id"] for x in json.loads(out)] == [late, medical_late]  # soonest due first, any department
    code, out, _ = cli("orders", "list", "--status", "open", "--department", "养老保险")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and lines[0].split()[:2] == ["id", "status"]
    assert "[OVERDUE]" in lines[1] and "养老金待遇核定" in lines[1] and "138****5678" in lines[1]
    assert "补缴养老保险咨询" in lines[2] and "[OVERDUE]" not in lines[2]
    code, out, _ = cli("orders", "list", "--department", "就业")
    assert (code, out.strip()) == (0, "no work orders")  # a configured department with nothing

    # A department that is not configured: said so, with the ones that are; nothing listed.
    code, out, err = cli("orders", "list", "--department", "养老", "--format", "json")
    assert code != 0 and out == ""
    assert err.strip() == "hotline: unknown department '养老' (known: 养老保险, 医疗保险, 就业, 劳动监察, 社保卡)"
    code, out, err = cli("orders", "list", "--department", "财务", "--status", "overdue")
    assert code == 1 and out == "" and "unknown department '财务' (known: 养老保险," in err
    with pytest.raises(SystemExit) as exited:  # argparse: an unknown status, with the choices
        cli("orders", "list", "--status", "late")
    assert exited.value.code == 2


def test_show_says_when_retention_deleted_a_voice_messages_recording(cli, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with store.session() as s:
        s.add(
            VoiceMessage(
                call_id="vm-old", caller_number="13812345678", recording="messages/2026-06-01/" + "b" * 32 + ".wav",
                duration_s=12, created_at=LONG_AGO, order_id=None,
            )
        )  # fmt: skip
    code, out, _ = cli("orders", "run", "--format", "json")
    order_id = json.loads(out)["voice_orders"][0]["id"]
    with store.session() as s:
        message = s.scalars(select(VoiceMessage)).one()
        message.deleted_at = dt.datetime(2026, 12, 1, 16, 30, tzinfo=dt.UTC)
        message.delete_reason = "retention: older than 180 days"
    code, out, _ = cli("orders", "show", str(order_id), "--format", "json")
    shown = json.loads(out)
    assert code == 0 and shown["recording_path"] is None
    assert shown["recording_deleted_at"] == "2026-12-01T16:30:00+00:00"
    assert shown["recording_delete_reason"] == "retention: older than 180 days"
    code, out, _ = cli("orders", "show", str(order_id))
    assert code == 0 and "deleted on 2026-12-02 00:30 (retention: older than 180 days)" in out


def test_list_says_when_it_shows_part_of_the_orders_and_pages_on(cli, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, store.url)
    start = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)
    rows = [
        o.order_values(settings, "call", category, f"工单{i}", "test", "就业", start + dt.timedelta(minutes=i))
        for i, category in enumerate(["how_to"] * 6 + ["policy_question"] * 2)
    ]
    with store.transaction() as c:
        ids = sorted(c.execute(o.ORDERS.insert().returning(o.ORDERS.c.id), rows).scalars().all())
    code, out, _ = cli("orders", "list", "--limit", "3")
    lines = out.splitlines()
    assert code == 0 and [int(x.split()[0]) for x in lines[1:4]] == ids[::-1][:3]  # newest first
    assert lines[4] == "showing 1-3 of 8 orders (page 1; --page N or --all for the others)"
    code, out, _ = cli("orders", "list", "--limit", "3", "--page", "3")
    assert out.splitlines()[-1].startswith("showing 7-8 of 8 orders (page 3;")
    code, out, err = cli("orders", "list", "--limit", "5", "--category", "how_to", "--format", "json")
    assert [x["id"] for x in json.loads(out)] == ids[:6][::-1][:5]
    assert err.strip() == "showing 1-5 of 6 orders (page 1; --page N or --all for the others)"
    code, out, err = cli("orders", "list", "--limit", "5", "--all", "--format", "json")
    assert len(json.loads(out)) == 8 and err == ""
    code, out, _ = cli("orders", "list", "--category", "policy_question")
    assert len(out.splitlines()) == 3 and "showing" not in out  # all of them: nothing to say
    with pytest.raises(SystemExit) as exited:
        cli("orders", "list", "--page", "0")
    assert exited.value.code == 2
