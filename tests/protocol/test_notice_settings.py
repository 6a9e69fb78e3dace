"""Notification settings (通知设置, key 7) over FastAGI against a scripted AGI peer, on SQLite
and PostgreSQL: the caller's keys end in notice_preferences and voice_optouts rows, each read
and change in the audit log with actor `ivr` and the call's id, and in the call's trail."""

from __future__ import annotations

import json

from sqlalchemy import insert, select

from core.db import Store
from core.models import AuditEntry, NoticePreference, VoiceOptOut, WeChatBinding, utcnow
from core.sample import SampleResident
from tests.protocol.agi_peer import Caller, environment, run_peer
from tests.protocol.test_fastagi import last_call


def settings_entries(r: SampleResident, *keys: str) -> list[str | None]:
    """Any key ends the welcome, 7 in the main menu, the ID number and PIN, then `keys` in the
    settings; 9 back to the main menu, whose silence then ends the call."""
    return ["1", "7", r.id_number.replace("X", "*"), r.pin, *keys, "9"]


def rows(store: Store, r: SampleResident) -> list[tuple[str, str, str, str]]:
    with store.session() as s:
        found = s.execute(
            select(
                NoticePreference.category, NoticePreference.channels, NoticePreference.language, NoticePreference.source
            ).where(NoticePreference.subject_id == r.id_number)
        )
        return [tuple(row) for row in found]  # type: ignore[misc]


def audits(store: Store, call_id: str) -> list[AuditEntry]:
    with store.session() as s:
        found = s.scalars(select(AuditEntry).where(AuditEntry.call_id == call_id).order_by(AuditEntry.seq)).all()
        s.expunge_all()
        return list(found)


def spoken(call: dict) -> str:  # type: ignore[type-arg]
    return "".join(s["text"] for s in call["trail"] if s["kind"] == "prompt")


async def test_2_chooses_a_call_then_sms_audited_and_in_the_trail(server: int, store: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][0]
    commands = await run_peer(server, Caller(settings_entries(r, "2")))
    assert commands[-1] == 'SET VARIABLE HOTLINE_ACTION "hangup"'
    assert rows(store, r) == [("*", "voice,sms", "zh", "ivr")]
    call = last_call(store)
    assert call["outcome"] == "completed"
    text = spoken(call)
    assert "身份验证成功。您现在的通知方式是：短信，使用中文。只收短信请按1" in text
    assert "设置成功。您现在的通知方式是：电话，然后短信，使用中文。" in text
    changed = next(s for s in call["trail"] if s["kind"] == "result" and s["query"] == "prefs_change")
    assert changed["status"] == "ok" and changed["data"]["channels"] == "voice,sms"
    assert [s["query"] for s in call["trail"] if s["kind"] == "query"] == ["identify", "prefs", "prefs_change"]
    entries = audits(store, call["id"])
    prefs = [(a.actor, a.action, a.channel) for a in entries if a.action.endswith(":preferences")]
    # The menu's read, and the change's own read of the row it then replaces.
    assert prefs == [
        ("ivr", "read:preferences", "ivr"),
        ("ivr", "read:preferences", "ivr"),
        ("ivr", "change:preferences", "ivr"),
    ]
    identified = next(a for a in entries if a.action == "identify")
    assert {a.resident_id for a in entries if a.action.endswith(":preferences")} == {identified.resident_id}
    change = next(a for a in entries if a.action == "change:preferences")
    assert "voice, sms" in change.detail and r.id_number not in change.detail
    everything = json.dumps(call, ensure_ascii=False) + " ".join(a.detail for a in entries)
    assert r.id_number not in everything and r.pin not in everything


async def test_3_without_a_wechat_binding_changes_nothing(server: int, store: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][1]
    await run_peer(server, Caller(settings_entries(r, "3")))
    assert rows(store, r) == []
    call = last_call(store)
    assert "您还没有绑定微信。请先关注安吉人社微信公众号" in spoken(call)
    assert "微信" not in spoken(call).split("您还没有绑定微信")[0]  # not offered before
    assert [s["reason"] for s in call["trail"] if s["kind"] == "refused"] == ["wechat_unbound"]
    actions = [a.action for a in audits(store, call["id"])]
    assert "change:preferences" not in actions and "read:preferences" in actions


async def test_3_with_a_wechat_binding_chooses_wechat_then_sms(server: int, store: Store, sample_data) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][2]
    with store.transaction() as c:
        c.execute(insert(WeChatBinding).values(subject_id=r.id_number, openid="o-test-1", bound_at=utcnow()))
    await run_peer(server, Caller(settings_entries(r, "3")))
    assert rows(store, r) == [("*", "wechat,sms", "zh", "ivr")]
    assert "先发微信、再发短信请按3" in spoken(last_call(store))


async def test_4_and_5_switch_the_language_and_stop_then_allow_notice_calls(
    server: int, store: Store, sample_data
) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][4]
    with store.transaction() as c:  # quiet hours an agent set are kept by the IVR's change
        c.execute(
            insert(NoticePreference).values(
                subject_kind="person",
                subject_id=r.id_number,
                category="*",
                channels="voice,sms",
                language="zh",
                quiet_start="21:00",
                quiet_end="08:00",
                source="console",
                updated_at=utcnow(),
            )
        )
    await run_peer(server, Caller(settings_entries(r, "4", "5")))
    with store.session() as s:
        row = s.scalars(select(NoticePreference).where(NoticePreference.subject_id == r.id_number)).one()
        assert (row.channels, row.language, row.quiet_start, row.quiet_end) == ("voice,sms", "en", "21:00", "08:00")
        # The number notice calls ring (the registered phone), not the one calling in.
        assert s.scalars(select(VoiceOptOut.source).where(VoiceOptOut.phone == r.phone)).all() == ["ivr"]
    call = last_call(store)
    assert "设置成功。以后不再给您打通知电话。" in spoken(call)
    optout = [a for a in audits(store, call["id"]) if a.action == "change:voice_optout"]
    assert [(a.actor, a.detail) for a in optout] == [("ivr", f"{r.phone[:3]}****{r.phone[-4:]} no notice calls")]
    # A second call: the menu offers to allow them again, and 5 does.
    await run_peer(server, Caller(settings_entries(r, "5")))
    assert "恢复给您打通知电话请按5" in spoken(last_call(store))
    with store.session() as s:
        assert s.scalar(select(VoiceOptOut.phone).where(VoiceOptOut.phone == r.phone)) is None


async def test_an_unidentified_caller_pressing_7_is_asked_to_identify_first(server: int, store: Store) -> None:
    await run_peer(server, Caller(["1", "7"]))
    call = last_call(store)
    prompts = [s for s in call["trail"] if s["kind"] == "prompt"]
    assert prompts[2]["text"].startswith("请输入您的18位身份证号码")
    nodes = [s["node"] for s in call["trail"] if s["kind"] == "node"]
    assert nodes[:4] == ["welcome", "main", "prefs", "ask_id"]
    assert not [a for a in audits(store, call["id"]) if a.action.endswith(":preferences")]


async def test_5_from_a_call_showing_no_number_stops_calls_to_the_registered_phone(
    server: int, store: Store, sample_data
) -> None:  # type: ignore[no-untyped-def]
    r = sample_data[1][5]
    await run_peer(server, Caller(settings_entries(r, "5")), env=environment(callerid="anonymous"))
    assert "以后不再给您打通知电话" in spoken(last_call(store))
    with store.session() as s:
        assert s.scalars(select(VoiceOptOut.phone)).all() == [r.phone]
