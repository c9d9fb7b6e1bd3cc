"""Static roles: one long-lived LangSmith key per role, rotated by the bridge's own engine.

A static role is a bridge ``Policy`` whose one target is the mount's storage
(``static_target.StorageTarget``) and whose state is the mount's storage too
(``static_state.StorageState``), so every rule of the bridge holds: scheduled rotation, the
overlap, the ``explicit`` / ``usage`` / ``grace`` gates with acks that prove possession of
the key, expiry safety, adoption after a lost record, no revoke under a live consumer.

* ``static-creds/<name>`` reads the current key and, while the previous one waits for its
  consumers, the previous one too;
* ``static-roles/<name>/ack`` records a consumer replica's ack, made with the key it holds;
* ``rotate-role/<name>`` rotates now; the host's periodic ``rollback`` runs the engine for
  every static role, as a scheduled ``langsmith-bridge run`` would.

The role's target is named as a bridge file target (``Policy.target`` takes the bridge's
target kinds); the engine here opens every target as the storage target, so no file is
ever touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from bridge.config import BridgeConfig, Policy, TargetConfig
from bridge.config.file import FileTarget
from bridge.config.langsmith import LangSmithSettings
from bridge.config.model import RunSettings
from bridge.engine import Engine, RunReport, acknowledge
from bridge.engine.ports import KeyService
from bridge.provider import Provider
from bridge.secrets import Secret
from bridge.secrets_engine.errors import BadRequest, NotFound
from bridge.secrets_engine.models import EngineConfig
from bridge.secrets_engine.static_state import StorageState
from bridge.secrets_engine.static_target import StorageTarget
from bridge.secrets_engine.storage import Documents, EngineStorage

ROLE_FIELDS = frozenset(Policy.model_fields) - {"name", "target"}
RUN_EVERY = timedelta(minutes=1)  # the host's rollback period: how often the engine runs
TARGET_ROOT = Path("/langsmith-engine/static-creds")  # a name, never a file (see above)


class StaticRoles:
    def __init__(
        self,
        storage: EngineStorage,
        keys: Callable[[EngineConfig], KeyService],
        clock: Callable[[], datetime],
        instance: str,
    ) -> None:
        self.docs = Documents(storage)
        self._storage = storage
        self._keys = keys
        self._clock = clock
        self.state = StorageState(storage, instance)

    # -- roles --------------------------------------------------------------------------------

    def write(self, name: str, data: Mapping[str, object]) -> Policy:
        unknown = sorted(set(data) - ROLE_FIELDS)
        if unknown:
            raise BadRequest(f"unknown static role field(s): {', '.join(unknown)}")
        current = self.read(name, missing_ok=True)
        fields = current.model_dump(exclude={"target"}) if current else {}
        for field, value in data.items():
            fields[field] = _list(value) if field in ("workspaces", "consumers", "ack") else value
        target = FileTarget(provider="file", path=TARGET_ROOT / name)
        try:
            policy = Policy.model_validate({**fields, "name": name, "target": [target]})
            _config([policy], EngineConfig(endpoint="http://x", admin_key="x"))
        except ValidationError as exc:
            raise BadRequest(_invalid(exc)) from None
        self.docs.write(f"static/roles/{name}", policy)
        return policy

    def read(self, name: str, *, missing_ok: bool = False) -> Policy | None:
        policy = self.docs.read(f"static/roles/{name}", Policy)
        if policy is None and not missing_ok:
            raise NotFound(f"no static role named {name!r}")
        return policy

    def names(self) -> list[str]:
        return self.docs.names("static/roles/")

    def delete(self, name: str) -> None:
        """Forget the role; its keys are left to expire (``key_ttl``), never deleted under
        a consumer that may still use them."""
        self.docs.delete(f"static/roles/{name}")

    # -- keys ---------------------------------------------------------------------------------

    def run(
        self, config: EngineConfig, only: str | None = None, *, force: bool = False
    ) -> RunReport | None:
        """Reconcile the static roles (``only`` one; ``force``: rotate it now)."""
        policies = [p for n in self.names() if (p := self.read(n)) and (only is None or n == only)]
        if not policies:
            return None
        with self._engine(config, policies) as engine:
            wanted = frozenset({only}) if force and only else frozenset()
            reason = "rotate-role requested" if wanted else None
            return engine.run(policies, force=wanted, reason=reason)

    def creds(self, name: str) -> dict[str, object]:
        """The current key and its settings, and the previous key while it lives."""
        self.read(name)
        target = StorageTarget(self._storage, name, name)
        current = target.payload("current")
        if current is None:
            raise NotFound(f"static role {name!r} has no key yet (the next rollback mints it)")
        record = self.state.load(name)
        data: dict[str, object] = {
            k: v for k, v in current.items() if k != "LANGSMITH_BRIDGE_MANAGED"
        }
        data["api_key"] = current.get("LANGSMITH_API_KEY", "")
        generation = record.current()
        if generation is not None:
            data["short_key"] = generation.short_key
            data["expires_at"] = (
                generation.expires_at.isoformat() if generation.expires_at else None
            )
            data["rotation_id"] = generation.rotation_id
        previous = target.payload("previous")
        if previous is not None:
            data["previous_api_key"] = previous.get("LANGSMITH_API_KEY", "")
        return data

    def ack(self, name: str, consumer: str, replica: str, key: str) -> str:
        """Record ``replica`` of ``consumer`` using ``key``; the key's short form."""
        policy = self.read(name)
        assert policy is not None
        generation = acknowledge(
            self.state, policy, consumer, Secret(key), self._clock(), replica=replica
        )
        return generation.short_key or "?"

    def _engine(self, config: EngineConfig, policies: list[Policy]) -> Engine:
        def open_target(target: TargetConfig, policy: str) -> Provider:
            provider: Provider = StorageTarget(self._storage, policy, policy)
            return provider

        return Engine(
            _config(policies, config),
            self._keys(config),
            self.state,
            open_target,
            clock=self._clock,
        )


def _config(policies: list[Policy], config: EngineConfig) -> BridgeConfig:
    langsmith = LangSmithSettings(
        endpoint=config.endpoint,
        public_endpoint=config.public_endpoint,
        organization_id=config.organization_id,
        admin_key_env="LANGSMITH_ENGINE_ADMIN_KEY",  # unread: the engine hands the client in
    )
    return BridgeConfig(
        langsmith=langsmith, run=RunSettings(every=RUN_EVERY), policy=tuple(policies)
    )


def _list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _invalid(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'][1:] or error['loc']) or 'input'}: {error['msg']}"
        for error in exc.errors()
    )


__all__ = ["StaticRoles"]
