"""Recordings for supervisors: the list (by date, agent, queue, with the call record), a
recording's page with the player and the quality-check form, and the audio itself; voice
messages for supervisors and for the department whose order carries the message.

The audio is found by the row's id, never by a path from the request, and served only
inside recordings.dir (core.recordings.resolve). Every fetch of a recording or a voice
message is audited, and the entry is committed before the first byte goes out. aiohttp's
FileResponse answers Range requests (206 Partial Content, RFC 9110 section 14), so the
<audio> element can seek.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from cases.errors import BadScore, RecordingNotFound
from cases.quality import ScoreView, max_total, score_recording, scores_of
from console.errors import BadRequest, NotAllowed
from console.request import actor, deps, render, require_role
from core import audit
from core.db import Store
from core.masking import mask_phone
from core.models import Call, Recording, VoiceMessage, WorkOrder
from core.recordings import RecordingPathRefused, resolve

ROLES = ("supervisor", "admin")
# Voice messages go to whoever may see work orders: supervisors and admins all of them, a
# department user only those of its own department's orders (404 for any other, as for an
# order: the answer does not tell them it exists).
VOICE_MESSAGE_ROLES = ("supervisor", "admin", "department")
LIST_LIMIT = 200
AUDIO_TYPE = "audio/wav"


@dataclass(frozen=True)
class RecordingRow:
    id: int
    call_id: str
    agent: str | None
    started_at: dt.datetime
    duration_s: float | None
    deleted_at: dt.datetime | None
    delete_reason: str | None
    queue: str | None
    caller: str  # masked
    talk_s: int | None
    survey: int | None
    resident_id: int | None


def _row(rec: Recording, call: Call | None) -> RecordingRow:
    return RecordingRow(
        rec.id,
        rec.call_id,
        rec.agent,
        rec.started_at,
        rec.duration_s,
        rec.deleted_at,
        rec.delete_reason,
        call.queue if call else None,
        mask_phone(call.caller_number) if call else "",
        call.talk_s if call else None,
        call.survey if call else None,
        call.resident_id if call else None,
    )


def list_recordings(
    store: Store, zone: str, day: dt.date | None, agent: str | None, queue: str | None
) -> list[RecordingRow]:
    """The newest recordings first, of one local day, one agent, one queue when given."""
    query = select(Recording, Call).outerjoin(Call, Call.id == Recording.call_id)
    if day is not None:
        tz = zoneinfo.ZoneInfo(zone)
        start = dt.datetime.combine(day, dt.time(), tz)
        query = query.where(Recording.started_at >= start, Recording.started_at < start + dt.timedelta(days=1))
    if agent:
        query = query.where(Recording.agent == agent)
    if queue:
        query = query.where(Call.queue == queue)
    with store.session() as s:
        rows = s.execute(query.order_by(Recording.started_at.desc(), Recording.id.desc()).limit(LIST_LIMIT)).all()
        return [_row(rec, call) for rec, call in rows]


def one_recording(store: Store, recording_id: int) -> RecordingRow | None:
    with store.session() as s:
        found = s.execute(
            select(Recording, Call).outerjoin(Call, Call.id == Recording.call_id).where(Recording.id == recording_id)
        ).first()
        return _row(*found) if found else None


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text="no such recording")
    return int(raw)


def _day(raw: str) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(f"date {raw!r}: use YYYY-MM-DD") from exc


async def page(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    d = deps(request)
    q = request.query
    day, agent, queue = _day(q.get("date", "")), q.get("agent", "").strip(), q.get("queue", "").strip()
    rows = await asyncio.to_thread(list_recordings, d.store, d.settings.queue.timezone, day, agent, queue)
    return render(
        request,
        "recordings.html",
        rows=rows,
        day=day.isoformat() if day else "",
        agent=agent,
        queue=queue,
        local=lambda at: at.astimezone(zoneinfo.ZoneInfo(d.settings.queue.timezone)).strftime("%Y-%m-%d %H:%M:%S"),
    )


async def detail(request: web.Request, message: str = "", status: int = 200) -> web.StreamResponse:
    require_role(request, *ROLES)
    d = deps(request)
    recording_id = _id(request)
    row = await asyncio.to_thread(one_recording, d.store, recording_id)
    if row is None:
        raise web.HTTPNotFound(text="no such recording")
    scores: list[ScoreView] = await asyncio.to_thread(scores_of, d.store, recording_id)
    zone = zoneinfo.ZoneInfo(d.settings.queue.timezone)
    return render(
        request,
        "recording.html",
        status=status,
        rec=row,
        scores=scores,
        form=d.settings.quality.items,
        form_max=max_total(d.settings.quality),
        message=message,
        local=lambda at: at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
    )


async def score(request: web.Request) -> web.StreamResponse:
    u = require_role(request, *ROLES)
    d = deps(request)
    recording_id = _id(request)
    form = await request.post()
    points = {k[len("item_") :]: str(v) for k, v in form.items() if k.startswith("item_")}
    try:
        await asyncio.to_thread(
            score_recording,
            d.store,
            d.settings.quality,
            recording_id,
            u.username,
            points,
            str(form.get("comment", "")),
        )
    except RecordingNotFound as exc:
        raise web.HTTPNotFound(text="no such recording") from exc
    except BadScore as exc:
        return await detail(request, message=str(exc), status=400)
    raise web.HTTPSeeOther(f"/recordings/{recording_id}")


def _recording_file(store: Store, base: Path, recording_id: int) -> tuple[Path, str, int | None] | None:
    """The file, call id and resident of a recording that is still kept; None otherwise."""
    with store.session() as s:
        found = s.execute(
            select(Recording.path, Recording.call_id, Recording.deleted_at, Call.resident_id)
            .outerjoin(Call, Call.id == Recording.call_id)
            .where(Recording.id == recording_id)
        ).first()
    if found is None or found.deleted_at is not None:
        return None
    return _existing(base, found.path), found.call_id, found.resident_id


def _voice_message_file(
    store: Store, base: Path, message_id: int, department: str | None
) -> tuple[Path, str, int | None] | None:
    """The file, call id and resident of a voice message; None if there is none, retention
    deleted its file, or (for a department user: `department` given) its order is not that
    department's."""
    with store.session() as s:
        found = s.execute(
            select(VoiceMessage.recording, VoiceMessage.call_id, VoiceMessage.resident_id, WorkOrder.department)
            .add_columns(VoiceMessage.deleted_at)
            .outerjoin(WorkOrder, WorkOrder.id == VoiceMessage.order_id)
            .where(VoiceMessage.id == message_id)
        ).first()
    if found is None or found.deleted_at is not None:  # deleted by retention: nothing to serve
        return None
    if department is not None and found.department != department:
        return None
    return _existing(base, found.recording), found.call_id, found.resident_id


