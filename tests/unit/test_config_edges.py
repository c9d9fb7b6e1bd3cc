"""Bad input gets one clear line naming the field, exit 2, nothing touched: the edges that
used to validate and then fail later, or fail with a traceback."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from bridge.config import config_schema, parse_config
from bridge.errors import ConfigError
from tests.support.keys import new_key


def config(**langsmith: Any) -> dict[str, Any]:
    return {
        "langsmith": {"endpoint": "http://127.0.0.1:1984", "admin_key_env": "K", **langsmith},
        "policy": [
            {"name": "p", "ack": "grace", "target": [{"provider": "file", "path": "/o/p.env"}]}
        ],
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("endpoint", "ftp://langsmith.example.test", "http:// or https://"),
        ("public_endpoint", "https://user:pw@ls.example.test", "credentials"),
        ("timeout", "0s", "longer than 0s"),
        ("timeout", "99999999999999999999d", "longer than 100 years"),
    ],
)
def test_an_unusable_langsmith_setting_is_refused_naming_the_field(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(**{field: value}))

    assert f"langsmith.{field}" in str(caught.value)
    assert message in str(caught.value)


def test_a_key_pasted_as_a_policy_name_is_refused_and_never_echoed() -> None:
    key = new_key()
    raw = config()
    raw["policy"][0]["name"] = key

    with pytest.raises(ConfigError) as caught:
        parse_config(raw)

    assert "looks like a key" in str(caught.value)
    assert key not in str(caught.value)


def test_a_duration_too_long_for_any_clock_is_a_config_error() -> None:
    raw = config()
    raw["policy"][0]["rotate_every"] = "9" * 30 + "w"

    with pytest.raises(ConfigError, match="100 years"):
        parse_config(raw)


def test_the_schemas_own_defaults_satisfy_its_patterns() -> None:
    schema = json.loads(config_schema())
    defaults: list[tuple[dict[str, Any], Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "default" in node and "pattern" in node:
                defaults.append((node, node["default"]))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    assert defaults  # durations have patterns and defaults
    for node, default in defaults:
        jsonschema.validate(default, {k: v for k, v in node.items() if k != "default"})
    assert "P30D" not in json.dumps(schema)
