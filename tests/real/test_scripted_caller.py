"""The scripted caller against the real dialplan: digits reach FastAGI, and with no
FastAGI server the caller still reaches the queue (and Asterisk's own records)."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import pytest

from core.settings import Settings
from ivr.asterisk import LocalAsterisk
from ivr.asterisk_config import agi_address, sounds_dir
from ivr.caller import ScriptedCaller
from ivr.dialplan import (
    AGI_SCRIPT_IVR,
    CTX_AGI,
    EXTEN_HOTLINE,
    EXTEN_START,
    PROMPT_SYSTEM_APOLOGY,
    QUEUE_GENERAL,
    SOUNDS_SUBDIR,
)

pytestmark = pytest.mark.real

AgiResult = tuple[dict[str, str], str]


async def _serve_one_get_data(settings: Settings) -> tuple[asyncio.Server, asyncio.Future[AgiResult]]:
    """A minimal FastAGI peer: reads the session headers, ANSWERs, GET DATA of 4 digits."""
    result: asyncio.Future[AgiResult] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        headers = {}
        while line := (await reader.readline()).decode().strip():
            key, _, value = line.partition(": ")
            headers[key] = value
        replies = []
        for command in ("ANSWER", "GET DATA silence/1 5000 4", "SET VARIABLE HOTLINE_ACTION hangup"):
            writer.write(f"{command}\n".encode())
            replies.append((await reader.readline()).decode().strip())
        writer.close()
        await writer.wait_closed()
        result.set_result((headers, replies[1]))

    host, _, port = agi_address(settings).rpartition(":")
    return await asyncio.start_server(handle, host, int(port)), result


async def test_dtmf_with_pause_reaches_get_data(asterisk: LocalAsterisk, asterisk_settings: Settings) -> None:
    server, session = await _serve_one_get_data(asterisk_settings)
    async with server, ScriptedCaller(asterisk_settings) as ami:
        uniqueid = await ami.originate_caller("W1234", lead_s=0.5, tail_s=3)
        headers, reply = await asyncio.wait_for(session, 15)
        hangup = await ami.wait_hangup(uniqueid, 15)
    assert reply == "200 result=1234"
    assert headers["agi_uniqueid"] == uniqueid == hangup.uniqueid
    assert headers["agi_request"] == f"agi://{agi_address(asterisk_settings)}/{AGI_SCRIPT_IVR}"
    # The script runs from the subroutine that tries the FastAGI servers in turn.
    assert (headers["agi_context"], headers["agi_extension"]) == (CTX_AGI, EXTEN_START)
    assert headers["agi_callerid"] == "13800000000"


async def test_no_fastagi_means_queue(asterisk: LocalAsterisk, asterisk_settings: Settings) -> None:
    host, _, port = agi_address(asterisk_settings).rpartition(":")
    with pytest.raises(OSError):  # nothing may answer FastAGI for this test
        await asyncio.open_connection(host, int(port))
    # The caller stays through the apology (when built) until the queue has it, then hangs
    # up waiting there (waited for, not timed: under load the apology ends later).
    stay_s = await asyncio.to_thread(_apology_seconds, asterisk) + 60
    async with ScriptedCaller(asterisk_settings) as ami:
        uniqueid = await ami.originate_caller("", lead_s=0, tail_s=stay_s)
        enter = f"|{uniqueid}|{QUEUE_GENERAL}|NONE|ENTERQUEUE|"
        entered = any(enter in line for line in await _lines_soon(asterisk.queue_log, enter, timeout_s=stay_s))
        status = await ami.send({"Action": "Status"})
        channels = [m["Channel"] for m in status if m.get("Event") == "Status" and m.get("Uniqueid") == uniqueid]
        for channel in channels:
            await ami.send({"Action": "Hangup", "Channel": channel})
        await ami.wait_hangup(uniqueid, 20)
    assert entered
    rows = [row for row in await _lines_soon(asterisk.cdr_csv, uniqueid) if f'"{uniqueid}"' in row]
    assert len(rows) == 1 and f'"{EXTEN_HOTLINE}"' in rows[0].split(",")[2]
    # Marked as the tests' call (its accountcode), in the tests' own log directory.
    assert rows[0].split(",")[0] == f'"{asterisk_settings.asterisk.instance}"' == '"tests"'
    assert asterisk.cdr_csv.parent.parent.name == "tests"


async def _lines_soon(path: Path, needle: str, timeout_s: float = 3.0) -> list[str]:
    """The file's lines once `needle` shows up (Asterisk writes CDRs just after the hangup)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = await asyncio.to_thread(_read, path)
        if needle in text or time.monotonic() > deadline:
            return text.splitlines()
        await asyncio.sleep(0.1)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _apology_seconds(asterisk: LocalAsterisk) -> float:
    wav = sounds_dir(asterisk.root) / SOUNDS_SUBDIR / "zh" / f"{PROMPT_SYSTEM_APOLOGY}.wav"
    if not wav.exists():
        return 0.0
    with wave.open(str(wav), "rb") as audio:
        return audio.getnframes() / audio.getframerate()
