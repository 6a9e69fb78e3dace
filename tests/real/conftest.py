"""The real-system tier: a local Asterisk 22 started once per test session."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings, SkillSettings, load_settings
from ivr.asterisk import LocalAsterisk
from ivr.asterisk_config import ETC_DIR
from ivr.asterisk_root import resolve_in_root
from ivr.dialplan import QUEUE_GENERAL, QUEUE_LABOUR, SKILL_QUEUE_PREFIX
from tests.real.serving import Ivr, serving
from tests.real.sip_setup import phone_entries, with_test_sip

TEST_INSTANCE = "tests"


def _test_settings() -> Settings:
    """The developer's settings (hotline.toml, HOTLINE_* variables such as HOTLINE_AGI_PORT).

    Without a configured AMI secret: the secret of an Asterisk already running from an
    earlier `hotline asterisk up` (so the session's reload leaves it usable), else a fresh one.
    """
    settings = with_test_sip(load_settings())
    # One skill queue, English (tests/real/test_skills.py); other tests' agents join it
    # unskilled and no other test's caller chooses English.
    settings = settings.model_copy(update={"skills": SkillSettings(names=("en",), overflow_s=30)})
    # The tests' own Asterisk records (their log directory, their calls' accountcode): the
    # demo's catch-up never imports a test call, nor the tests' a demo call.
    settings = settings.model_copy(
        update={"asterisk": settings.asterisk.model_copy(update={"instance": TEST_INSTANCE})}
    )
    if settings.ami.secret:
        return settings
    running = _running_secret(LocalAsterisk(settings), settings.ami.user)
    secret = running or "test-" + secrets.token_urlsafe(12)
    return settings.model_copy(update={"ami": settings.ami.model_copy(update={"secret": secret})})


def _no_members_left(local: LocalAsterisk, settings: Settings) -> None:
    """Queue members another run left in the shared root's astdb (persistentmembers: the
    demo's agents, with their names and pauses) would answer the tests' calls: none stay."""
    queues = [QUEUE_GENERAL, QUEUE_LABOUR, *(SKILL_QUEUE_PREFIX + n for n in settings.skills.names)]
    for queue in queues:
        for member in re.findall(r"\(((?:PJSIP|Local)/[^)\s]+)\)", local.cli(f"queue show {queue}")):
            local.cli(f"queue remove member {member} from {queue}")


def _running_secret(local: LocalAsterisk, user: str) -> str | None:
    if not local.status().running:
        return None
    text = resolve_in_root(local.root, f"{ETC_DIR}/manager.conf").read_text(encoding="utf-8")
    match = re.search(rf"^\[{re.escape(user)}\]\s*$.*?^secret\s*=\s*(\S+)", text, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else None


@pytest.fixture(scope="session")
def asterisk_settings() -> Settings:
    return _test_settings()


@pytest.fixture(scope="session")
def asterisk(asterisk_settings: Settings) -> Iterator[LocalAsterisk]:
    """A running local Asterisk with our dialplans: started (or reconfigured and reloaded)
    for the session, and stopped at the end only if this session started it."""
    # `asterisk up` mirrors prompts/build into the root, an empty build as none at all: every
    # prompt then fails, the menu times out and hangs up, and tests fail far from the cause.
    build = asterisk_settings.ivr.prompts_dir / "build"
    if not any(build.glob("*/*.wav")):
        pytest.fail(f"no built prompts in {build}: run `hotline prompts build` (make test does)")
    local = LocalAsterisk(asterisk_settings, phones=phone_entries(asterisk_settings))
    was_running = local.status().running
    local.up()
    _no_members_left(local, asterisk_settings)
    yield local
    if not was_running:
        local.down()


@pytest.fixture(scope="module")
def ivr(
    asterisk: LocalAsterisk, asterisk_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ivr]:
    """`hotline serve` (FastAGI, AMI monitor, console) for one test module."""
    tmp: Path = tmp_path_factory.mktemp("ivr")
    with serving(asterisk_settings, tmp) as running:
        yield running
