"""通知设置 Notification settings: a resident's notice channels, as an agent reads and
changes them for a caller (linked from the screen pop).

The page shows every category's row and the choice the gateway makes, the numbers that may
be called, and a form for the '*' choice (channels in order, language, quiet hours) and for
clearing. Agents and supervisors (and admins) may open and change it; auditors and
department users are refused. Each view and each change is audited (sms/preference_view.py
through core/preference_audit.py) as console:<agent id>, or the user name for staff without
one. A choice the preferences cannot keep re-shows the form with the refusal's words.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.errors import NotAllowed, NotFound
from console.i18n import TEXT, t
from console.request import deps, lang, render, user
from core import audit
from core.masking import mask_id, mask_phone
from core.models import Agent, Call, Resident
from core.preferences import ALL, CHANNELS, LANGUAGES, Preference, PreferenceRefused, parse
from sms import preference_view as pv

EDITORS: Final = ("agent", "supervisor", "admin")
CHANNEL_SLOTS: Final = len(CHANNELS)
CHANNEL: Final = "console"
DONE: Final = ("saved", "cleared")  # what the page says after a change (?done=)
DENIED: Final = "denied:preferences"
NOT_ON_CALL: Final = "resident not on the agent's current or last call"


def _editor(request: web.Request) -> str:
    """The signed-in user's audit name, or NotAllowed (a 403 page saying who may)."""
    u = user(request)
    if u.role not in EDITORS:
        raise NotAllowed(t("prefs.refused", lang(request)).format(role=u.role))
    return f"console:{u.agent_id or u.username}"


def _resident_id(request: web.Request) -> int:
    raw = request.match_info["resident_id"]
    if not raw.isdigit() or len(raw) > 12:
        raise NotFound(t("prefs.no_resident", lang(request)))
    return int(raw)


def _id_number(request: web.Request, actor: str, resident_id: int) -> tuple[str, str]:
    """The resident's name and ID number (NotFound for an id nobody has). An agent may
    open only the settings of the resident on their current or last call, as the screen
    pop is theirs only; a refusal is audited."""
    d, u = deps(request), user(request)
    with d.store.session() as s:
        known = s.scalar(select(Resident.id).where(Resident.id == resident_id))
        if known is None:
            raise NotFound(t("prefs.no_resident", lang(request)))
        if u.role == "agent" and resident_id not in _callers(s, u.agent_id):
            audit.record(s, actor=actor, action=DENIED, resident_id=resident_id, channel=CHANNEL, detail=NOT_ON_CALL)
            refused = True
        else:
            refused = False
    if refused:
        raise NotAllowed(t("prefs.not_your_caller", lang(request)))
    person = d.port.person(resident_id)
    return person.name, person.id_number


def _callers(s: Session, agent_id: str | None) -> set[int]:
    """The residents of the agent's current and last call (those the IVR identified)."""
    agent = s.get(Agent, agent_id) if agent_id else None
    calls = {c for c in (agent.current_call_id, agent.last_call_id) if c} if agent else set()
    if not calls:
        return set()
    found = s.scalars(select(Call.resident_id).where(Call.id.in_(calls), Call.resident_id.is_not(None)))
    return {r for r in found if r is not None}


def _row(request: web.Request, category: str, choice: Preference | str | None) -> dict[str, Any]:
    return {"category": category, "label": _label(request, category), "line": pv.describe(choice)}


def _label(request: web.Request, category: str) -> str:
    """The category's words, or its name for one the console has none for (a new template's)."""
    key = "prefs.cat." + category
    return t(key, lang(request)) if key in TEXT else category


def _form_of(star: Preference | str | None) -> dict[str, Any]:
    """The form's fields as the '*' row has them (SMS, zh, no quiet hours without one)."""
    if not isinstance(star, Preference):
        return {"channels": ["sms"], "language": "zh", "quiet_start": "", "quiet_end": ""}
    return {
        "channels": list(star.channels),
        "language": star.language,
        "quiet_start": f"{star.quiet[0]:%H:%M}" if star.quiet else "",
        "quiet_end": f"{star.quiet[1]:%H:%M}" if star.quiet else "",
    }


