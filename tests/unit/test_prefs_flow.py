"""The `prefs` node (通知设置, key 7) in the flow engine: state through JSON between steps, as a
stateless transport would keep it; the store's answers given by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivr.engine import Collect, Query, QueryDone, QueryStatus, Timeout, Transfer
from ivr.errors import MenuError
from ivr.menu import DEFAULT_MENU, PREFS_KEYS, PREFS_PROMPTS, load_menu
from ivr.prefs_flow import CHOICES, KEY_LANGUAGE, KEY_VOICE_CALLS
from tests.unit.test_engine import CAT, GOOD_ID, Caller

WHO = {"resident_id": 7, "id_number": GOOD_ID}
NO_ROW = {"channels": "sms", "language": "zh", "wechat": False, "voice_calls": True, "others": 0}
MENU_UNBOUND = ("prefs.menu.sms", "prefs.menu.voice", "prefs.menu.to_en", "prefs.menu.stop_calls", "prefs.menu")


def words(c: Caller, lang: str = "zh") -> str:
    return "".join(CAT.text(p, lang) for p in c.prompts())


def to_settings(c: Caller, data: dict[str, Any] | None = None) -> Collect:
    """Key 7, identify, and the store's read of the caller's choice."""
    c.keys("1", "7", GOOD_ID)
    assert c.keys("123456") == Query("identify", {"id_number": GOOD_ID, "pin": "123456"})
    assert c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 7})) == Query("prefs", WHO)
    action = c.send(QueryDone("prefs", QueryStatus.OK, data or NO_ROW))
    assert isinstance(action, Collect) and c.state.node == "prefs"
    return action


def test_an_unidentified_caller_pressing_7_is_asked_to_identify_first() -> None:
    c = Caller()
    c.keys("1", "7")
    assert c.state.node == "ask_id" and c.prompts() == ("id.ask",)
    assert c.state.resume == "prefs"
    c.keys(GOOD_ID, "123456")
    assert c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 7})) == Query("prefs", WHO)


def test_the_choice_for_all_notices_is_read_out_then_the_keys_on_offer() -> None:
    c = Caller()
    to_settings(c)
    assert c.prompts() == ("id.ok", "prefs.current", "prefs.ch.sms", "prefs.lang.zh", *MENU_UNBOUND)
    assert words(c).startswith("身份验证成功。您现在的通知方式是：短信，使用中文。只收短信请按1")
    assert "微信" not in words(c)  # not bound: not offered


def test_a_bound_caller_is_offered_wechat_and_hears_a_call_then_sms() -> None:
    c = Caller()
    to_settings(c, {**NO_ROW, "channels": "voice,sms", "wechat": True})
    assert "您现在的通知方式是：电话，然后短信" in words(c)
    assert "prefs.menu.wechat" in c.prompts()


def test_2_chooses_a_call_first_then_sms_and_says_the_new_choice() -> None:
    c = Caller()
    to_settings(c)
    assert c.keys("2") == Query("prefs_change", {**WHO, "channels": "voice,sms"})
    c.send(QueryDone("prefs_change", QueryStatus.OK, {**NO_ROW, "channels": "voice,sms"}))
    assert c.state.node == "prefs"
    assert c.prompts()[:6] == (
        "prefs.saved",
        "prefs.current",
        "prefs.ch.voice",
        "prefs.then",
        "prefs.ch.sms",
        "prefs.lang.zh",
    )
    assert c.prompts()[6:] == MENU_UNBOUND
    assert words(c).startswith("设置成功。您现在的通知方式是：电话，然后短信，使用中文。")


@pytest.mark.parametrize(("key", "channels"), sorted(CHOICES.items()))
def test_each_channel_key_asks_for_its_channels(key: str, channels: str) -> None:
    c = Caller()
    to_settings(c, {**NO_ROW, "wechat": True})
    assert c.keys(key) == Query("prefs_change", {**WHO, "channels": channels})


def test_3_without_a_binding_says_how_to_bind_and_changes_nothing() -> None:
    c = Caller()
    to_settings(c)
    action = c.keys("3")
    assert isinstance(action, Collect) and action.prompts == ("prefs.wechat.unbound", *MENU_UNBOUND)
    assert "公众号" in words(c)
    assert [dict(n.detail) for n in c.notes if n.kind == "refused"] == [{"reason": "wechat_unbound"}]
    assert c.state.tries.get("prefs", 0) == 0  # a choice it cannot have, not a wrong key


def test_wechat_unbound_since_the_read_is_refused_by_the_store_and_no_longer_offered() -> None:
    c = Caller()
    to_settings(c, {**NO_ROW, "wechat": True})
    assert c.keys("3") == Query("prefs_change", {**WHO, "channels": "wechat,sms"})
    c.send(QueryDone("prefs_change", QueryStatus.REFUSED, {"reason": "wechat_unbound"}))
    assert c.prompts() == ("prefs.wechat.unbound", *MENU_UNBOUND)
    again = c.keys("3")  # asks nothing of the store now
    assert isinstance(again, Collect) and again.prompts[0] == "prefs.wechat.unbound"


def test_4_toggles_the_notices_language() -> None:
    c = Caller()
    to_settings(c)
    assert c.keys(KEY_LANGUAGE) == Query("prefs_change", {**WHO, "language": "en"})
    c.send(QueryDone("prefs_change", QueryStatus.OK, {**NO_ROW, "language": "en"}))
    assert "prefs.lang.en" in c.prompts() and "prefs.menu.to_zh" in c.prompts()
    assert c.keys(KEY_LANGUAGE) == Query("prefs_change", {**WHO, "language": "zh"})


def test_5_stops_notice_calls_to_this_number_then_allows_them_again() -> None:
    c = Caller()
    to_settings(c)
    assert c.keys(KEY_VOICE_CALLS) == Query("voice_calls", {**WHO, "allowed": False})
    c.send(QueryDone("voice_calls", QueryStatus.OK, {**NO_ROW, "voice_calls": False}))
    assert c.prompts()[:2] == ("prefs.saved", "prefs.calls.stopped")
    assert c.prompts()[-2:] == ("prefs.menu.allow_calls", "prefs.menu")
    assert c.keys(KEY_VOICE_CALLS) == Query("voice_calls", {**WHO, "allowed": True})
    c.send(QueryDone("voice_calls", QueryStatus.OK, NO_ROW))
    assert c.prompts()[:2] == ("prefs.saved", "prefs.calls.allowed")


def test_5_on_a_call_with_no_number_says_so() -> None:
    c = Caller()
    to_settings(c, {**NO_ROW, "voice_calls": None})
    action = c.keys(KEY_VOICE_CALLS)
    assert isinstance(action, Collect) and action.prompts[0] == "prefs.no_number"


def test_star_repeats_the_choice_and_the_keys_without_reading_again() -> None:
    c = Caller()
    to_settings(c)
    action = c.keys("*")
    assert isinstance(action, Collect)
    assert action.prompts == ("prefs.current", "prefs.ch.sms", "prefs.lang.zh", *MENU_UNBOUND)


def test_0_reaches_an_agent_and_9_the_main_menu() -> None:
    c = Caller()
    to_settings(c)
    action = c.keys("0")
    assert isinstance(action, Transfer) and action.queue == "hotline-12333"
    c = Caller()
    to_settings(c)
    c.keys("9")
    assert c.state.node == "main" and c.prompts() == ("main.menu",) and not c.state.prefs


def test_coming_back_reads_the_choice_again_without_identifying_again() -> None:
    c = Caller()
    to_settings(c)
    assert c.keys("9", "7") == Query("prefs", WHO)


def test_wrong_keys_and_silence_reprompt_then_offer_an_agent() -> None:
    c = Caller()
    to_settings(c)
    c.keys("8")
    assert c.prompts() == ("input.invalid", *MENU_UNBOUND)
    c.send(Timeout())
    assert c.prompts() == ("input.none", *MENU_UNBOUND)
    c.keys("#")
    assert c.state.node == "agent_offer" and c.prompts() == ("input.invalid", "agent.offer")


def test_the_store_unavailable_apologises_and_transfers() -> None:
    c = Caller()
    to_settings(c)
    c.keys("1")
    action = c.send(QueryDone("prefs_change", QueryStatus.UNAVAILABLE))
    assert isinstance(action, Transfer) and action.prompts == ("sys.unavailable",)


def test_an_english_caller_hears_the_settings_in_english() -> None:
    c = Caller()
    c.keys("9", "7", GOOD_ID, "123456")
    c.send(QueryDone("identify", QueryStatus.OK, {"resident_id": 7}))
    c.send(QueryDone("prefs", QueryStatus.OK, NO_ROW))
    assert "Your notices now come by a text message in Chinese." in " ".join(CAT.text(p, "en") for p in c.prompts())


def test_main_menu_says_key_7_and_every_prefs_prompt_is_in_both_languages() -> None:
    assert "通知设置请按7" in CAT.text("main.menu", "zh") and "press 7" in CAT.text("main.menu", "en")
    for pid in (*PREFS_PROMPTS, "prefs.menu"):
        assert CAT.has(pid, "zh") and CAT.has(pid, "en"), pid


def test_the_flows_keys_are_the_ones_the_menu_keeps_for_it() -> None:
    assert {*CHOICES, KEY_LANGUAGE, KEY_VOICE_CALLS} == PREFS_KEYS


def test_a_prefs_node_may_not_give_its_choice_keys_to_options(tmp_path: Path) -> None:
    text = DEFAULT_MENU.read_text(encoding="utf-8").replace(
        'options = { "9" = "main" }\n\n# identification', 'options = { "1" = "main" }\n\n# identification'
    )
    assert '"1" = "main" }\n\n# identification' in text
    bad = tmp_path / "menu.toml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(MenuError, match="keys 1-5 are its choices"):
        load_menu(bad)
