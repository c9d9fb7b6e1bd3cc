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

_ESCAPES = {"n": "\n", "r": "\r"}
_DOTENV_LINE = re.compile(r"^(?:export\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$")


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

    Raises:
        ValueError: the text is not of the format; the message never quotes the content.
    """
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON (line {exc.lineno})") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError("not a JSON object of string values")
        return data
    env: dict[str, str] = {}
    # Only "\n" ends a line: ``splitlines`` would also split inside a quoted value at
    # "\x0b", "\x85", "\u2028" and friends, which ``_quote`` leaves as they are.
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOTENV_LINE.match(stripped)
        if not match:
            raise ValueError(f"line {number} is not NAME=value")
        env[match["name"]] = _unquote(match["value"].strip())
    return env


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
