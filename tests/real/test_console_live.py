"""The console against real Asterisk: an agent in Debian's chromium joins the queues,
a real call waits while the supervisor's wallboard follows it, the agent resumes, the
call is bridged to the scripted agent and the caller's verified data pops up; then the
wrap-up is saved. Also the callback path: a caller presses 1 instead of waiting."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import Page
from sqlalchemy import select

from console import accounts
from core.masking import mask_id
from core.models import AuditEntry, Call, Callback, WorkOrder, Wrapup
from ivr.agents import AgentControl
from ivr.trail import show_call
from tests.browser import chromium
from tests.real.serving import Ivr, keypad

pytestmark = pytest.mark.real
PASSWORD = "console-test-password"
AGENT = "2001"
# Rings 2 s, then talks 6 s.
INTERFACE = f"Local/{AGENT}-2-6@hotline-agents/n"


async def sign_in(page: Page, base: str, username: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")


async def state_is(page: Page, state: str) -> None:
    await page.locator(f'#my-state[data-state="{state}"]').wait_for()


def test_agent_desk_and_wallboard_follow_a_real_call(ivr: Ivr) -> None:
    accounts.add_user(ivr.store, "agent2001", PASSWORD, "agent", "坐席2001", AGENT, INTERFACE)
    accounts.add_user(ivr.store, "boss", PASSWORD, "supervisor", "值班主管")
    resident = ivr.resident(5)
    base = ivr.web

    async def scenario() -> dict[str, object]:
        async with chromium() as browser:
            desk = await (await browser.new_context()).new_page()
            board = await (await browser.new_context()).new_page()
            desk.set_default_timeout(30_000)
            board.set_default_timeout(30_000)
            await sign_in(desk, base, "agent2001")
            await sign_in(board, base, "boss")
            await board.wait_for_url(f"{base}/wallboard")
            await board.evaluate("window.notReloaded = true")
            await board.locator("#wb-answered").filter(has_text=re.compile(r"^\d+$")).wait_for()
            answered = int(await board.locator("#wb-answered").inner_text())
            await state_is(desk, "logged_out")
            await desk.click("#btn-login")
            await state_is(desk, "available")
            await board.locator("#wb-state-available").filter(has_text="1").wait_for()
            await desk.select_option("#pause-reason", "break")
            await desk.click("#btn-pause")
            await state_is(desk, "paused")
            # The caller checks their pension, presses 0 during the answer, is offered a
            # callback (nobody is free) and presses 2 to wait.
            dtmf = f"1W1W1W{keypad(resident.id_number)}W{resident.pin}WWW0" + "W" * 8 + "2"
            call = asyncio.create_task(asyncio.to_thread(ivr.call, dtmf, tail_s=40))
            await board.locator("#wb-waiting").filter(has_text="1").wait_for(timeout=60_000)
            await desk.click("#btn-unpause")
            # The queue rings the agent, who answers after 2 s: the screen pop shows the caller.
            await desk.locator("#screen-pop").wait_for(state="visible", timeout=30_000)
            pop = {
                "id": await desk.locator("#pop-id").inner_text(),
                "name": await desk.locator("#pop-name").inner_text(),
                "pension": await desk.locator("#pop-pension").inner_text(),
                "path": await desk.locator("#pop-path").inner_text(),
            }
            await state_is(desk, "on_call")
            await board.locator("#wb-state-on_call").filter(has_text="1").wait_for()
            await board.locator("#wb-waiting").filter(has_text="0").wait_for()
            # The agent hangs up after 6 s; the wrap-up form is for that call.
            await state_is(desk, "available")
            await desk.select_option("#wrapup-code", "follow_up")
            await desk.fill("#wrapup-note", "养老金到账时间需回访")
            # "Needs follow-up" opens a work order for the call, to a department.
            await desk.select_option("#order-department", "养老保险")
            await desk.fill("#order-summary", "来电人询问养老金到账时间，请核实后答复")
            await desk.click("#wrapup-save")
            await desk.locator("#wrapup-saved").wait_for(state="visible")
            await desk.locator("#order-created").wait_for(state="visible")
            trail = await call
            await board.locator("#wb-answered").filter(has_text=str(answered + 1)).wait_for()
            pop["board_kept"] = await board.evaluate("window.notReloaded")
            await desk.click("#btn-logout")
            await state_is(desk, "logged_out")
            return {"pop": pop, "call": trail}

    try:
        out = asyncio.run(scenario())
    finally:
        asyncio.run(AgentControl(ivr.settings, ivr.store).logout(AGENT))
    pop, call = out["pop"], out["call"]
    assert isinstance(pop, dict) and isinstance(call, dict)
    assert pop["id"] == mask_id(resident.id_number) and pop["name"] == resident.name
    assert pop["pension"] == f"{resident.pension_balance_fen / 100:,.2f} 元"
    assert "q_pension" in pop["path"]
    assert pop["board_kept"] is True
    record = show_call(ivr.store, call["id"], actor="test")
    assert (record["disposition"], record["agent"]) == ("agent", "坐席2001")
    with ivr.store.session() as s:
        wrap = s.get(Wrapup, call["id"])
        assert wrap is not None and (wrap.code, wrap.note, wrap.agent_id) == (
            "follow_up",
            "养老金到账时间需回访",
            AGENT,
        )
        orders = s.scalars(select(WorkOrder).where(WorkOrder.call_id == call["id"])).all()
        assert [(o.kind, o.department, o.status, o.resident_id, o.caller_number) for o in orders] == [
            ("call", "养老保险", "open", resident.id, s.get_one(Call, call["id"]).caller_number)
        ]
        viewed = s.scalars(
            select(AuditEntry).where(AuditEntry.call_id == call["id"], AuditEntry.action == "view:screen_pop")
        ).all()
    assert [(a.actor, a.resident_id) for a in viewed][:1] == [(f"console:{AGENT}", resident.id)]


def test_a_caller_who_would_wait_books_a_callback(ivr: Ivr) -> None:
    """Nobody staffed: 0, the transfer prompt, the offer; 1 books the callback and ends the call."""
    call = ivr.call("0" + "W" * 7 + "1", tail_s=8)
    with ivr.store.session() as s:
        booked = s.scalars(select(Callback).where(Callback.call_id == call["id"])).all()
    assert [(c.number, c.reason, c.status) for c in booked] == [("13800000000", "long_wait", "open")]
    said = [s["text"] for s in call["trail"] if s["kind"] == "prompt"]
    assert said  # the IVR part of the trail is there
    record = show_call(ivr.store, call["id"], actor="test")
    assert record["disposition"] == "callback" and record["queue_wait_s"] is None
