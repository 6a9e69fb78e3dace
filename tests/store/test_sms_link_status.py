"""The SMPP link's state reaches the commands that run in other processes: `hotline sms
status` (through the store) and `hotline status` (through /healthz's Health), as the
link passes through a sick bind and binds again."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from core.db import Store
from core.health import Health
from core.settings import SmppSettings
from hotline import status as serve_status
from hotline.cli import main
from sms import link_status
from sms.bind_health import LinkState
from sms.link_status import LinkReport
from sms.smpp import SmppTransport
from tests.protocol.test_smpp_sick_bind import FAST, _nothing, _send, simulator

pytestmark = pytest.mark.timeout(60)


async def _until_recorded(store: Store, name: str, state: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            now = dt.datetime.now(dt.UTC)
            rows = {r["name"]: r for r in await asyncio.to_thread(link_status.links, store, now)}
            if name in rows and rows[name]["state"] == state and rows[name]["sick_binds"]:
                return rows[name]
            await asyncio.sleep(0.05)


async def test_a_sick_bind_and_the_bind_after_it_show_in_both_status_commands(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    health = Health()
    async with simulator(sick_after=2) as sim:
        transport = SmppTransport(SmppSettings(port=sim.config.port, password="secret", **FAST), _nothing)  # type: ignore[arg-type]
        stop = asyncio.Event()
        publisher = asyncio.create_task(
            link_status.publish(store, "gw-1", transport.report, transport.changed, stop, health)
        )
        await transport.start()
        try:
            results = await asyncio.gather(*(_send(transport, f"139{i:08d}") for i in range(5)))
            row = await _until_recorded(store, "gw-1", "bound")
        finally:
            stop.set()
            await publisher
            await transport.stop()
    assert [r.status for r in results] == [0] * 5
    assert row["sick_binds"] == 1 and row["current"] and row["address"] == f"127.0.0.1:{sim.config.port}"
    assert health.as_json()["links"] == {"smpp": {"state": "bound", "since": row["since"], "sick_binds": 1}}
    assert "  smpp link: bound since " in serve_status.as_text(health.as_json())
    assert "1 sick binds dropped" in serve_status.as_text(health.as_json())

    # A gateway that stopped refreshing its row a while ago: shown as gone.
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    report = LinkReport(LinkState.REFUSING, "10.0.0.9:2775", "3 submit_sm refused, last 0x14 ESME_RMSGQFUL", old, 0)
    link_status.record(store, "gw-0", report, old)
    link_status.record(store, "gw-old", report, old - dt.timedelta(days=2))  # then forgotten:
    link_status.record(store, "gw-0", report, old)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", store.url)
    assert main(["sms", "status", "--format", "json"]) == 0
    links = {r["name"]: r for r in json.loads(capsys.readouterr().out)["links"]}
    assert links["gw-1"]["state"] == "bound" and links["gw-1"]["current"]
    assert links["gw-0"]["state"] == "refusing" and not links["gw-0"]["current"]
    assert "gw-old" not in links
    assert main(["sms", "status"]) == 0
    text = capsys.readouterr().out
    assert f"smpp link gw-1: bound since {row['since']} (127.0.0.1:{sim.config.port}, 1 sick binds dropped)" in text
    assert "smpp link gw-0: refusing since" in text and "last 0x14 ESME_RMSGQFUL" in text and "gateway is gone" in text
