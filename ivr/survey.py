"""The post-call survey: after an agent call the dialplan runs the FastAGI script
`survey`; the caller rates the service 1 (satisfied), 2 (basically satisfied) or
3 (dissatisfied), and the rating is stored with the call."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from sqlalchemy import CursorResult, update

from core.db import Store
from core.errors import StoreUnavailable
from core.models import Call
from ivr import dialplan
from ivr.fastagi import AgiChannel, AgiVoice, Route

log = logging.getLogger(__name__)
RATINGS = ("1", "2", "3")
ATTEMPTS = 2
TIMEOUT_MS = 6000


def store_rating(store: Store, call_id: str, rating: int) -> bool:
    """True if the call was found and rated."""
    with store.session() as s:
        result = s.execute(update(Call).where(Call.id == call_id).values(survey=rating))
        return bool(cast(CursorResult[Any], result).rowcount)


def survey_route(store: Store) -> Route:
    async def route(channel: AgiChannel) -> None:
        reply = await channel.command(f"GET VARIABLE {dialplan.VAR_CALL_ID}")
        call_id = reply.data if reply.result == "1" else ""
        voice = AgiVoice(channel)
        language = "zh"
        for _ in range(ATTEMPTS):
            key = await voice.collect(["survey.ask"], language, 1, TIMEOUT_MS)
            if key in RATINGS:
                break
        else:
            log.info("survey: call %s gave no rating", call_id or channel.env.uniqueid)
            return
        assert key is not None
        if call_id:
            try:
                found = await asyncio.to_thread(store_rating, store, call_id, int(key))
            except StoreUnavailable as exc:
                log.error("survey: rating of call %s not stored (store unavailable: %s)", call_id, exc)
                found = True  # said, not lost silently: the error above is the record
            if not found:
                log.warning("survey: no call %s to rate", call_id)
        await voice.play(["survey.thanks"], language)

    return route
