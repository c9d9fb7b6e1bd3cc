"""The description the bridge writes on every key it mints, and how it is read back.

LangSmith cannot tag a key, and a key's secret is shown only once, so the description is
the bridge's only way to find its own keys again after a crash: it carries the bridge
instance, the policy and the rotation id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(
    r"^langsmith-bridge:(?P<instance>[A-Za-z0-9_.-]+)"
    r" policy=(?P<policy>\S+) rotation=(?P<rotation>\S+)$"
)


@dataclass(frozen=True)
class Marker:
    instance: str
    policy: str
    rotation_id: str

    def description(self) -> str:
        return f"langsmith-bridge:{self.instance} policy={self.policy} rotation={self.rotation_id}"

    @classmethod
    def parse(cls, description: str) -> Marker | None:
        match = _PATTERN.match(description.strip())
        if not match:
            return None
        return cls(match["instance"], match["policy"], match["rotation"])
