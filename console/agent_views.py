"""The agent desk: my state and its buttons, the screen pop, the wrap-up, my callbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from aiohttp import web

from cases import orders as cases_orders
from cases.errors import CasesError
from console import live, order_views, work
from console.errors import BadRequest, NotAllowed
from console.request import USER, ConsoleDeps, deps, render, require_role
from console.sse import sse
from core.calls_out import DialCapped, refuse
from core.destinations import DestinationRefused
from core.masking import mask_numbers, mask_phone
from core.phones import BadPhoneNumber
from core.sip_phones import softphone_credentials, softphone_endpoint
from core.states import DialState
from ivr import outbound
from ivr.conference import Conferences
from ivr.dialplan import QUEUE_GENERAL, QUEUE_LABOUR
from ivr.errors import AmiError, ConferenceRefused, NoOutboundTrunk
from ivr.screenpop import NotOnThisCall, ScreenPop, screen_pop
from ivr.webrtc_config import WEBSOCKET_PATH

log = logging.getLogger(__name__)
PAUSE_REASONS = ("break", "meal", "training", "after_call")
AGENT_QUEUES = (QUEUE_GENERAL, QUEUE_LABOUR)


def _agent(request: web.Request) -> tuple[str, str, str]:
    u = require_role(request, "agent")
    if not u.agent_id or not u.interface:
        raise BadRequest(f"account {u.username} has no agent id or interface")
    return u.agent_id, u.display_name, u.interface


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest("the request body is not JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else f"{fen / 100:,.2f}"


def _pop_dict(pop: ScreenPop) -> dict[str, Any]:
    out = dataclasses.asdict(pop)
    for key in ("pension_balance_fen", "medical_balance_fen"):
        out[key.replace("_fen", "_yuan")] = _yuan(out.pop(key))
    rid = out.pop("resident_id")
    out["notices_url"] = f"/residents/{rid}/notices" if rid is not None else None
    return out


async def desk(request: web.Request) -> web.StreamResponse:
    _agent(request)
    return render(
        request,
        "agent.html",
        reasons=PAUSE_REASONS,
        codes=work.WRAPUP_CODES,
        order_categories=order_views.categories(request),
        order_departments=deps(request).settings.cases.departments,
        order_summary_max=cases_orders.SUMMARY_MAX,
        departments=sorted(deps(request).settings.sip.departments.items(), key=lambda item: item[1]),
    )


async def desk_stream(request: web.Request) -> web.StreamResponse:
    agent_id, _, interface = _agent(request)
    d = deps(request)
    shown: dict[str, Any] = {"call": None, "pop": None}
    conferences = Conferences(d.settings, d.store)
    # The desk's softphone, a phone of its own beside the account's (when the console offers one).
    softphone = f"PJSIP/{softphone_endpoint(agent_id)}" if wss_url(request) is not None else ""

    async def snapshot() -> dict[str, Any]:
        me = await asyncio.to_thread(
            live.agent_snapshot,
            d.store,
            agent_id,
            interface,
            d.phones,
            softphone,
            monitor_notice=d.settings.queue.monitor_notice,
        )
        call_id = me["current_call_id"]
        if call_id != shown["call"]:
            # A new call: look the caller up once (each look-up is audited), keep it for this page.
            shown["call"], shown["pop"] = call_id, None
            if call_id is not None:
                try:
                    pop = await asyncio.to_thread(screen_pop, d.store, d.port, agent_id, call_id)
                    shown["pop"] = _pop_dict(pop)
                except NotOnThisCall:
                    shown["pop"] = None  # the call ended between the two reads
        zone = d.settings.queue.timezone
        last = await asyncio.to_thread(work.last_call, d.store, agent_id, zone)
        callbacks = await asyncio.to_thread(work.my_callbacks, d.store, agent_id, AGENT_QUEUES, zone)
        conference = await asyncio.to_thread(conferences.of_agent, agent_id)
        return {
            "me": me,
            "conference": dataclasses.asdict(conference) if conference else None,
            "screen_pop": shown["pop"],
            "last_call": dataclasses.asdict(last) if last else None,
            "callbacks": [dataclasses.asdict(cb) for cb in callbacks],
        }

    return await sse(request, snapshot)


def wss_url(request: web.Request) -> str | None:
    """Where the page's softphone connects: Asterisk's TLS HTTP server on the host the
    browser reached the console by (the certificate must name it), path /ws."""
    sip = deps(request).settings.sip
    if not sip.webrtc or not sip.softphone_secret:
        return None
    host = request.url.host or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"wss://{host}:{sip.https_port}{WEBSOCKET_PATH}"


async def softphone(request: web.Request) -> web.StreamResponse:
    """The signed-in agent's own softphone account: WSS URL, SIP URI, password (derived,
    never stored; sent only to that agent, with Cache-Control: no-store) and departments."""
    agent_id, name, _ = _agent(request)
    url, sip = wss_url(request), deps(request).settings.sip
    if url is None:
        return web.json_response({"error": "the softphone is off (sip.webrtc, sip.softphone_secret)"}, status=404)
    d = deps(request)
    credentials = await asyncio.to_thread(softphone_credentials, d.store, d.settings, agent_id)
    if credentials is None:  # `hotline phones add <agent> --softphone` makes one
        return web.json_response({"error": f"agent {agent_id} has no softphone"}, status=404)
    endpoint, password = credentials
    host = request.url.host or "127.0.0.1"
    return web.json_response(
        {
            "ws_url": url,
            "uri": f"sip:{endpoint}@{host}",
            "password": password,
            "display_name": name,
            "departments": [{"queue": q, "number": n} for q, n in sip.departments.items()],
        }
    )


async def change_state(request: web.Request) -> web.StreamResponse:
    agent_id, name, interface = _agent(request)
    body = await _json(request)
    action, control = body.get("action"), deps(request).agents
    if action == "login":
        # The desk's softphone, when it has registered, is the queue member; otherwise the
        # account's own phone (PJSIP/<agent>, or a scripted Local channel in the demo).
        if body.get("phone") == "softphone" and wss_url(request) is not None:
            interface = f"PJSIP/{softphone_endpoint(agent_id)}"
        view = await control.login(agent_id, name, interface, AGENT_QUEUES)
    elif action == "logout":
        view = await control.logout(agent_id)
    elif action == "pause":
        reason = body.get("reason")
        if reason not in PAUSE_REASONS:
            raise BadRequest(f"pause reason must be one of {', '.join(PAUSE_REASONS)}")
        view = await control.pause(agent_id, reason)
    elif action == "unpause":
        view = await control.unpause(agent_id)
    else:
        raise BadRequest("action must be login, logout, pause or unpause")
    return web.json_response({"state": view.state, "reason": view.pause_reason})


async def caller_data(request: web.Request) -> web.StreamResponse:
    """The screen pop on request: refused (and audited) unless the agent is on that call."""
    agent_id, _, _ = _agent(request)
    d = deps(request)
    try:
        pop = await asyncio.to_thread(screen_pop, d.store, d.port, agent_id, request.match_info["call_id"])
    except NotOnThisCall as exc:
        return web.json_response({"error": str(exc)}, status=403)
    return web.json_response(_pop_dict(pop))


async def wrapup(request: web.Request) -> web.StreamResponse:
    """Save the wrap-up; with "needs follow-up", the call's work order in the same transaction
    (everything checked first: a refused note leaves no order). Saving again replaces the
    wrap-up and finds the order made before: the answer names it each time."""
    agent_id, _, _ = _agent(request)
    body = await _json(request)
    call_id, code, note = body.get("call_id"), body.get("code"), body.get("note", "")
    if not isinstance(call_id, str) or not isinstance(code, str) or not isinstance(note, str):
        raise BadRequest("call_id, code and note are strings")
    work.check_wrapup(code, note)
    order = body.get("order")
    if order is not None and not isinstance(order, dict):
        raise BadRequest("order is an object: category, department, summary")
    wanted = order if code == "follow_up" else None
    d = deps(request)
    try:
        order_id, new = await asyncio.to_thread(_save, d, agent_id, call_id, code, note, wanted)
    except CasesError as exc:
        raise BadRequest(str(exc)) from exc
    return web.json_response({"saved": call_id, "order_id": order_id, "order_new": new})


def _save(
    d: ConsoleDeps, agent_id: str, call_id: str, code: str, note: str, order: dict[str, Any] | None
) -> tuple[int | None, bool]:
    """One transaction: the wrap-up (the call must be this agent's: checked first), then the
    order, its number and resident from the call record, never from the page."""
    with d.store.transaction() as c:
        work.write_wrapup(c, agent_id, call_id, code, note)
        if order is None:
            made = cases_orders.existing_call_order(c, call_id)
            return (made.id if made else None), False
        made, new = cases_orders.call_order(
            c,
            d.settings,
            call_id=call_id,
            category=str(order.get("category", "")),
            summary=str(order.get("summary", "")),
            department=str(order.get("department", "")) or None,
            created_by=f"console:{agent_id}",
        )
        return made.id, new


def _callback_id(request: web.Request) -> int:
    raw = request.match_info["callback_id"]
    if not raw.isdigit():
        raise BadRequest(f"no callback {raw!r}")
    return int(raw)


async def take_callback(request: web.Request) -> web.StreamResponse:
    """Claim the callback and call the resident: the agent's phone rings first. Taking it
    again (busy, no answer) calls again. Without an outbound trunk the number is shown
    for dialing by hand, with the reason it was not dialed."""
    agent_id, _, interface = _agent(request)
    d, callback_id = deps(request), _callback_id(request)
    number = await asyncio.to_thread(work.take_callback, d.store, agent_id, callback_id)
    try:
        outbound.dial_number(number, d.settings)
    except DestinationRefused as exc:
        where = f"callback {callback_id}"
        await asyncio.to_thread(refuse, d.store, exc, where=where, actor=f"console:{agent_id}")
        return web.json_response({"number": mask_phone(number), "dialing": False, "error": str(exc)})
    except (NoOutboundTrunk, BadPhoneNumber) as exc:
        return web.json_response({"number": number, "dialing": False, "error": mask_numbers(str(exc))})
    if not await asyncio.to_thread(outbound.start_dial, d.store, agent_id, callback_id):
        raise NotAllowed(f"callback {callback_id} is no longer taken by agent {agent_id}")
    try:
        await outbound.originate(d.settings, d.store, interface, callback_id, number)
    except DialCapped as exc:
        capped = outbound.DialOutcome(callback_id, DialState.FAILED, f"capped_{exc.cap}")
        await asyncio.to_thread(outbound.record_outcome, d.store, capped)
        return web.json_response({"number": number, "dialing": False, "error": str(exc)})
    except AmiError as exc:
        failed = outbound.DialOutcome(callback_id, DialState.FAILED, "originate")
        await asyncio.to_thread(outbound.record_outcome, d.store, failed)
        log.error("callback %d: call out not placed: %s", callback_id, mask_numbers(str(exc)))
        raise
    return web.json_response({"number": number, "dialing": True})


async def finish_callback(request: web.Request) -> web.StreamResponse:
    agent_id, _, _ = _agent(request)
    body = await _json(request)
    outcome, note = body.get("outcome"), body.get("note", "")
    if not isinstance(outcome, str) or not isinstance(note, str):
        raise BadRequest("outcome and note are strings")
    await asyncio.to_thread(work.finish_callback, deps(request).store, agent_id, _callback_id(request), outcome, note)
    return web.json_response({"finished": _callback_id(request), "outcome": outcome})


async def conference(request: web.Request) -> web.StreamResponse:
    """三方通话: ring a department's number or a phone into my call; 409 with the reason if not."""
    agent_id, _, _ = _agent(request)
    body = await _json(request)
    target = body.get("target")
    if not isinstance(target, str) or not 1 <= len(target) <= 20:
        raise BadRequest("target: a department's number or a phone (up to 20 characters)")
    d = deps(request)
    try:
        view = await Conferences(d.settings, d.store).start(
            agent_id=agent_id, target=target, actor=f"console:{request[USER].username}"
        )
    except ConferenceRefused as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"conference": view.id, "state": view.state, "target": view.target})


async def conference_leave(request: web.Request) -> web.StreamResponse:
    """Leave my three-party call: the caller stays with the department."""
    agent_id, _, _ = _agent(request)
    d = deps(request)
    try:
        view = await Conferences(d.settings, d.store).leave(agent_id)
    except ConferenceRefused as exc:
        return web.json_response({"error": str(exc)}, status=409)
    return web.json_response({"conference": view.id, "state": view.state})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/agent", desk)
    app.router.add_get("/agent/stream", desk_stream)
    app.router.add_post("/api/agent/state", change_state)
    app.router.add_get("/api/softphone", softphone)
    app.router.add_get("/api/calls/{call_id}/screenpop", caller_data)
    app.router.add_post("/api/wrapup", wrapup)
    app.router.add_post("/api/agent/conference", conference)
    app.router.add_post("/api/agent/conference/leave", conference_leave)
    app.router.add_post("/api/callbacks/{callback_id}/take", take_callback)
    app.router.add_post("/api/callbacks/{callback_id}/finish", finish_callback)
