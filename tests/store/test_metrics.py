"""`/metrics` of a real `hotline serve` with two FastAGI processes: calls answered by either
process are counted once in the scrape (prometheus_client's multiprocess mode), the
figures read from the store are there, nothing in it names a caller, and without the
bearer token there is nothing to read."""

from __future__ import annotations

import asyncio
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.agi_peer import run_call
from bench.fastagi_load import entries
from bench.procs import free_port
from core.db import Store
from tests.conftest import SAMPLE_RESIDENTS, load_sample
from tests.store.test_serve_processes import _end, _env, _serve

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-metrics-token-0123456789"
CALLER = "13812345678"


@pytest.fixture
def serving(store: Store, tmp_path: Path) -> Iterator[tuple[int, int]]:
    load_sample(store)
    agi, web = free_port(), free_port()
    env = _env(
        store.url,
        HOTLINE_AGI_PORT=str(agi),
        HOTLINE_AGI_WORKERS="2",
        HOTLINE_WEB_PORT=str(web),
        HOTLINE_WEB_METRICS_TOKEN=TOKEN,
        HOTLINE_SECURITY_AUDIT_KEY="test-audit-key-0123456789abcdef-0123",
    )
    proc = _serve(tmp_path, env, "agi,web")
    try:
        yield agi, web
    finally:
        _end(proc)


def _scrape(web: int, authorization: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{web}/metrics")
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _value(body: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", body, re.MULTILINE)
    assert found is not None, f"{series} not in the scrape:\n{body}"
    return float(found.group(1))


def test_metrics_add_up_both_fastagi_processes_and_name_no_caller(
    serving: tuple[int, int], sample_data: tuple[list, list]
) -> None:
    agi, web = serving
    people = sample_data[1][:6]
    wrong = people[5]
    keyed = [entries(r) for r in people[:5]]
    # A wrong PIN, then nothing more (the IVR's prompts time out and it ends the call).
    keyed.append(entries(wrong)[:4] + [("0" if wrong.pin[0] != "0" else "1") + wrong.pin[1:]])

    async def calls() -> list[bool]:
        outcomes = await asyncio.gather(
            *(run_call(agi, keys, f"m{n}", CALLER, limit_s=30) for n, keys in enumerate(keyed))
        )
        return [o.ended_with_hangup and o.closed_by_server for o in outcomes]

    done = asyncio.run(calls())
    assert done[:5] == [True] * 5

    status, body = _scrape(web, f"Bearer {TOKEN}")
    assert status == 200
    assert _value(body, 'hotline_identifications_total{result="ok"}') == 5
    assert _value(body, 'hotline_identifications_total{result="wrong_pin"}') == 1
    assert _value(body, 'hotline_identifications_total{result="locked"}') == 0
    # Every command of every call, counted in whichever process ran it: at least one per entry.
    assert _value(body, 'hotline_agi_turnaround_seconds_count{command="STREAM"}') >= 6
    assert _value(body, 'hotline_component_up{component="agi"}') == 1
    assert _value(body, "hotline_store_up") == 1
    assert _value(body, "hotline_calls_in_progress") == 0
    assert _value(body, 'hotline_agents{state="available"}') >= 0
    assert "hotline_sms_messages" in body and "hotline_work_orders_overdue" in body
    for person in people:
        assert person.id_number not in body and person.id_number[-6:] not in body
    assert CALLER not in body and CALLER[-4:] + '"' not in body

    assert _scrape(web, None)[0] == 403
    assert _scrape(web, f"Bearer {TOKEN[:-1]}")[0] == 403
    assert _scrape(web, f"Basic {TOKEN}")[0] == 403


def test_metrics_are_off_without_a_token(store: Store, tmp_path: Path) -> None:
    web = free_port()
    env = _env(store.url, HOTLINE_WEB_PORT=str(web), HOTLINE_SECURITY_AUDIT_KEY="test-audit-key-0123456789abcdef-0123")
    proc = _serve(tmp_path, env, "web")
    try:
        status, body = _scrape(web, "Bearer anything")
        assert status == 404 and "web.metrics_token" in body
    finally:
        _end(proc)


assert SAMPLE_RESIDENTS >= 6
