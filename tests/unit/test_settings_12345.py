"""[hotline12345]: counterparts' keys are secrets of 32 characters or more outside the demo,
the section is set from the environment like every other (a table as a JSON object), and
enabled without a counterpart is refused at start-up."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from cases import contract12345
from cases.contract12345 import parse_order
from core.errors import SettingsError
from core.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
STRONG = "k" * 32


def test_counterparts_come_from_the_environment_as_a_json_object() -> None:
    env = {"HOTLINE_HOTLINE12345_ENABLED": "true", "HOTLINE_HOTLINE12345_COUNTERPARTS": json.dumps({"city": STRONG})}
    settings = load_settings(None, env).hotline12345
    assert (settings.enabled, settings.counterparts, settings.max_skew_s, settings.max_body_bytes) == (
        True, {"city": STRONG}, 300, 64 * 1024,
    )  # fmt: skip
    assert STRONG not in repr(settings)


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"HOTLINE_HOTLINE12345_COUNTERPARTS": '{"city": "short"}'}, "under 32 characters"),
        ({"HOTLINE_HOTLINE12345_COUNTERPARTS": "city=" + STRONG}, "a JSON object"),
        ({"HOTLINE_HOTLINE12345_COUNTERPARTS": json.dumps({"a city": STRONG})}, "a name of 1 to 40"),
        ({"HOTLINE_HOTLINE12345_ENABLED": "true"}, "needs hotline12345.counterparts"),
    ],
)
def test_weak_or_missing_counterparts_are_refused(env: dict[str, str], said: str) -> None:
    with pytest.raises(SettingsError, match=said) as caught:
        load_settings(None, env)
    assert STRONG not in str(caught.value)


def test_the_demo_takes_its_published_key() -> None:
    settings = load_settings(ROOT / "hotline.demo.toml", {})
    assert settings.hotline12345.enabled and len(settings.hotline12345.counterparts) == 1


def test_a_resend_spelt_otherwise_has_the_same_digest() -> None:
    order = {
        "order_no": "A1",
        "title": "t",
        "content": "c",
        "category": "投诉",
        "deadline": "2026-12-11T17:30:00+08:00",
    }
    one = parse_order(json.dumps(order).encode(), ("就业",), "86")
    other = json.dumps(dict(reversed(order.items())) | {"deadline": "2026-12-11T09:30:00Z", "x": 1}, indent=2)
    two = parse_order(other.encode(), ("就业",), "86")
    assert one.digest() == two.digest() and one.case_category == "complaint"
    assert parse_order(json.dumps(order | {"title": "u"}).encode(), (), "86").digest() != one.digest()


def test_the_contracts_signing_example_holds() -> None:
    assert doctest.testmod(contract12345).failed == 0
