"""Configuration: the documented example loads as written; every mistake is a ``ConfigError``
naming the field; the admin key comes only from where the config points; the JSON Schema
describes the same files the loader accepts."""

from __future__ import annotations

import copy
import json
import logging
import tomllib
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from bridge.cli import main
from bridge.config import (
    config_schema,
    format_duration,
    load_config,
    parse_config,
    parse_duration,
    read_admin_key,
)
from bridge.config.langsmith import LangSmithSettings
from bridge.errors import ConfigError
from tests.support.keys import new_key

WORKSPACE = str(uuid.uuid4())

# The example from the issue, verbatim but for a real workspace id.
EXAMPLE = """\
[langsmith]
endpoint = "http://127.0.0.1:1984"
admin_key_env = "LANGSMITH_ADMIN_KEY"      # or admin_key_file = "path"; never the key inline
[state]
backend = "file"
path = "state/bridge-state.json"
[[policy]]
name = "tracing-prod"
workspaces = ["<workspace uuid>"]            # omit for an org-wide key
rotate_every = "30d"
key_ttl = "60d"
consumers = ["api", "worker"]
ack = "explicit"
min_overlap = "0s"
max_wait = "7d"
on_timeout = "hold"
  [[policy.target]]
  provider = "file"
  path = "out/tracing-prod.env"
  format = "dotenv"
""".replace("<workspace uuid>", WORKSPACE)


def example() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE)


def write(folder: Path, text: str) -> Path:
    path = folder / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the example -----------------------------------------------------------------------


def test_the_documented_example_loads_as_written(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))

    policy = config.get_policy("tracing-prod")
    assert config.langsmith.api_endpoint == "http://127.0.0.1:1984"
    assert config.langsmith.admin_key_env == "LANGSMITH_ADMIN_KEY"
    assert policy.workspaces == (WORKSPACE,)
    assert (policy.rotate_every, policy.key_ttl) == (timedelta(days=30), timedelta(days=60))
    assert (policy.min_overlap, policy.max_wait) == (timedelta(0), timedelta(days=7))
    assert policy.consumers == ("api", "worker")
    assert (policy.ack, policy.on_timeout) == (("explicit",), "hold")
    assert [(t.provider, t.format) for t in policy.target] == [("file", "dotenv")]


def test_relative_paths_are_taken_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "bridge"
    folder.mkdir(parents=True)
    text = EXAMPLE.replace(
        'admin_key_env = "LANGSMITH_ADMIN_KEY"', 'admin_key_file = "secrets/admin.key"'
    )
    monkeypatch.chdir(tmp_path)  # the working folder must not matter

    config = load_config(write(folder, text).relative_to(tmp_path))

    base = folder.resolve()
    assert config.state.path == base / "state" / "bridge-state.json"
    assert config.langsmith.admin_key_file == base / "secrets" / "admin.key"
    assert config.policy[0].target[0].path == base / "out" / "tracing-prod.env"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "out.env"
    text = EXAMPLE.replace('"out/tracing-prod.env"', json.dumps(str(elsewhere)))

    config = load_config(write(tmp_path / "", text))

    assert config.policy[0].target[0].path == elsewhere


def test_the_configuration_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, EXAMPLE))

    with pytest.raises(ValueError, match="frozen"):
        config.policy[0].name = "changed"  # type: ignore[misc]


# -- bad configurations ----------------------------------------------------------------

Edit = Callable[[dict[str, Any]], None]


def policy0(**changes: Any) -> Edit:
    return lambda raw: raw["policy"][0].update(changes)


def target0(**changes: Any) -> Edit:
    return lambda raw: raw["policy"][0]["target"][0].update(changes)


def langsmith(**changes: Any) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        raw["langsmith"].update(changes)
        for name, value in changes.items():
            if value is None:
                del raw["langsmith"][name]

    return edit


def second_policy(**changes: Any) -> Edit:
    def edit(raw: dict[str, Any]) -> None:
        raw["policy"].append({**copy.deepcopy(raw["policy"][0]), **changes})

    return edit


