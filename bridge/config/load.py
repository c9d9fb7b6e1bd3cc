"""Reading the configuration file and the admin key: the only places that touch the
filesystem or the environment on the configuration's behalf."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bridge.config.consumer import ConsumerConfig
from bridge.config.durations import format_duration
from bridge.config.file import FileTarget
from bridge.config.langsmith import LangSmithSettings
from bridge.config.model import BridgeConfig
from bridge.errors import ConfigError
from bridge.secrets import Secret

DEFAULT_PATH = Path("bridge.toml")
ENV_VAR = "LANGSMITH_BRIDGE_CONFIG"

M = TypeVar("M", bound=BaseModel)


def config_path(explicit: str | Path | None, environ: Mapping[str, str]) -> Path:
    """``-c PATH`` if given, else ``$LANGSMITH_BRIDGE_CONFIG``, else ``./bridge.toml``."""
    if explicit:
        return Path(explicit)
    return Path(environ.get(ENV_VAR) or DEFAULT_PATH)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> BridgeConfig:
    """Parse and validate ``path``; relative paths inside it are taken from its folder;
    ``${NAME}`` and Vault's variables come from ``environ`` (default: the process's).

    Raises:
        ConfigError: the file is missing, not TOML, or fails validation. The message names
            every bad field by its dotted path (``policy[0].rotate_every``).
    """
    config = _anchor(
        parse_config(_read_toml(path), source=str(path), environ=environ), path.resolve().parent
    )
    _check_one_writer(config, source=str(path))
    return config


def load_any_config(
    path: Path, environ: Mapping[str, str] | None = None
) -> BridgeConfig | ConsumerConfig:
    """The bridge's config, or a consumer's (a ``[consumer]`` table and no policies):
    what ``ack`` and ``bridge.consumer`` accept.

    Raises:
        ConfigError: as ``load_config``.
    """
    raw = _read_toml(path)
    if "consumer" not in raw or "policy" in raw:
        return load_config(path, environ)
    environ = os.environ if environ is None else environ
    try:
        consumer = ConsumerConfig.model_validate(vault_defaults(expand_env(raw, environ), environ))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from None
    return _anchor(consumer, path.resolve().parent)


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # here, not at import: only reading a file needs the TOML parser

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _check_one_writer(config: BridgeConfig, source: str) -> None:
    """Refuse two targets that are one file under different spellings (``a.json``,
    ``./x/../a.json``, a symlinked folder): two writers of one file overwrite each other."""
    seen: dict[str, str] = {}
    for policy in config.policy:
        for index, target in enumerate(policy.target):
            if not isinstance(target, FileTarget):
                continue
            where = f"policy {policy.name!r} target[{index}]"
            other = seen.setdefault(os.path.realpath(target.path), where)
            if other != where:
                raise ConfigError(
                    f"{source}: {other} and {where} are the same file {target.path}; "
                    "each file has one writer"
                )


def parse_config(
    raw: Mapping[str, Any],
    *,
    source: str = "config",
    environ: Mapping[str, str] | None = None,
) -> BridgeConfig:
    """Validate an already-parsed mapping (TOML or JSON) into a ``BridgeConfig``.

    ``${NAME}`` in any string is replaced by that environment variable first, so a
    deployment can inject what it only knows at deploy time (a table name, a queue URL).
    Vault's standard variables fill what ``[vault]`` leaves out (``vault_defaults``).
    """
    environ = os.environ if environ is None else environ
    try:
        return BridgeConfig.model_validate(vault_defaults(expand_env(raw, environ), environ))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


# [vault] field -> the variables that default it, first set wins (Vault's, then OpenBao's).
_VAULT_VARIABLES = {
    "address": ("VAULT_ADDR", "BAO_ADDR"),
    "namespace": ("VAULT_NAMESPACE", "BAO_NAMESPACE"),
    "ca_cert": ("VAULT_CACERT", "BAO_CACERT"),
    "client_cert": ("VAULT_CLIENT_CERT", "BAO_CLIENT_CERT"),
    "client_key": ("VAULT_CLIENT_KEY", "BAO_CLIENT_KEY"),
}


def vault_defaults(raw: Mapping[str, Any], environ: Mapping[str, str]) -> Mapping[str, Any]:
    """``raw`` with ``[vault]`` fields it lacks taken from the environment, as the ``vault``
    and ``bao`` CLIs take them."""
    section = raw.get("vault", {})
    if not isinstance(section, Mapping):
        return raw  # the model names the problem
    filled = dict(section)
    for name, variables in _VAULT_VARIABLES.items():
        found = next((environ[v] for v in variables if environ.get(v)), None)
        if name not in filled and found:
            filled[name] = found
    return {**raw, "vault": filled} if filled != section else raw


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: Any, environ: Mapping[str, str], where: str = "") -> Any:
    """``value`` with every ``${NAME}`` in its strings replaced from ``environ``.

    Raises:
        ConfigError: a referenced variable is not set (the message names the field).
    """
    if isinstance(value, str):

        def variable(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in environ:
                raise ConfigError(f"{where or 'config'}: environment variable {name} is not set")
            return environ[name]

        return _VARIABLE.sub(variable, value)
    if isinstance(value, Mapping):
        return {
            k: expand_env(v, environ, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [expand_env(v, environ, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _describe(exc: ValidationError, source: str) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    # A tuple whose items failed also reports itself "too short"; that echo only confuses.
    # (The failed item may itself be a "too short" tuple: ``target = []`` in a policy.)
    failed = [error["loc"] for error in errors]
    errors = [
        error
        for error in errors
        if error["type"] != "too_short"
        or not any(
            len(loc) > len(error["loc"]) and loc[: len(error["loc"])] == error["loc"]
            for loc in failed
        )
    ]
    lines = [f"{source}: {len(errors)} problem(s)"]
    for error in errors:
        where = _dotted(error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("file", "function-after", "function-before") or part.startswith("function"):
            continue  # discriminator and validator tags add nothing for a reader
        else:
            out += f".{part}" if out else part
    return out


def _anchor(model: M, base: Path) -> M:
    """Make every relative ``Path`` in ``model`` (recursively) relative to ``base``."""
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        anchored = _anchor_value(value, base)
        if anchored is not value:
            updates[name] = anchored
    return model.model_copy(update=updates) if updates else model


def _anchor_value(value: Any, base: Path) -> Any:
    if isinstance(value, Path):
        # normpath: one spelling per file, so the state and messages name it one way.
        return Path(os.path.normpath(value if value.is_absolute() else base / value))
    if isinstance(value, BaseModel):
        return _anchor(value, base)
    if isinstance(value, tuple):
        items = tuple(_anchor_value(item, base) for item in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def read_admin_key(
    settings: LangSmithSettings,
    environ: Mapping[str, str] | None = None,
    *,
    read_secret: Callable[[str], str] | None = None,
) -> Secret:
    """The admin key, from the variable, file or secret-store secret the config names.

    Args:
        settings: The ``[langsmith]`` section.
        environ: The environment (default ``os.environ``).
        read_secret: Reads ``admin_key_secret`` (the wiring passes the AWS one, so that
            boto3 loads only where an AWS secret is used).

    Raises:
        ConfigError: the variable is unset or empty, the file or secret is missing or empty.
    """
    environ = os.environ if environ is None else environ
    if settings.admin_key_secret:
        if read_secret is None:
            raise ConfigError("langsmith.admin_key_secret: no secret reader is wired in")
        return Secret(read_secret(settings.admin_key_secret))
    if settings.admin_key_env:
        value = environ.get(settings.admin_key_env, "").strip()
        if not value:
            raise ConfigError(
                f"langsmith.admin_key_env: environment variable {settings.admin_key_env} is not set"
            )
        return Secret(value)
    assert settings.admin_key_file is not None
    try:
        value = settings.admin_key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"langsmith.admin_key_file: cannot read {settings.admin_key_file}: {exc.strerror}"
        ) from None
    if not value:
        raise ConfigError(f"langsmith.admin_key_file: {settings.admin_key_file} is empty")
    return Secret(value)


def config_schema() -> str:
    """The JSON Schema of the configuration file, for editors and CI checks."""
    from pydantic.json_schema import GenerateJsonSchema

    class Schema(GenerateJsonSchema):
        def encode_default(self, dft: Any) -> Any:
            # Defaults in the file's own notation ("30d"), which the patterns accept,
            # not pydantic's ISO 8601 ("P30D"), which they would reject.
            if isinstance(dft, timedelta):
                return format_duration(dft)
            return super().encode_default(dft)

    schema = BridgeConfig.model_json_schema(by_alias=True, schema_generator=Schema)
    schema["title"] = "langsmith-bridge configuration"
    return json.dumps(schema, indent=2, sort_keys=True)
