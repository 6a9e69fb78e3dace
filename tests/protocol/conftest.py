"""Fixtures shared by the protocol tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hotline.serve import ivr_route
from ivr.fastagi import FastAgiServer
from ivr.session import IvrServices


@pytest.fixture
async def server(services: IvrServices) -> AsyncIterator[int]:
    """The IVR's FastAGI script on a free port (the port), over the test's store."""
    app = FastAgiServer(["127.0.0.1"], header_timeout=1.0, command_timeout=2.0)
    app.add_route("ivr", ivr_route(services))
    srv = await app.serve("127.0.0.1", 0)
    yield srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