# (case, edit of the example, the field the message must name, words it must contain)
BAD: list[tuple[str, Edit, str, str]] = [
    ("inline admin_key", langsmith(admin_key="KEY"), "langsmith", "never put a key inline"),
    ("inline api_key", langsmith(api_key="KEY"), "langsmith", "never put a key inline"),
    ("both key sources", langsmith(admin_key_file="k"), "langsmith", "exactly one"),
    ("neither key source", langsmith(admin_key_env=None), "langsmith", "exactly one"),
    ("bad duration", policy0(rotate_every="30 days"), "policy[0].rotate_every", "duration"),
    ("number as duration", policy0(max_wait=7), "policy[0].max_wait", "duration"),
    ("unknown provider", target0(provider="s3"), "policy[0].target[0]", "'s3'"),
    ("unknown format", target0(format="yaml"), "policy[0].target[0].format", "dotenv"),
    ("unknown policy field", policy0(rotate_evry="1d"), "policy[0].rotate_evry", "Extra"),
    ("unknown target field", target0(mode="0644"), "policy[0].target[0].mode", "Extra"),
    ("unknown section", lambda raw: raw.update(extras={}), "extras", "Extra"),
    ("key_ttl equal to rotate_every", policy0(key_ttl="30d"), "[0] 'tracing-prod'", "key_ttl"),
    ("key_ttl shorter than rotate_every", policy0(key_ttl="1d"), "[0] 'tracing-prod'", "key_ttl"),
    (
        "key_ttl within rotate_every + overlap",
        policy0(min_overlap="30d"),
        "[0] 'tracing-prod'",
        "key_ttl",
    ),
    ("explicit ack without consumers", policy0(consumers=[]), "policy[0]", "consumer"),
    (
        "default_workspace not in workspaces",
        policy0(default_workspace=str(uuid.uuid4())),
        "policy[0]",
        "default_workspace",
    ),
    ("non-UUID workspace", policy0(workspaces=["prod"]), "policy[0].workspaces", "UUID"),
    ("repeated workspace", policy0(workspaces=[WORKSPACE] * 2), "policy[0].workspaces", "repeat"),
    ("empty workspaces", policy0(workspaces=[]), "policy[0].workspaces", "at least 1"),
    ("bad policy name", policy0(name="Tracing Prod"), "policy[0].name", "pattern"),
    ("no targets", policy0(target=[]), "policy[0].target", "at least 1"),
    ("no policies", lambda raw: raw.update(policy=[]), "policy", "at least 1"),
    ("duplicate policy names", second_policy(), "policy", "policy names repeat"),
    ("two policies, one target", second_policy(name="other"), "policy", "same target"),
    (
        "unknown state backend",
        lambda raw: raw["state"].update(backend="s3"),
        "state",
        "'backend' does not match any of the expected tags: 'file', 'dynamodb'",
    ),
    ("non-UUID organization", langsmith(organization_id="acme"), "organization_id", "UUID"),
    ("endpoint and region", langsmith(region="eu"), "langsmith", "not both"),
]


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_a_bad_config_is_a_config_error_naming_the_field(
    edit: Edit, field: str, words: str
) -> None:
    raw = example()
    edit(raw)

    with pytest.raises(ConfigError) as caught:
        parse_config(raw, source="bridge.toml")

    message = str(caught.value)
    assert message.startswith("bridge.toml: 1 problem(s)")  # one mistake, one line
    assert field in message
    assert words in message


def test_every_problem_is_reported_at_once() -> None:
    raw = example()
    policy0(rotate_every="soon", consumers=["bad name!"])(raw)
    target0(format="yaml")(raw)

    with pytest.raises(ConfigError) as caught:
        parse_config(raw)

    for field in ("policy[0].rotate_every", "policy[0].consumers", "policy[0].target[0].format"):
        assert field in str(caught.value)


@pytest.mark.parametrize("field", ["admin_key", "admin_key_env", "admin_key_file"])
def test_a_key_pasted_into_the_config_is_refused_without_being_echoed(field: str) -> None:
    key = new_key()
    raw = example()
    del raw["langsmith"]["admin_key_env"]
    raw["langsmith"][field] = key

    with pytest.raises(ConfigError) as caught:
        parse_config(raw)

    assert "langsmith" in str(caught.value)
    assert key[8:40] not in str(caught.value)


def test_invalid_toml_is_a_config_error_with_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE.replace('rotate_every = "30d"', "rotate_every = 30d"))

    line = EXAMPLE.splitlines().index('rotate_every = "30d"') + 1

    with pytest.raises(ConfigError, match=rf"not valid TOML.*line {line}\b"):
        load_config(path)


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")


# -- the admin key ---------------------------------------------------------------------


def settings(**source: Any) -> LangSmithSettings:
    return LangSmithSettings(endpoint="http://127.0.0.1:1984", **source)


def test_the_admin_key_comes_from_the_named_variable() -> None:
    key = new_key()

    secret = read_admin_key(settings(admin_key_env="ADMIN"), {"ADMIN": f"  {key}\n"})

    assert secret.reveal() == key


def test_the_admin_key_comes_from_the_named_file(tmp_path: Path) -> None:
    key = new_key()
    (tmp_path / "admin.key").write_text(key + "\n", encoding="utf-8")

    secret = read_admin_key(settings(admin_key_file=tmp_path / "admin.key"), {})

    assert secret.reveal() == key


