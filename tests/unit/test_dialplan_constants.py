"""The names in ivr/dialplan.py and the ones dialplans/*.conf use are the same set (STYLE 8)."""

from __future__ import annotations

import re
from pathlib import Path

from ivr import dialplan

CONF = Path(__file__).resolve().parents[2] / "dialplans"
EXTENSIONS = (CONF / "extensions.conf").read_text(encoding="utf-8")
QUEUES = (CONF / "queues.conf").read_text(encoding="utf-8")


def _sections(text: str) -> set[str]:
    return {m for m in re.findall(r"^\[([^\]]+)\]", text, re.M)} - {"general", "globals"}


def _constants(prefix: str) -> set[str]:
    return {v for k, v in vars(dialplan).items() if k.startswith(prefix) and isinstance(v, str)}


def test_contexts_are_exactly_the_python_ones() -> None:
    assert _sections(EXTENSIONS) == _constants("CTX_")


def test_queues_are_exactly_the_python_ones() -> None:
    assert {s for s in _sections(QUEUES) if not s.endswith("-defaults")} == _constants("QUEUE_")


def test_channel_variables_are_exactly_the_python_ones() -> None:
    used = set(re.findall(r"\b((?:HOTLINE|CALLER|AGENT)_[A-Z_]+)\b", EXTENSIONS))
    assert used == _constants("VAR_") | _constants("GLOBAL_")


def test_fastagi_script_and_actions() -> None:
    ivr = f"Gosub({dialplan.CTX_AGI},s,1({dialplan.AGI_SCRIPT_IVR},${{{dialplan.VAR_TRANSFER_ORDER}}}))"
    assert ivr in EXTENSIONS  # with a transferred call's 12345 order number, when there is one
    assert f"CUT({dialplan.GLOBAL_AGI_SERVERS},{dialplan.AGI_SERVER_SEPARATOR}," in EXTENSIONS
    for action in (dialplan.ACTION_QUEUE, dialplan.ACTION_HANGUP):
        assert f'"${{{dialplan.VAR_ACTION}}}" = "{action}"' in EXTENSIONS
    assert f"{dialplan.SOUNDS_SUBDIR}/zh/{dialplan.PROMPT_SYSTEM_APOLOGY}" in EXTENSIONS
    assert f"exten => {dialplan.EXTEN_HOTLINE}," in EXTENSIONS


def test_queue_entry_hold_music_and_periodic_announcement() -> None:
    assert f"Gosub({dialplan.CTX_AGI},s,1({dialplan.AGI_SCRIPT_QUEUE_ENTRY}," in EXTENSIONS
    assert f"periodic-announce = {dialplan.SOUNDS_SUBDIR}/zh/{dialplan.PROMPT_QUEUE_PERIODIC}" in QUEUES
    moh = (CONF / "musiconhold.conf").read_text(encoding="utf-8")
    assert f"directory = /usr/share/asterisk/sounds/{dialplan.SOUNDS_SUBDIR}/{dialplan.MOH_DIR}" in moh


def test_queue_exit_user_event() -> None:
    assert f"UserEvent({dialplan.USEREVENT_QUEUE_EXIT},HotlineStatus: ${{QUEUESTATUS}})" in EXTENSIONS


def test_calls_out_are_counted_and_reported() -> None:
    name, category = dialplan.OUTBOUND_GROUP.split("@")
    assert f"Set(GROUP({category})={name})" in EXTENSIONS
    assert f"GROUP_COUNT({dialplan.OUTBOUND_GROUP})" in EXTENSIONS
    for outcome in (dialplan.OUTCOME_LINES_FULL, dialplan.OUTCOME_NO_TRUNK):
        assert f"Set({dialplan.VAR_DIAL_RESULT}={outcome})" in EXTENSIONS
    assert (
        f"UserEvent({dialplan.USEREVENT_CALLBACK_DIAL},CallbackId: ${{{dialplan.VAR_CALLBACK_ID}}},"
        f"DialStatus: ${{{dialplan.VAR_DIAL_RESULT}}})"
    ) in EXTENSIONS


def test_the_queue_settings_default_to_what_asterisk_is_told() -> None:
    # Staffing adds queue.wrapup_s to each call's talk (reports/staffing.py): Asterisk's own
    # wrap-up; its service level matches the reports' default threshold.
    from core.settings import QueueSettings

    queue = QueueSettings()
    assert re.search(rf"^wrapuptime = {queue.wrapup_s}$", QUEUES, re.M)
    assert re.search(rf"^servicelevel = {queue.service_level_s}$", QUEUES, re.M)