def _existing(base: Path, relative: str) -> Path:
    try:
        file = resolve(base, relative)
    except RecordingPathRefused as exc:  # a row naming a path outside recordings.dir: never served
        raise web.HTTPNotFound(text="no such recording") from exc
    if not file.is_file():
        raise web.HTTPNotFound(text="the recording's file is gone")
    return file


def _audit_play(store: Store, actor: str, kind: str, call_id: str, resident_id: int | None, span: str) -> None:
    with store.transaction() as c:
        audit.record(
            c, actor=actor, action=f"play:{kind}", resident_id=resident_id, call_id=call_id, detail=f"range {span}"
        )


async def _serve(
    request: web.Request, actor: str, kind: str, found: tuple[Path, str, int | None] | None
) -> web.StreamResponse:
    if found is None:
        raise web.HTTPNotFound(text="no such recording")
    file, call_id, resident_id = found
    # Each fetch is audited (the <audio> element asks again with a Range on every seek), and
    # the entry is committed before the response starts: no byte leaves unaudited.
    span = request.headers.get("Range", "whole file")[:60]
    await asyncio.to_thread(_audit_play, deps(request).store, actor, kind, call_id, resident_id, span)
    return web.FileResponse(file, headers={"Content-Type": AUDIO_TYPE, "Cache-Control": "no-store"})


async def audio(request: web.Request) -> web.StreamResponse:
    require_role(request, *ROLES)
    d = deps(request)
    found = await asyncio.to_thread(_recording_file, d.store, d.settings.recordings.dir, _id(request))
    return await _serve(request, actor(request), "recording", found)


async def voice_message_audio(request: web.Request) -> web.StreamResponse:
    u = require_role(request, *VOICE_MESSAGE_ROLES)
    if u.role == "department" and not u.department:
        raise NotAllowed(f"department account {u.username} names no department")
    mine = u.department if u.role == "department" else None
    d = deps(request)
    found = await asyncio.to_thread(_voice_message_file, d.store, d.settings.recordings.dir, _id(request), mine)
    return await _serve(request, actor(request), "voice_message", found)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/recordings", page)
    app.router.add_get("/recordings/{id}", detail)
    app.router.add_get("/recordings/{id}/audio", audio)
    app.router.add_post("/recordings/{id}/score", score)
    app.router.add_get("/voice-messages/{id}/audio", voice_message_audio)
