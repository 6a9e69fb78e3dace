"""The dialplan's own refusal of numbers abroad: AMI Originates straight into the two ways
out (a callback's hotline-outbound and a notice's hotline-notice-dial), as a path that
skipped every check in Python would, never reach the carrier (SIPp answering on the trunk's
address); the one mainland number among them does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ivr import notice_calls, outbound
from ivr.ami_client import AmiSession
from ivr.asterisk import LocalAsterisk
from tests.real.serving import Ivr
from tests.real.sip_setup import CARRIER_UAS_PORT
from tests.sip_peers.sipp import CarrierUas

pytestmark = pytest.mark.real
# In the forms a trunk is dialled in (national or E.164), and the ones a mistake could pass.
ABROAD = ["+8821612345678", "008821612345678", "+447700900123", "95105555", "04008123123", "+864008123123"]
ALLOWED = "13800138002"
AGENT = "Local/2201-0-2@hotline-agents/n"  # answers at once, talks 2 s
REFUSAL = "by the destination policy"


def _refusals(asterisk: LocalAsterisk) -> int:
    return asterisk.messages_log.read_text(encoding="utf-8", errors="replace").count(REFUSAL)


def test_the_dialplan_refuses_numbers_abroad_whatever_the_platform_asks(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    before = _refusals(asterisk)

    async def originate(numbers: list[str], first_id: int) -> None:
        async with AmiSession(ivr.settings) as ami:
            for i, number in enumerate(numbers):
                callback = outbound.originate_action(AGENT, number, first_id + i)
                call = notice_calls.NoticeCall(first_id + i, 0, number, "通知", "zh", 0)
                notice = notice_calls.originate_action(call, number, 10)
                for action in (callback, notice):
                    reply = (await ami.send(action, as_list=False))[0]
                    assert reply.get("Response") == "Success", reply

    with CarrierUas(tmp_path, CARRIER_UAS_PORT, mode="answer", hold_s=1, asterisk=asterisk, lifetime_s=60) as uas:
        asyncio.run(originate(ABROAD, 990_000))
        deadline = time.monotonic() + 30
        while _refusals(asterisk) - before < 2 * len(ABROAD):
            assert time.monotonic() < deadline, f"{_refusals(asterisk) - before} refusals logged"
            time.sleep(0.2)
        # The control: a mainland mobile through the same two ways reaches the carrier.
        asyncio.run(originate([ALLOWED], 990_100))
        uas.wait_invites(2, 30)
        dialled = sorted(i.request_user for i in uas.invites())
    assert dialled == [ALLOWED, ALLOWED]
    log = asterisk.messages_log.read_text(encoding="utf-8", errors="replace")
    refused_lines = [line for line in log.splitlines() if REFUSAL in line][-2 * len(ABROAD) :]
    assert all("WARNING" in line for line in refused_lines)
    # Asterisk's log names the number by its first and last four digits only.
    assert not any(n[4:-4] in line for n in ABROAD if len(n) > 8 for line in refused_lines)
