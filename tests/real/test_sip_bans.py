"""SIP password guessing against the real Asterisk, and where phones may register from.

A password guesser on 127.0.0.7 (tests/sip_peers/guesser.py; inside the phones' networks,
as a guesser on a county's LAN would be) sends hundreds of REGISTERs for phone 1002 with
wrong passwords; the session's fail2ban
(started by `asterisk up`, sip_setup: 10 failures, banned 30 s) bans the address on the SIP
and WSS ports, after which even the right password from there gets nothing, while baresip
at 127.0.0.1 registers as 1001 and answers a carrier call queued for agent 1001; when the
ban ends the address registers again. A registration from outside sip.phone_networks is
refused; so is a second registration of a registered phone from another address; an
unknown user and a wrong password are answered alike; a SIP MESSAGE to 12333 from the
trunk's address runs no AGI. Registrations are SIPp's (tests/sip_peers/registrar.py).
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import time
from argparse import Namespace
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.models import Call
from core.settings import Settings
from hotline import cli, sip_cli
from ivr.agents import AgentControl
from ivr.asterisk import LocalAsterisk
from ivr.dialplan import QUEUE_GENERAL
from ivr.fail2ban_config import JAIL, NFT_TABLE
from tests.real.baresip_phone import baresip_phone
from tests.real.serving import Ivr
from tests.real.sip_setup import (
    BAN_AFTER,
    BAN_S,
    CARRIER_ADDR,
    ENUMERATOR_ADDR,
    GUESSER_ADDR,
    OUTSIDER_ADDR,
    SECOND_GUESSER_ADDR,
    TEST_PHONES,
)
from tests.sip_peers.guesser import guess
from tests.sip_peers.registrar import register, send_message
from tests.sip_peers.sipp import CarrierCall, UacPlan, free_port, hotline_address, place_calls

pytestmark = pytest.mark.real
GUESSES = 400
GUESS_RATE = 160  # a second: the rate seen from a common guessing tool (401 passwords in 2.5 s)


@pytest.fixture(autouse=True, scope="module")
def _no_bans_left(asterisk: LocalAsterisk, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No registration of the phones used here is left (Asterisk keeps contacts in its
    astdb across restarts, and a phone holds one), before and after; a failed test leaves
    no address of ours banned for the modules after it."""
    work = tmp_path_factory.mktemp("unregister")
    target = hotline_address(asterisk.settings)
    for user in ("1001", "1002"):
        gone = register(target, user, TEST_PHONES[user], work, source="127.0.0.1", expires=0, everywhere=True)
        assert gone.answers == Counter({200: 1}), gone.answers
    yield
    for user in ("1001", "1002"):
        register(target, user, TEST_PHONES[user], work, source="127.0.0.1", expires=0, everywhere=True)
    bans = asterisk.sip_bans()
    if bans.answering():
        for address in (GUESSER_ADDR, SECOND_GUESSER_ADDR, OUTSIDER_ADDR, ENUMERATOR_ADDR):
            bans.unban(address)


class _Log:
    """The lines a log file gains from now on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.start = path.stat().st_size if path.exists() else 0

    def lines(self) -> list[str]:
        with self.path.open("rb") as handle:
            handle.seek(self.start)
            return handle.read().decode("utf-8", errors="replace").splitlines()


def _security_events(log: _Log, event: str, address: str) -> list[str]:
    return [line for line in log.lines() if f'SecurityEvent="{event}"' in line and f"/{address}/" in line]


def _cli(handler: Callable[[Settings, Namespace], int], args: Namespace, settings: Settings) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = handler(settings, args)
    return code, out.getvalue()


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.5)


def _queued_call_answered_by_1001(ivr: Ivr, asterisk: LocalAsterisk, work: Path) -> None:
    """The carrier's caller presses 0 and is queued; agent 1001 (baresip) answers."""
    control = AgentControl(ivr.settings, ivr.store)
    queue_log = _Log(asterisk.queue_log)
    asyncio.run(control.login("1001", "Agent 1001", "PJSIP/1001", (QUEUE_GENERAL,)))
    try:
        plan = UacPlan((CarrierCall("13900001077", "12333"),), dtmf="0", lead_s=1.0, tail_s=18.0)
        result = place_calls(hotline_address(ivr.settings), plan, work)
    finally:
        asyncio.run(control.logout("1001"))
    assert result.successful == 1, result.log
    connected = [line for line in queue_log.lines() if "|Agent 1001|CONNECT|" in line]
    assert connected, queue_log.lines()


