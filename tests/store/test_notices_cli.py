"""`hotline notices status|show` and the notices line of `hotline sms status`: what an
operator types to see how notices went over the channels residents chose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from core import notices
from core.db import Store
from core.models import AuditEntry, WeChatBinding
from core.states import Channel
from hotline.cli import main
from tests.conftest import load_sample
from tests.store.test_notice_channels import DAY, OPENID, WECHAT, _intake, _moves, _pension, _prefer


@pytest.fixture
def cli(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _two_notices(store: Store, residents: list[Any]) -> None:
    """One called then texted (the call gave up), one whose WeChat was queued."""
    caller, follower = residents[0], residents[1]
    _prefer(store, caller, "voice,sms")
    _prefer(store, follower, "wechat")
    with store.transaction() as c:
        c.execute(insert(WeChatBinding).values(subject_id=follower.id_number, openid=OPENID, bound_at=DAY))
    _pension(store, caller, "p1")
    _pension(store, follower, "p2")
    _intake(store, WECHAT)
    with store.transaction() as c:
        notices.finish(c, 1, Channel.VOICE, None, "unanswered", "NOANSWER, attempt 3 of 3")
    _moves(store)


def test_notices_status_and_the_sms_status_pointer(cli, store: Store, sample_data: Any) -> None:  # type: ignore[no-untyped-def]
    load_sample(store)
    code, out, _ = cli("notices", "status")
    assert code == 0 and "none yet" in out
    code, out, _ = cli("sms", "status")
    assert code == 0 and "notices" not in out
    _two_notices(store, sample_data[1])
    code, out, _ = cli("notices", "status", "--format", "json")
    assert json.loads(out) == {
        "by_channel": {"sms": {"pending": 1}, "wechat": {"pending": 1}},
        "fallbacks": 1,
        "failed": 0,
        "in_flight": 2,
        "total": 2,
    }
    code, out, _ = cli("notices", "status")
    assert "2 over chosen channels (2 in flight, 1 fell back, 0 failed)" in out and "  wechat: pending 1" in out
    code, out, _ = cli("sms", "status")
    assert out.rstrip().endswith(
        "notices: 2 over chosen channels (2 in flight, 1 fell back, 0 failed): hotline notices status"
    )
    code, out, _ = cli("sms", "status", "--format", "json")
    data = json.loads(out)
    assert {"events", "messages", "inbound", "event_failures"} <= set(data) and data["notices"]["total"] == 2


def test_notices_show_lists_every_attempt_masked_and_is_audited(cli, store: Store, sample_data: Any) -> None:  # type: ignore[no-untyped-def]
    load_sample(store)
    r = sample_data[1][0]
    _two_notices(store, sample_data[1])
    code, out, _ = cli("notices", "show", "1", "--format", "json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["state"], shown["channel"], shown["plan"], shown["fallbacks"]) == (
        "pending",
        "sms",
        ["voice", "sms"],
        1,
    )
    assert [(a["channel"], a["status"]) for a in shown["attempts"]] == [("sms", "queued"), ("voice", "queued")]
    assert [(h["channel"], h["outcome"]) for h in shown["history"]] == [
        ("voice", "queued"),
        ("voice", "unanswered"),
        ("sms", "queued"),
    ]
    code, text, _ = cli("notices", "show", "2")
    assert code == 0 and "wechat" in text and OPENID[:4] + "***" in text
    for printed in (out, text):
        assert r.phone not in printed and r.id_number not in printed and OPENID not in printed
    assert r.phone[:3] + "****" + r.phone[-4:] in out
    with store.session() as s:
        entries = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "read:notice")))
    assert [(e.channel, e.actor.split(":")[0], e.detail.split(" of ")[0]) for e in entries] == [
        ("cli", "cli", "notice 1"),
        ("cli", "cli", "notice 2"),
    ]
    assert r.id_number not in entries[0].detail
    code, _, err = cli("notices", "show", "99")
    assert code == 1 and "no notice 99" in err
