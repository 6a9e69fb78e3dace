"""core/preferences.py's parsing and quiet hours, by their examples and the edges around them."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest

import core.preferences
from core.preferences import PreferenceRefused, parse, quiet_end

ZONE = "Asia/Shanghai"


def test_the_module_examples() -> None:
    assert doctest.testmod(core.preferences).failed == 0


@pytest.mark.parametrize(
    ("beijing", "window", "wakes"),
    [
        ("22:00", ("21:00", "08:00"), "08:00 next day"),  # inside a window across midnight
        ("07:59", ("21:00", "08:00"), "08:00"),
        ("08:00", ("21:00", "08:00"), None),  # its end is outside it
        ("12:30", ("12:00", "14:00"), "14:00"),
        ("14:30", ("12:00", "14:00"), None),
    ],
)
def test_quiet_end(beijing: str, window: tuple[str, str], wakes: str | None) -> None:
    hour, minute = map(int, beijing.split(":"))
    now = dt.datetime(2026, 12, 3, hour, minute, tzinfo=dt.timezone(dt.timedelta(hours=8))).astimezone(dt.UTC)
    pref = parse("voice", quiet_start=window[0], quiet_end=window[1])
    assert pref.quiet is not None
    got = quiet_end(pref.quiet, ZONE, now)
    if wakes is None:
        assert got == now
    else:
        local = got.astimezone(dt.timezone(dt.timedelta(hours=8)))
        clock, _, later = wakes.partition(" ")
        assert f"{local:%H:%M}" == clock and local.day == (4 if later else 3)


def test_an_unknown_channel_names_the_channels() -> None:
    with pytest.raises(PreferenceRefused, match="the channels are sms, voice, wechat"):
        parse("voice,fax")