async def _page(
    request: web.Request, actor: str, resident_id: int, *, status: int = 200, **extra: Any
) -> web.StreamResponse:
    d = deps(request)
    name, id_number = await asyncio.to_thread(_id_number, request, actor, resident_id)
    shown = await asyncio.to_thread(
        pv.view,
        d.store,
        d.port,
        actor=actor,
        kind="person",
        subject_id=id_number,
        channel=CHANNEL,
        country_code=d.settings.sms.country_code,
    )
    via = {"own": "prefs.via.own", ALL: "prefs.via.star", "default": "prefs.via.default"}
    context: dict[str, Any] = {
        "resident_id": resident_id,
        "name": name,
        "id_number": mask_id(id_number),
        "star": _row(request, ALL, shown.star),
        "has_star": shown.star is not None,
        "rows": [
            _row(request, c.category, c.effective) | {"via": via[c.via], "own": c.own is not None}
            for c in shown.choices
        ],
        "numbers": [
            {"phone": mask_phone(n.phone), "registered": n.registered, "opted_out": n.voice_opt_out}
            for n in shown.numbers
        ],
        "wechat_bound": shown.wechat_bound,
        "form": _form_of(shown.star),
        "channels": CHANNELS,
        "slots": range(CHANNEL_SLOTS),
        "languages": LANGUAGES,
        "message": "",
        "done": request.query.get("done") if request.query.get("done") in DONE else "",
    }
    return render(request, "notices.html", status=status, **(context | extra))


async def settings_page(request: web.Request) -> web.StreamResponse:
    actor = _editor(request)
    return await _page(request, actor, _resident_id(request))


async def _posted(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


def _preference(form: dict[str, str], actor: str) -> Preference:
    """The '*' choice the form asks for; PreferenceRefused says what is wrong."""
    chosen = [form.get(f"channel{i}", "").strip() for i in range(CHANNEL_SLOTS)]
    start, end = form.get("quiet_start", "").strip(), form.get("quiet_end", "").strip()
    return parse(
        ",".join(c for c in chosen if c),
        form.get("language", "zh"),
        start or None,
        end or None,
        source=actor,
    )


async def change(request: web.Request) -> web.StreamResponse:
    """Keep the '*' choice (the number to call the '*' row named stays), or re-show the
    form with the refusal."""
    actor, resident_id = _editor(request), _resident_id(request)
    form = await _posted(request)
    _, id_number = await asyncio.to_thread(_id_number, request, actor, resident_id)
    try:
        preference = _preference(form, actor)
        await asyncio.to_thread(
            pv.set_choice,
            deps(request).store,
            actor=actor,
            kind="person",
            subject_id=id_number,
            category=ALL,
            preference=preference,
            channel=CHANNEL,
            keep_voice_number=True,
        )
    except PreferenceRefused as exc:
        typed = {
            "channels": [form.get(f"channel{i}", "") for i in range(CHANNEL_SLOTS)],
            "language": form.get("language", ""),
            "quiet_start": form.get("quiet_start", ""),
            "quiet_end": form.get("quiet_end", ""),
        }
        return await _page(request, actor, resident_id, status=400, message=str(exc), form=typed)
    raise web.HTTPSeeOther(f"/residents/{resident_id}/notices?done=saved")


async def clear(request: web.Request) -> web.StreamResponse:
    """Drop one category's row ('*' or a category), or with none given every row."""
    actor, resident_id = _editor(request), _resident_id(request)
    category = (await _posted(request)).get("category", "").strip() or None
    _, id_number = await asyncio.to_thread(_id_number, request, actor, resident_id)
    try:
        await asyncio.to_thread(
            pv.clear_choice,
            deps(request).store,
            actor=actor,
            kind="person",
            subject_id=id_number,
            category=category,
            channel=CHANNEL,
        )
    except PreferenceRefused as exc:
        return await _page(request, actor, resident_id, status=400, message=str(exc))
    raise web.HTTPSeeOther(f"/residents/{resident_id}/notices?done=cleared")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/residents/{resident_id}/notices", settings_page)
    app.router.add_post("/residents/{resident_id}/notices", change)
    app.router.add_post("/residents/{resident_id}/notices/clear", clear)