def test_password_guessing_is_banned_while_a_phone_elsewhere_works(
    ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path
) -> None:
    bans = asterisk.sip_bans()
    assert bans.state().state == "active", bans.state()
    target = hotline_address(asterisk.settings)
    security = _Log(asterisk.security_log)
    fail2ban_log = _Log(bans.files.log_file)

    passwords = [f"guess-{n:04d}" for n in range(GUESSES)]
    guessed = guess(target, "1002", passwords, source=GUESSER_ADDR, rate_per_s=GUESS_RATE)
    checked = guessed.count(401)  # wrong passwords that Asterisk checked and refused
    logged = _security_events(security, "ChallengeResponseFailed", GUESSER_ADDR)
    print(
        f"\n{GUESSES} guesses from {GUESSER_ADDR} at {GUESS_RATE}/s ({guessed.seconds:.1f} s): {checked} checked "
        f"and refused by Asterisk before the ban (ban after {BAN_AFTER}), {len(logged)} ChallengeResponseFailed "
        f"in its security log; the first unanswered was guess {guessed.first_unanswered()}; answers "
        f"{dict(guessed.counted)}"
    )
    assert guessed.count(200) == 0
    assert checked >= BAN_AFTER and len(logged) >= BAN_AFTER
    # How many got through depends on how fast fail2ban reacts on this machine (printed
    # above); once the ban is in place, no guess is answered.
    _wait("the ban", lambda: GUESSER_ADDR in [b.address for b in bans.bans()], 30)
    more = guess(target, "1002", [f"more-{n:02d}" for n in range(50)], source=GUESSER_ADDR, rate_per_s=GUESS_RATE)
    assert more.counted == Counter({None: 50}), more.counted

    # What the operator sees: `hotline sip bans` and `hotline status`, and fail2ban's log.
    code, shown = _cli(cli.cmd_sip, Namespace(sip_action="bans", format="json"), asterisk.settings)
    assert code == 0 and GUESSER_ADDR in [b["address"] for b in json.loads(shown)["bans"]]
    web = ivr.settings.web.model_copy(update={"port": int(ivr.web.rsplit(":", 1)[1])})
    code, shown = _cli(cli.cmd_status, Namespace(format="text"), ivr.settings.model_copy(update={"web": web}))
    assert f"SIP bans: active, 1 banned: {GUESSER_ADDR} until " in shown, shown
    assert any(f"[{JAIL}] Ban {GUESSER_ADDR}" in line for line in fail2ban_log.lines())

    # The right password from the banned address gets nothing either.
    right = register(target, "1002", TEST_PHONES["1002"], tmp_path / "right-banned", source=GUESSER_ADDR)
    assert right.answers == Counter({None: 1}), right.answers

    # A phone elsewhere (127.0.0.1) registers and answers a queued carrier call meanwhile.
    with baresip_phone(tmp_path / "baresip", "1001", TEST_PHONES["1001"], asterisk.settings.sip.port, run_s=300):
        _queued_call_answered_by_1001(ivr, asterisk, tmp_path / "call")

    # When the ban ends the address is let in again.
    _wait("the ban lifted", lambda: GUESSER_ADDR not in [b.address for b in bans.bans()], BAN_S + 30)
    assert any(f"[{JAIL}] Unban {GUESSER_ADDR}" in line for line in fail2ban_log.lines())
    port = free_port(GUESSER_ADDR)
    again = register(target, "1002", TEST_PHONES["1002"], tmp_path / "right-after", source=GUESSER_ADDR, port=port)
    assert again.answers == Counter({200: 1}), again.answers
    assert f"1002/sip:1002@{GUESSER_ADDR}:{port}" in asterisk.cli("pjsip show contacts")
    gone = register(
        target, "1002", TEST_PHONES["1002"], tmp_path / "unregister", source=GUESSER_ADDR, expires=0, port=port
    )
    assert gone.answers == Counter({200: 1}), gone.answers
    assert "1002/sip:1002@" not in asterisk.cli("pjsip show contacts")


