"""What a target holds: the settings a consumer needs, and how they are written down.

A payload is an environment map. ``LANGSMITH_API_KEY`` is the secret; ``LANGSMITH_ENDPOINT``
and, where needed, ``LANGSMITH_WORKSPACE_ID`` are the settings the official SDKs read. The
bridge adds ``LANGSMITH_BRIDGE_MANAGED``, its ownership marker: a plain string that is safe
to export into an environment and tells the bridge (and a human) which policy and rotation
wrote the payload.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bridge.marker import parse_payload_mark, payload_mark
from bridge.secrets import Secret

API_KEY = "LANGSMITH_API_KEY"
ENDPOINT = "LANGSMITH_ENDPOINT"
WORKSPACE_ID = "LANGSMITH_WORKSPACE_ID"
MARKER = "LANGSMITH_BRIDGE_MANAGED"

Format = Literal["dotenv", "json"]

MAX_PAYLOAD_BYTES = 64 * 1024
"""The most a target may hold. A payload is a few hundred bytes; AWS caps a SecretString at
64 KiB too. Anything larger is refused before it is read, let alone parsed."""

_OWN_NAMES = frozenset({API_KEY, ENDPOINT, WORKSPACE_ID, MARKER})

_ESCAPES = {"n": "\n", "r": "\r"}
_DOTENV_LINE = re.compile(r"^(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$")


class PayloadFormatError(ValueError):
    """Text that is not a payload. Its message says why without quoting the text (it may
    hold a key); providers turn it into a ``ProviderError`` naming the target."""


def settings_digest(settings: Mapping[str, str]) -> str:
    """A short name for everything a payload holds besides its key and marker: two targets
    with the same key but another endpoint, or an extra variable, have different ones."""
    text = json.dumps(dict(settings), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Payload:
    """A generation's payload, on its way into a target."""

    policy: str
    rotation_id: str
    api_key: Secret
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return self.api_key.fingerprint

    @property
    def settings_digest(self) -> str:
        return settings_digest(self.settings)

    def reveal_env(self) -> dict[str, str]:
        """The full map to write, marker included. Only providers call this."""
        return {
            API_KEY: self.api_key.reveal(),
            **self.settings,
            MARKER: payload_mark(self.policy, self.rotation_id),
        }


@dataclass(frozen=True)
class Stored:
    """A payload as read back from a target."""

    api_key: Secret | None
    settings: Mapping[str, str]
    policy: str | None
    rotation_id: str | None
    version: str | None = None

    @property
    def fingerprint(self) -> str | None:
        return self.api_key.fingerprint if self.api_key else None

    def __repr__(self) -> str:
        # A foreign target may hold other secrets under any name (LANGCHAIN_API_KEY, ...):
        # show the setting names, never their values.
        return (
            f"Stored(api_key={self.api_key!r}, settings=<{', '.join(sorted(self.settings))}>, "
            f"policy={self.policy!r}, rotation_id={self.rotation_id!r}, version={self.version!r})"
        )

    __str__ = __repr__

    def owned_by(self, policy: str) -> bool:
        return self.policy == policy

    @property
    def settings_digest(self) -> str:
        return settings_digest(self.settings)

    @classmethod
    def from_env(cls, env: Mapping[str, str], version: str | None = None) -> Stored:
        """Split a read-back environment map into secret, settings and marker."""
        key = env.get(API_KEY, "").strip()
        marker = parse_payload_mark(env.get(MARKER, ""))
        settings = {k: v for k, v in env.items() if k not in (API_KEY, MARKER)}
        return cls(
            api_key=Secret(key) if key else None,
            settings=settings,
            policy=marker[0] if marker else None,
            rotation_id=marker[1] if marker else None,
            version=version,
        )

    def same_content(self, payload: Payload) -> bool:
        """True when writing ``payload`` would change nothing a consumer reads."""
        return (
            self.api_key == payload.api_key
            and dict(self.settings) == dict(payload.settings)
            and self.owned_by(payload.policy)
        )


def encode(env: Mapping[str, str], fmt: Format) -> str:
    """Render an environment map as a dotenv file or a JSON object."""
    if fmt == "json":
        return json.dumps(dict(env), indent=2, sort_keys=True) + "\n"
    lines = ["# Written by langsmith-bridge; edits are replaced at the next rotation."]
    lines += [f"{name}={_quote(value)}" for name, value in env.items()]
    return "\n".join(lines) + "\n"


def decode(text: str, fmt: Format) -> dict[str, str]:
    """Parse what ``encode`` wrote (and reasonable hand-written dotenv/JSON).

    Total: whatever a target holds (a hand edit, binary junk, a megabyte, a value nested
    100000 deep) ends here as a map or as a ``PayloadFormatError``, never as another
    exception that would end the whole run instead of blocking one policy.

    Raises:
        PayloadFormatError: the text is not a payload of the format; the message never
            quotes the content, which may hold a key.
    """
    if not isinstance(text, str):  # a caller's bug, or an SDK answer of another type
        raise PayloadFormatError(f"not text but {type(text).__name__}")
    too_large = oversize(len(text.encode("utf-8", "surrogatepass")))
    if too_large:
        raise PayloadFormatError(too_large)
    env = _decode_json(text) if fmt == "json" else _decode_dotenv(text)
    _check_environment(env)
    return env


def oversize(size: int) -> str | None:
    """Why ``size`` bytes cannot be a payload, or ``None`` when they can."""
    if size <= MAX_PAYLOAD_BYTES:
        return None
    return f"too large to be a payload: {size} bytes (at most {MAX_PAYLOAD_BYTES})"


def _decode_json(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadFormatError(f"not valid JSON (line {exc.lineno})") from None
    except RecursionError:
        # Not a ValueError: "[" * 100000 exhausts the parser's stack before it fails.
        raise PayloadFormatError("JSON nested too deeply to be a payload") from None
    except ValueError:  # valid JSON, but an integer over Python's 4300-digit limit
        raise PayloadFormatError("holds a number with too many digits to read") from None
    if not isinstance(data, dict):
        raise PayloadFormatError(f"a JSON {_json_type(data)}, not an object of string values")
    for name, value in data.items():
        if not isinstance(value, str):
            # Only the bridge's own names are shown: any other name is content, and a
            # hand edit may have used a key as a name.
            which = name if name in _OWN_NAMES else "a value"
            raise PayloadFormatError(f"{which} is a JSON {_json_type(value)}, not a string")
    return data


def _decode_dotenv(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    # Only "\n" ends a line: ``splitlines`` would also split inside a quoted value at
    # "\x0b", "\x85", "\u2028" and friends, which ``_quote`` leaves as they are.
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOTENV_LINE.match(stripped)
        if not match:
            raise PayloadFormatError(f"line {number} is not NAME=value")
        env[match["name"]] = _unquote(match["value"].strip())
    return env


def _check_environment(env: Mapping[str, str]) -> None:
    """Refuse what no environment can hold, before a fingerprint or ``os.environ`` trips on
    it: a NUL, or a lone surrogate (JSON's ``"\\ud800"``), which cannot be encoded."""
    for text in (*env, *env.values()):
        if "\0" in text:
            raise PayloadFormatError("holds a NUL character, which no environment can")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadFormatError("holds text that is not valid Unicode") from None


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string" if isinstance(value, str) else "null"


def _quote(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]*", value):
        return value
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), inner, flags=re.DOTALL)
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    return value
