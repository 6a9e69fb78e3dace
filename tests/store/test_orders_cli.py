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