@pytest.mark.parametrize(
    ("source", "environ", "words"),
    [
        ({"admin_key_env": "ADMIN"}, {}, "ADMIN is not set"),
        ({"admin_key_env": "ADMIN"}, {"ADMIN": "  "}, "ADMIN is not set"),
        ({"admin_key_file": "absent.key"}, {}, "cannot read"),
        ({"admin_key_file": "empty.key"}, {}, "is empty"),
    ],
    ids=["unset variable", "blank variable", "missing file", "empty file"],
)
def test_a_missing_admin_key_is_a_config_error_naming_its_source(
    tmp_path: Path, source: dict[str, str], environ: dict[str, str], words: str
) -> None:
    (tmp_path / "empty.key").write_text("\n", encoding="utf-8")
    anchored = {k: (str(tmp_path / v) if k == "admin_key_file" else v) for k, v in source.items()}

    with pytest.raises(ConfigError, match=words) as caught:
        read_admin_key(settings(**anchored), environ)

    assert str(caught.value).startswith(f"langsmith.{next(iter(source))}")


# -- the JSON Schema -------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(config_schema())
    return loaded


def test_the_schema_is_a_valid_json_schema(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_schema_accepts_the_documented_example(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(example())


@pytest.mark.parametrize(
    "edit",
    [policy0(rotate_every="30 days"), target0(provider="s3"), policy0(rotate_evry="1d")],
    ids=["bad duration", "unknown provider", "unknown field"],
)
def test_the_schema_rejects_what_the_loader_rejects(schema: dict[str, Any], edit: Edit) -> None:
    raw = example()
    edit(raw)

    with pytest.raises(ConfigError):
        parse_config(raw)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(raw)


# -- durations -------------------------------------------------------------------------

DURATIONS = [
    ("0s", timedelta(0)),
    ("45s", timedelta(seconds=45)),
    ("90m", timedelta(minutes=90)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("36h", timedelta(hours=36)),
    ("30d", timedelta(days=30)),
    ("2w", timedelta(weeks=2)),
    ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
    (" 7D ", timedelta(days=7)),
]


@pytest.mark.parametrize(("text", "value"), DURATIONS, ids=[text for text, _ in DURATIONS])
def test_durations_parse_and_format_round_trip(text: str, value: timedelta) -> None:
    assert parse_duration(text) == value
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [(timedelta(hours=36), "1d12h"), (timedelta(days=14), "2w"), (timedelta(0), "0s")],
)
def test_format_duration_writes_the_shortest_form(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "1.5h", "1x", "30 d", "1h 30m", "P30D"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [30, 1.5, None, ["30d"]])
def test_non_text_durations_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


# -- the command line ------------------------------------------------------------------


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """``main`` points the ``bridge`` logger at the captured stderr; put it back afterwards."""
    logger = logging.getLogger("bridge")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.mark.usefixtures("cli_logging")
def test_validate_of_a_bad_config_exits_2_with_one_message_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, EXAMPLE.replace('rotate_every = "30d"', 'rotate_every = "monthly"'))

    code = main(["validate", "-c", str(path)])

    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.startswith("configuration error:")
    assert "policy[0].rotate_every" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("cli_logging")
def test_validate_of_the_example_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", "-c", str(write(tmp_path, EXAMPLE))])

    assert code == 0
    assert "configuration ok" in capsys.readouterr().out


@pytest.mark.usefixtures("cli_logging")
def test_config_given_before_the_command_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-c", str(write(tmp_path, EXAMPLE)), "validate"])

    assert code == 0, capsys.readouterr().err


@pytest.mark.usefixtures("cli_logging")
def test_config_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["config-schema"])

    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert printed == json.loads(config_schema())
    assert set(printed["properties"]) >= {"langsmith", "state", "policy"}


def test_environment_variables_are_expanded_in_strings() -> None:
    from bridge.config.load import parse_config

    raw = {
        "langsmith": {"endpoint": "http://${HOST}:1984", "admin_key_env": "K"},
        "state": {"backend": "dynamodb", "table": "${TABLE}"},
        "policy": [
            {
                "name": "p",
                "ack": "grace",
                "workspaces": ["00000000-0000-4000-8000-000000000001"],
                "target": [{"provider": "file", "path": "/o/${NAME}.env"}],
            }
        ],
    }
    config = parse_config(raw, environ={"HOST": "127.0.0.1", "TABLE": "bridge-state", "NAME": "p"})
    assert config.langsmith.endpoint == "http://127.0.0.1:1984"
    assert config.state.table == "bridge-state"  # type: ignore[union-attr]
    assert str(config.policy[0].target[0].path) == "/o/p.env"  # type: ignore[union-attr]


def test_an_unset_variable_is_a_config_error_naming_the_field() -> None:
    from bridge.config.load import parse_config

    raw = {"langsmith": {"endpoint": "${NOPE}", "admin_key_env": "K"}, "policy": []}
    with pytest.raises(
        ConfigError, match=r"langsmith\.endpoint: environment variable NOPE is not set"
    ):
        parse_config(raw, environ={})
