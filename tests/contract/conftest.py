"""The provider contract's one fixture: every scenario runs against every entry of ``FACTORIES``.

Adding a provider is one entry: a factory that receives the pytest request (to reach the
fixtures its store needs: a temporary folder, moto, an OpenBao server, the gRPC fake) and the
policy the provider acts for, and yields ``(provider, tamper)``. ``tamper`` is the store seen
from outside the bridge: what an operator, another tool or another policy could do to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from bridge.config.targets import FileTarget
from bridge.payload import Format, Payload, encode
from bridge.provider import Provider
from providers import open_provider

POLICY = "contract-policy"


class Tamper(Protocol):
    """Out-of-band access to the one target a contract provider writes."""

    def write_foreign(self, env: Mapping[str, str]) -> None:
        """Make ``env`` the target's content, without any bridge ownership marker."""
        ...

    def write_owned_by(self, payload: Payload) -> None:
        """Write ``payload`` as the bridge acting for ``payload.policy`` would have."""
        ...

    def delete(self) -> None:
        """Remove the target and everything it holds."""
        ...

    def snapshot(self) -> Hashable:
        """An opaque value that changes whenever anything writes the target; ``None`` if absent."""
        ...


@dataclass(frozen=True)
class Target:
    """What each contract scenario gets: a provider for ``policy`` and its store's tamper."""

    provider: Provider
    tamper: Tamper
    policy: str


ProviderFactory = Callable[
    [pytest.FixtureRequest, str], contextlib.AbstractContextManager[tuple[Provider, Tamper]]
]


# -- file ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileTamper:
    path: Path
    format: Format

    def write_foreign(self, env: Mapping[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(encode(env, self.format), encoding="utf-8")

    def write_owned_by(self, payload: Payload) -> None:
        self.write_foreign(payload.reveal_env())

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def snapshot(self) -> Hashable:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        return (self.path.read_bytes(), status.st_ino, status.st_mtime_ns, status.st_mode)


@contextlib.contextmanager
def file_target(
    request: pytest.FixtureRequest, policy: str, *, fmt: Format
) -> Iterator[tuple[Provider, Tamper]]:
    folder: Path = request.getfixturevalue("tmp_path")
    config = FileTarget.model_validate(
        {"provider": "file", "path": folder / "out" / f"{policy}.{fmt}", "format": fmt}
    )
    provider = open_provider(config, policy)
    try:
        yield provider, FileTamper(config.path, fmt)
    finally:
        provider.close()


# -- the table -------------------------------------------------------------------------


FACTORIES: dict[str, ProviderFactory] = {
    "file-dotenv": lambda request, policy: file_target(request, policy, fmt="dotenv"),
    "file-json": lambda request, policy: file_target(request, policy, fmt="json"),
}


@pytest.fixture(params=sorted(FACTORIES))
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A fresh, absent target in each registered store, with a provider acting for ``POLICY``."""
    with FACTORIES[request.param](request, POLICY) as (provider, tamper):
        yield Target(provider=provider, tamper=tamper, policy=POLICY)
