"""The destination policy: which numbers the platform may call or text."""

from __future__ import annotations

import doctest

import pytest

import core.destinations
from core.destinations import DestinationPolicy, DestinationRefused, DestinationSettings
from core.errors import SettingsError
from core.phones import BadPhoneNumber
from core.settings import load_settings

DEFAULT = DestinationPolicy(DestinationSettings())
ABROAD = ("+8821612345678", "008821612345678", "+447700900123", "00447700900123", "+1 268 555 0100")


def test_the_module_examples_hold() -> None:
    assert doctest.testmod(core.destinations).failed == 0


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("13812345678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("008613812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("010-87654321", "01087654321"),  # Beijing: area code 10, 8-digit local numbers
        ("+86 21 6123 4567", "02161234567"),
        ("0572-2234567", "05722234567"),  # 3-digit area code, 7-digit local number
        ("0951-5012345", "09515012345"),  # Yinchuan: an area code beginning 95 is not a 95xxx number
    ],
)
def test_mainland_mobiles_and_fixed_lines_pass_in_any_form(raw: str, stored: str) -> None:
    assert DEFAULT.check(raw) == stored


@pytest.mark.parametrize("raw", ABROAD)
def test_numbers_abroad_are_refused_by_default_naming_the_rule(raw: str) -> None:
    with pytest.raises(DestinationRefused) as refused:
        DEFAULT.check(raw)
    assert refused.value.rule == "destinations.allow"
    assert "international number" in str(refused.value) and "destinations.allow" in str(refused.value)
    assert "1612345" not in str(refused.value) and "7700900" not in str(refused.value)  # masked


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("4008123123", "destinations.block"),  # shared cost: reads like "area code 400"
        ("800-810-8888", "destinations.block"),
        ("95588", "shape"),  # national service numbers: too short for either shape
        ("95105555", "shape"),
        ("96345", "shape"),
        ("12345", "shape"),
        ("1069012345678", "shape"),  # an SP code, not a mobile
        ("179510086412345", "shape"),  # an IP-call prefix before a number abroad
        ("1234567890", "shape"),
        ("8821612345678", "shape"),  # no + or 00: read as a national number, and no mainland one
        ("0571-0123456", "shape"),  # a local number cannot begin with 0 or 1
        ("", "shape"),
        ("anonymous", "shape"),
    ],
)
def test_service_premium_and_malformed_numbers_are_refused(raw: str, rule: str) -> None:
    refused = DEFAULT.refusal(raw)
    assert refused is not None and refused.rule == rule
    assert isinstance(refused, BadPhoneNumber)  # every place that refuses a bad number refuses these too


def test_a_site_allows_more_explicitly_and_block_wins() -> None:
    policy = DestinationPolicy(DestinationSettings(allow=("+852", "+44"), block=("+86400", "+447")))
    assert policy.check("+852 9123 4567") == "+85291234567"
    assert policy.check("+44 20 7946 0000") == "+442079460000"
    assert policy.refusal("+447700900123") is not None  # UK mobiles blocked although +44 is allowed
    only_mobiles = DestinationPolicy(DestinationSettings(kinds=("mobile",)))
    refused = only_mobiles.refusal("0571-87654321")
    assert refused is not None and refused.rule == "destinations.kinds"
    assert "fixed" in str(refused)


def test_settings_refuse_prefixes_that_are_not_e164() -> None:
    with pytest.raises(SettingsError, match=r"destinations.allow.*E.164 prefix"):
        load_settings(environ={"HOTLINE_DESTINATIONS_ALLOW": "852"})
    loaded = load_settings(environ={"HOTLINE_DESTINATIONS_ALLOW": "+852,+853"})
    assert loaded.destinations.allow == ("+852", "+853")
