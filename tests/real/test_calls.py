"""Real calls: the scripted caller dials 12333 on real Asterisk 22, keys DTMF into the real
dialplan, and `hotline serve` (a separate process) answers over FastAGI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from core import idnumber
from core.errors import WrongPin
from core.identify import Identifier, IdentifyLimits
from core.models import Agent, AuditEntry, BusinessEvent, Call
from core.sample_port import SampleBusinessPort
from ivr.agents import AgentControl
from ivr.ami_client import AmiSession
from ivr.asterisk import LocalAsterisk
from ivr.caller import place_call, wait_hung_up
from ivr.dialplan import AGI_SCRIPT_QUEUE_ENTRY, AGI_SCRIPT_SURVEY
from ivr.records import import_files
from ivr.trail import show_call
from tests.conftest import PEPPER
from tests.real.keyed_caller import Press, asking_at, call_of, hang_up, in_queue, keyed_call, running_script
from tests.real.serving import QUEUE_GIVES_UP_S, Ivr, keypad, kinds
from tests.waiting import wait_until

pytestmark = pytest.mark.real
ROOT = Path(__file__).resolve().parents[2]


def test_pension_balance_query(ivr: Ivr) -> None:
    r = ivr.resident(3)
    assert r.id_number.endswith("X")  # entered with * for X
    # Each key once the caller has heard its menu (a 1 at the welcome is no option there: it
    # goes on to the main menu); the caller hangs up once the balance has been read out and
    # the IVR asks what next.
    uid = _keyed(
        ivr,
        lambda uid: [
            Press("1", asking_at(ivr.store, uid, "welcome"), "the welcome asking"),
            Press("1", asking_at(ivr.store, uid, "main"), "the main menu asking"),
            Press("1", asking_at(ivr.store, uid, "si"), "the social insurance menu asking"),
            Press(keypad(r.id_number), asking_at(ivr.store, uid, "ask_id"), "the ID number asked for"),
            Press(r.pin, asking_at(ivr.store, uid, "ask_pin"), "the PIN asked for"),
        ],
    )
    wait_until(asking_at(ivr.store, uid, "after"), f"call {uid}: the balance read out and what next asked", 60)
    asyncio.run(hang_up(ivr.settings, uid))
    call = ivr.trail(uid)
    result = [s for s in kinds(call, "result") if s["query"] == "pension"]
    assert result and result[0]["data"] == {"balance_fen": r.pension_balance_fen, "months": r.pension_months}
    said = " ".join(s["text"] for s in kinds(call, "prompt"))
    assert "您的养老保险个人账户余额为" in said
    assert call["resident_id"] == r.id
    assert (call["outcome"], call["ended_by"]) == ("caller_hangup", "caller")


def test_a_caller_who_ends_each_entry_with_hash_as_asked_is_identified_at_once(ivr: Ivr) -> None:
    # GET DATA returns at the 18th key and the 6th; each `#` after them is the caller's too.
    r = ivr.resident(4)
    call = ivr.call(f"1W1W1W{keypad(r.id_number)}#W{r.pin}#", tail_s=6)
    assert call["resident_id"] == r.id
    entering = [s for s in kinds(call, "invalid") + kinds(call, "timeout") if s["node"] in ("ask_id", "ask_pin")]
    assert entering == []
    said = " ".join(s["text"] for s in kinds(call, "prompt"))
    assert "您的养老保险个人账户余额为" in said


def test_wrong_id_then_right_one(ivr: Ivr) -> None:
    r = ivr.resident(5)
    wrong = r.id_number[:17] + ("1" if r.id_number[17] != "1" else "2")
    call = ivr.call(f"1W1W1W{keypad(wrong)}W{keypad(r.id_number)}W{r.pin}", tail_s=4)
    invalid = kinds(call, "invalid")
    assert [(s["node"], s["reason"]) for s in invalid] == [("ask_id", "bad_check")]
    assert any("校验位不正确" in s["text"] for s in kinds(call, "prompt"))
    assert kinds(call, "identified") and call["resident_id"] == r.id


def test_three_failed_identifications_lead_to_the_agent_offer(ivr: Ivr) -> None:
    r = ivr.resident(7)
    wrong = [f"{(int(r.pin) + k) % 10**6:06d}" for k in (1, 2, 3)]
    tries = "W".join(f"{keypad(r.id_number)}W{pin}" for pin in wrong)
    call = ivr.call(f"1W1W1W{tries}", tail_s=4, caller_id="13800000007")
    assert [s["reason"] for s in kinds(call, "invalid")] == ["not_identified"] * 3
    assert [s["node"] for s in kinds(call, "node")][-1] == "agent_offer"
    assert kinds(call, "prompt")[-1]["prompts"] == ["id.failed", "agent.offer"]
    assert call["resident_id"] is None


def test_an_unregistered_id_is_answered_as_a_wrong_pin_is(ivr: Ivr) -> None:
    """Seen before: `id.unknown` told the caller which ID numbers are registered."""
    r = ivr.resident(8)
    unknown = "11010519491231002" + idnumber.check_character("11010519491231002")
    assert unknown not in {p.id_number for p in ivr.people}
    wrong_pin = f"{(int(r.pin) + 1) % 10**6:06d}"
    call = ivr.call(f"1W1W1W{keypad(unknown)}W{wrong_pin}W{keypad(r.id_number)}W{wrong_pin}", caller_id="13800000008")
    failed = [s for s in call["trail"] if s["kind"] == "invalid"]
    assert [(s["node"], s["reason"]) for s in failed] == [("ask_id", "not_identified")] * 2
    prompts = [s["prompts"] for s in kinds(call, "prompt")]
    assert [p for p in prompts if "id.failed" in p] == [["id.failed", "id.ask"]] * 2
    with ivr.store.session() as s:
        audited = s.scalars(select(AuditEntry.action).where(AuditEntry.call_id == call["id"])).all()
    assert audited == ["identify_failed", "identify_failed"]


def test_a_call_may_try_two_id_numbers_then_only_an_agent(ivr: Ivr) -> None:
    """Seen before: one call walked through any number of ID numbers (A, B, C ... each with
    their PINs); now the third different ID number is refused and only the agent offered."""
    a, b, c = ivr.resident(13), ivr.resident(14), ivr.resident(15)
    bad = f"{(int(a.pin) + 1) % 10**6:06d}"
    dtmf = f"1W1W1W{keypad(a.id_number)}W{bad}W{keypad(b.id_number)}W{bad}W{keypad(c.id_number)}W{c.pin}WW2W1W1"
    call = ivr.call(dtmf, tail_s=4, caller_id="13800000013")
    statuses = [s["status"] for s in kinds(call, "query") if s.get("query") == "identify"]
    assert statuses == ["wrong_pin", "wrong_pin", "refused"]
    assert call["resident_id"] is None and not kinds(call, "identified")
    prompts = [s["prompts"] for s in kinds(call, "prompt")]
    assert ["id.refused", "agent.offer"] in prompts
    # `2` back to the menu, `1 1` the pension query again: no ID number asked, the agent offered.
    assert prompts[-1] == ["id.refused", "agent.offer"] and prompts[-2] != ["id.ask"]


def test_lockout_after_five_wrong_pins(ivr: Ivr) -> None:
    r = ivr.resident(9)
    limits = IdentifyLimits(caller_failures_per_day=100)
    identifier = Identifier(ivr.store, SampleBusinessPort(ivr.store, PEPPER), limits, id_secret=PEPPER, writer=None)
    for _ in range(4):  # four wrong PINs on earlier calls
        with pytest.raises(WrongPin):
            identifier.verify(r.id_number, "000000" if r.pin != "000000" else "111111", actor="test", call_id=None)
    wrong = f"{(int(r.pin) + 1) % 10**6:06d}"
    call = ivr.call(f"1W1W1W{keypad(r.id_number)}W{wrong}", tail_s=5)
    assert [s["status"] for s in kinds(call, "query") if s.get("query") == "identify"][-1] == "locked"
    assert any("锁定24小时" in s["text"] for s in kinds(call, "prompt"))
    # Locked means locked: the right PIN is refused too, and the caller is told so.
    again = ivr.call(f"1W1W1W{keypad(r.id_number)}W{r.pin}", tail_s=5)
    assert [s["status"] for s in kinds(again, "query") if s.get("query") == "identify"] == ["locked"]
    assert again["resident_id"] is None


def test_hangup_during_pin_entry(ivr: Ivr) -> None:
    r = ivr.resident(11)
    call = ivr.call(f"1W1W1W{keypad(r.id_number)}W12", tail_s=0.5)
    assert (call["outcome"], call["ended_by"]) == ("caller_hangup", "caller")
    assert call["last_node"] == "ask_pin"
    assert call["trail"][-1]["kind"] == "outcome"


def test_card_loss_report_writes_one_business_event(ivr: Ivr) -> None:
    r = next(p for p in ivr.people[12:] if p.card_status == "active")
    call = ivr.call(f"1W5W2W{keypad(r.id_number)}W{r.pin}WW1", tail_s=4)
    assert [s["data"]["status"] for s in kinds(call, "result") if s["query"] == "card_lost"] == ["lost"]
    with ivr.store.session() as s:
        events = s.scalars(select(BusinessEvent).where(BusinessEvent.subject_id == r.id_number)).all()
    assert len(events) == 1
    assert events[0].event_type == "card_loss_confirmed" and events[0].subject_kind == "person"
    assert events[0].idempotency_key == f"card_loss:{call['id']}"
    assert r.id_number not in str(events[0].payload)


def test_hotline_call_prints_the_trail(ivr: Ivr) -> None:
    env = {
        **os.environ,
        "HOTLINE_DATABASE_URL": ivr.settings.database.url,
        "HOTLINE_AMI_SECRET": ivr.settings.ami.secret,
        "HOTLINE_SECURITY_PIN_PEPPER": PEPPER,
    }
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "call", "--dtmf", "1W3W1", "--tail", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    call = json.loads(done.stdout)
    assert [s["node"] for s in kinds(call, "node")][:4] == ["welcome", "main", "lab", "lab_contract"]
    assert any("书面劳动合同" in s["text"] for s in kinds(call, "prompt"))


def test_press_zero_wait_talk_and_rate_a_scripted_agent(ivr: Ivr) -> None:
    """The live record's wait spans the scripted agent's ring and ends before the queue gives
    up, a talk time is recorded, and the caller's rating after the call is stored with it
    (the times themselves are the benchmarks' to measure)."""
    member = {"Queue": "hotline-12333", "Interface": "Local/1001-3-5@hotline-agents/n"}

    async def agent(action: str) -> None:
        async with AmiSession(ivr.settings) as ami:
            extra = {"MemberName": "Agent 1001"} if action == "QueueAdd" else {}
            await ami.send({"Action": action, **member, **extra}, as_list=False)

    asyncio.run(agent("QueueAdd"))
    try:
        # 0 at the welcome; the agent rings 3 s and talks 5 s; once the agent has hung up,
        # the survey asks and the caller rates the service 1 (satisfied).
        uid = _keyed(
            ivr,
            lambda uid: [
                Press("0", asking_at(ivr.store, uid, "welcome"), "the welcome asking"),
                Press("1", running_script(ivr.settings, uid, AGI_SCRIPT_SURVEY), "the survey", until=_rated(ivr, uid)),
            ],
        )
        call = wait_until(lambda: _ended_and_settled(ivr, uid), f"call {uid} ended with its disposition")
    finally:
        asyncio.run(agent("QueueRemove"))
    assert call["outcome"] == "transferred" and call["queue"] == "hotline-12333"
    assert (call["disposition"], call["agent"]) == ("agent", "Agent 1001")
    assert 3 <= call["queue_wait_s"] < QUEUE_GIVES_UP_S  # the agent rang 3 s before answering
    assert call["talk_s"] > 0
    assert call["survey"] == 1


def _keyed(ivr: Ivr, script: Callable[[str], list[Press]]) -> str:
    """A keyed call (tests/real/keyed_caller.py): `script` gives the presses for its uniqueid."""
    return asyncio.run(keyed_call(ivr.settings, script))


def _rated(ivr: Ivr, uid: str) -> Callable[[], bool]:
    return lambda: (c := call_of(ivr.store, uid)) is not None and c.survey is not None


def _ended_and_settled(ivr: Ivr, uid: str) -> dict[str, Any] | None:
    call = call_of(ivr.store, uid)
    if call is None or call.ended_at is None or call.disposition is None:
        return None
    return show_call(ivr.store, call.id, actor="test")


def test_a_paused_agent_gets_no_call_and_the_caller_abandons(ivr: Ivr, asterisk: LocalAsterisk) -> None:
    control = AgentControl(ivr.settings, ivr.store)
    interface = "Local/1002-1-3@hotline-agents/n"
    asyncio.run(control.login("1002", "Agent 1002", interface, paused=True, reason="training"))
    try:
        shown = asterisk.cli("queue show hotline-12333")
        assert "Agent 1002" in shown and "paused" in shown.lower()
        # 0 at the welcome; nobody is staffed, so the queue entry offers a callback and the
        # caller presses 2 to keep waiting; once in the queue, the caller hangs up.
        uid = _keyed(
            ivr,
            lambda uid: [
                Press("0", asking_at(ivr.store, uid, "welcome"), "the welcome asking"),
                Press(
                    "2",
                    running_script(ivr.settings, uid, AGI_SCRIPT_QUEUE_ENTRY),
                    "the callback offer",
                    until=in_queue(ivr.settings, uid),
                ),
            ],
        )
        asyncio.run(hang_up(ivr.settings, uid))
        call = wait_until(lambda: _ended_and_settled(ivr, uid), f"call {uid} ended with its disposition")
        assert (call["disposition"], call["agent"], call["talk_s"]) == ("abandoned", None, None)
        # The caller hung up while waiting, before the queue would have given up.
        assert call["queue_wait_s"] is not None and 0 <= call["queue_wait_s"] < QUEUE_GIVES_UP_S
        # State lives in the store: unpause and log out go through it and through Asterisk.
        assert asyncio.run(control.unpause("1002")).state == "available"
        assert "paused" not in asterisk.cli("queue show hotline-12333").lower()
    finally:
        asyncio.run(control.logout("1002"))
    assert "Agent 1002" not in asterisk.cli("queue show hotline-12333")
    assert [a.state for a in control.list() if a.id == "1002"] == ["logged_out"]


def cut_ami_links(pid: int, ami_port: int) -> int:
    """Abort every AMI connection of the process, as a broken link would (ss -K, loopback only)."""
    ports = [
        c.laddr.port
        for c in psutil.Process(pid).net_connections("tcp")
        if c.raddr and c.raddr.port == ami_port and c.status == psutil.CONN_ESTABLISHED
    ]
    for port in ports:
        subprocess.run(["ss", "-K", "src", "127.0.0.1", "sport", "=", str(port)], check=True, capture_output=True)
    return len(ports)


def _wait_for_the_agent_on(ivr: Ivr, agent_id: str, uniqueid: str, limit_s: float = 40.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with ivr.store.session() as s:
            on = s.scalar(
                select(Agent.id)
                .join(Call, Call.id == Agent.current_call_id)
                .where(Agent.id == agent_id, Call.asterisk_uniqueid == uniqueid)
            )
        if on is not None:
            return
        time.sleep(0.2)
    raise AssertionError(f"agent {agent_id} never took call {uniqueid} within {limit_s:.0f} s")


def test_ami_link_cut_mid_call_then_records_completed_from_queue_log(ivr: Ivr, asterisk: LocalAsterisk) -> None:
    control = AgentControl(ivr.settings, ivr.store)
    asyncio.run(control.login("1003", "Agent 1003", "Local/1003-2-8@hotline-agents/n"))
    try:

        async def call_and_cut() -> tuple[str, int]:
            uid = await place_call(ivr.settings, "0", lead_s=1, tail_s=22)
            # Cut while the agent talks to the caller: once the monitor saw AgentConnect.
            # (A fixed 8 s once cut while the agent was still being rung, on a loaded run.)
            await asyncio.to_thread(_wait_for_the_agent_on, ivr, "1003", uid)
            cut = cut_ami_links(ivr.pid, ivr.settings.ami.port)
            await wait_hung_up(ivr.settings, uid, timeout_s=60)
            return uid, cut

        uid, cut = asyncio.run(call_and_cut())
    finally:
        asyncio.run(control.logout("1003"))
    assert cut >= 1
    log = ivr.log.read_text(encoding="utf-8")
    assert "AMI monitor: connection lost" in log and log.count("AMI monitor: logged in") >= 2
    # The monitor's own record of the call, or its catch-up from queue_log after it logged
    # in again, completes the record without anyone running an import.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with ivr.store.session() as s:
            rows = s.scalars(select(Call).where(Call.asterisk_uniqueid == uid)).all()
        if rows and rows[0].talk_s is not None:
            break
        time.sleep(0.3)
    assert len(rows) == 1  # the IVR's own record, completed, not a second one
    call = rows[0]
    # A manual import afterwards finds nothing to add.
    report = import_files(ivr.store, asterisk.queue_log, asterisk.cdr_csv)
    assert report.problems.count == 0
    with ivr.store.session() as s:
        assert s.scalars(select(Call).where(Call.asterisk_uniqueid == uid)).one().talk_s == call.talk_s
    assert (call.disposition, call.agent) == ("agent", "Agent 1003")
    assert call.queue_wait_s is not None and 2 <= call.queue_wait_s < QUEUE_GIVES_UP_S  # the agent rang 2 s
    assert call.talk_s is not None and call.talk_s > 0
