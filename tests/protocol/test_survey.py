"""The post-call survey over FastAGI, against the scripted AGI peer."""

from __future__ import annotations

import pytest

from core.db import Store
from core.models import Call, utcnow
from ivr.fastagi import FastAgiServer
from ivr.survey import survey_route
from tests.protocol.agi_peer import Caller, environment, run_peer


def _caller(entries: list[str | None], call_id: str) -> Caller:
    def variable(i: int, command: str) -> bytes | None:
        if command.startswith("GET VARIABLE HOTLINE_CALL_ID"):
            return f"200 result=1 ({call_id})\n".encode()
        return None

    return Caller(list(entries), fault=variable)  # the caller pops its entries


@pytest.mark.parametrize(("entries", "expected"), [(["2"], 2), (["7", "3"], 3), ([None, None], None)])
async def test_rating_is_stored_with_the_call(store: Store, entries: list[str | None], expected: int | None) -> None:
    with store.session() as s:
        s.add(Call(id="call-1", started_at=utcnow()))
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("survey", survey_route(store))
    srv = await app.serve("127.0.0.1", 0)
    commands = await run_peer(
        srv.sockets[0].getsockname()[1], _caller(entries, "call-1"), env=environment(script="survey")
    )
    srv.close()
    with store.session() as s:
        assert s.get_one(Call, "call-1").survey == expected
    assert ("STREAM FILE hotline/zh/survey.thanks" in " ".join(commands)) == (expected is not None)
