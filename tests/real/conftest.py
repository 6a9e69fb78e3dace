"""The real-system tier: a local Asterisk 22 started once per test session."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from core.settings import Settings, load_settings
from ivr.asterisk import LocalAsterisk


def _test_settings() -> Settings:
    """The developer's settings (hotline.toml, HOTLINE_* variables, e.g. HOTLINE_AGI_PORT),
    with a fresh AMI secret when none is configured."""
    settings = load_settings()
    if settings.ami.secret:
        return settings
    ami = settings.ami.model_copy(update={"secret": "test-" + secrets.token_urlsafe(12)})
    return settings.model_copy(update={"ami": ami})


@pytest.fixture(scope="session")
def asterisk_settings() -> Settings:
    return _test_settings()


@pytest.fixture(scope="session")
def asterisk(asterisk_settings: Settings) -> Iterator[LocalAsterisk]:
    """A running local Asterisk with our dialplans. Started (or reconfigured and reloaded)
    for the session; stopped at the end only if this session started it."""
    local = LocalAsterisk(asterisk_settings)
    was_running = local.status().running
    local.up()
    yield local
    if not was_running:
        local.down()
