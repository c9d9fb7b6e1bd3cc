"""The bridge's marks, written and read in one place.

Two marks share one grammar, ``policy=<name> rotation=<id>``:

* on every LangSmith key it mints, the description
  ``langsmith-bridge:<instance> policy=<name> rotation=<id>``. LangSmith cannot tag a key,
  and a key's secret is shown only once, so the description is the bridge's only way to find
  its own keys again after a crash;
* in every payload it writes, ``LANGSMITH_BRIDGE_MANAGED="policy=<name> rotation=<id>"``,
  which names the policy that owns the target and the generation it serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAMES = r"policy=(?P<policy>\S+) rotation=(?P<rotation>\S+)"
# At the end of the description: a Vault role may put its own words in front of it.
_KEY = re.compile(r"(?:^|\s)langsmith-bridge:(?P<instance>[A-Za-z0-9_.-]+) " + _NAMES + "$")
_PAYLOAD = re.compile("^" + _NAMES + "$")


@dataclass(frozen=True)
class Marker:
    """The mark on a LangSmith key."""

    instance: str
    policy: str
    rotation_id: str

    def description(self) -> str:
        return f"langsmith-bridge:{self.instance} {payload_mark(self.policy, self.rotation_id)}"

    @classmethod
    def parse(cls, description: str) -> Marker | None:
        match = _KEY.search(description.strip())
        if not match:
            return None
        return cls(match["instance"], match["policy"], match["rotation"])


def payload_mark(policy: str, rotation_id: str) -> str:
    """The value of ``LANGSMITH_BRIDGE_MANAGED`` in a payload."""
    return f"policy={policy} rotation={rotation_id}"


def parse_payload_mark(value: str) -> tuple[str, str] | None:
    """``(policy, rotation id)`` from a payload's mark, or ``None`` if it is not one."""
    match = _PAYLOAD.match(value.strip())
    return (match["policy"], match["rotation"]) if match else None