def test_sip_unban_lifts_a_ban_at_once(asterisk: LocalAsterisk, tmp_path: Path) -> None:
    """`ban_after` wrong passwords, one after the other, all answered, ban the address;
    `hotline sip unban` lets it in again at once."""
    bans = asterisk.sip_bans()
    target = hotline_address(asterisk.settings)
    guesser = SECOND_GUESSER_ADDR
    guessed = guess(target, "1002", [f"again-{n:02d}" for n in range(BAN_AFTER)], source=guesser, rate_per_s=5)
    assert guessed.counted == Counter({401: BAN_AFTER}), guessed.counted
    _wait("the ban", lambda: guesser in [b.address for b in bans.bans()], 10)
    code, shown = _cli(cli.cmd_sip, Namespace(sip_action="unban", address=guesser), asterisk.settings)
    assert (code, shown.strip()) == (0, f"{guesser} unbanned")
    assert guesser not in [b.address for b in bans.bans()]
    code, shown = _cli(cli.cmd_sip, Namespace(sip_action="unban", address=guesser), asterisk.settings)
    assert (code, shown.strip()) == (1, f"{guesser} was not banned")
    port = free_port(guesser)
    right = register(target, "1002", TEST_PHONES["1002"], tmp_path / "right", source=guesser, port=port)
    assert right.answers == Counter({200: 1}), right.answers
    gone = register(target, "1002", TEST_PHONES["1002"], tmp_path / "gone", source=guesser, expires=0, port=port)
    assert gone.answers == Counter({200: 1}), gone.answers
    assert guesser not in [b.address for b in sip_cli.ban_state(asterisk.settings).bans]


def test_a_phone_registering_from_outside_its_networks_is_refused(asterisk: LocalAsterisk, tmp_path: Path) -> None:
    security = _Log(asterisk.security_log)
    target = hotline_address(asterisk.settings)
    outside = register(target, "1002", TEST_PHONES["1002"], tmp_path / "outside", source=OUTSIDER_ADDR)
    # Refused before authentication, like an unknown user: the challenge cannot be met.
    assert outside.answers == Counter({401: 1}), outside.answers
    assert _security_events(security, "FailedACL", OUTSIDER_ADDR), security.lines()
    assert f"@{OUTSIDER_ADDR}:" not in asterisk.cli("pjsip show contacts")


def test_a_second_registration_from_elsewhere_does_not_take_the_phone(asterisk: LocalAsterisk, tmp_path: Path) -> None:
    """1001 is registered at 127.0.0.1; the right password from 127.0.0.7 gets 403 and the
    first registration stays (remove_existing = no); Asterisk logs the attempt."""
    messages = _Log(asterisk.messages_log)
    target = hotline_address(asterisk.settings)
    with baresip_phone(tmp_path / "baresip", "1001", TEST_PHONES["1001"], asterisk.settings.sip.port):
        second = register(target, "1001", TEST_PHONES["1001"], tmp_path / "second", source=GUESSER_ADDR)
        assert second.answers == Counter({403: 1}), second.answers
        contacts = [line for line in asterisk.cli("pjsip show contacts").splitlines() if "1001/sip:" in line]
        assert len(contacts) == 1 and "@127.0.0.1:" in contacts[0], contacts
    assert any("exceed max contacts" in line and "1001" in line for line in messages.lines()), messages.lines()


def test_an_unknown_user_and_a_wrong_password_get_the_same_answer(asterisk: LocalAsterisk) -> None:
    """Extension enumeration finds nothing: whether the phone exists or not, the REGISTER
    is challenged and the answer to the credentials is 401."""
    target = hotline_address(asterisk.settings)
    unknown = guess(target, "1099", ["no-such-phone"], source=ENUMERATOR_ADDR)
    known = guess(target, "1002", ["not-its-password"], source=ENUMERATOR_ADDR)
    assert unknown.answers == known.answers == (401,)


def test_a_sip_message_to_12333_from_the_trunk_runs_no_ivr(ivr: Ivr, asterisk: LocalAsterisk, tmp_path: Path) -> None:
    with ivr.store.session() as s:
        before = s.scalar(select(func.count()).select_from(Call))
    answer = send_message(hotline_address(asterisk.settings), "13900001088", "12333", tmp_path, source=CARRIER_ADDR)
    assert answer is not None and answer >= 400, answer
    with ivr.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == before
    assert "res_pjsip_messaging" not in asterisk.cli("module show like messaging")
    print(f"\nSIP MESSAGE to 12333 from the trunk: {answer}")


def test_the_bans_hold_the_sip_and_wss_ports_in_a_table_of_their_own(asterisk: LocalAsterisk) -> None:
    shown = subprocess.run(["nft", "list", "table", "inet", NFT_TABLE], capture_output=True, text=True, check=True)
    sip = asterisk.settings.sip
    assert f"dport {{ {sip.port}, {sip.https_port} }}" in shown.stdout, shown.stdout
