"""Carrying out a plan for one policy. Every state change is a compare-and-swap write made
*before* the side effect it announces can be lost (intent before mint, key id right after
mint), so a run killed at any instant leaves a record the next run can finish from."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.config import Policy
from bridge.engine.plan import (
    Abandon,
    Adopt,
    Bookkeeping,
    DeleteOrphan,
    Republish,
    Resume,
    Revoke,
    Rotate,
    Step,
)
from bridge.engine.ports import KeyService
from bridge.errors import (
    LangSmithAuthError,
    LangSmithNotFound,
    LangSmithPermissionError,
    RotationError,
    WorkspaceRequired,
)
from bridge.logs import event
from bridge.marker import Marker
from bridge.payload import ENDPOINT, WORKSPACE_ID, Payload
from bridge.provider import Provider
from bridge.secrets import Secret
from bridge.state import (
    Event,
    Generation,
    Lease,
    Phase,
    PolicyRecord,
    StateStore,
    new_rotation_id,
)

log = logging.getLogger("bridge.engine")


@dataclass(frozen=True)
class Context:
    """What every policy run shares."""

    keys: KeyService
    store: StateStore
    clock: Callable[[], datetime]
    sleep: Callable[[float], None]
    instance: str
    endpoint: str  # published as LANGSMITH_ENDPOINT
    verify_attempts: int
    verify_delay: timedelta
    actor: str = "bridge"  # who acts, for the policy's history (host:pid)
    call_margin: timedelta = timedelta(0)  # the longest one call may take, retries included


class PolicyExecutor:
    """Executes steps for one policy while its lease is held.

    Before every side effect (mint, publish, delete) the lease must have at least
    ``call_margin`` left: a runner whose lease lapsed, or is about to, starts nothing that
    could land after another runner took the policy over (the state's own writes are
    fenced by the store). Without a lease (``run --dry-run`` never gets here; the native
    AWS rotation steps take none) nothing is checked.
    """

    def __init__(
        self,
        ctx: Context,
        policy: Policy,
        record: PolicyRecord,
        providers: Mapping[str, Provider],
        *,
        lease: Lease | None = None,
        reason: str | None = None,
        request: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.record = record
        self.providers = providers
        self.lease = lease
        self.reason = reason  # the operator's, for ``rotate --reason``
        self.request = request  # the outside request a rotation now serves (its id)

    def execute(self, step: Step) -> None:
        """Carry out ``step``. Raises the ``BridgeError`` that stopped it."""
        if isinstance(step, Bookkeeping):
            record = step.apply(self.record)
            if isinstance(step, Adopt):
                record = record.with_event(
                    self._event("adopted", step.rotation_id, step.short_key, step.describe())
                )
                self._log("adopted", rotation=step.rotation_id, short_key=step.short_key)
            self.record = self.ctx.store.save(record)
        elif isinstance(step, Rotate):
            self._rotate(step)
        elif isinstance(step, Resume):
            self._resume(step)
        elif isinstance(step, Republish):
            self._republish(step)
        elif isinstance(step, Revoke):
            self._revoke(step)
        elif isinstance(step, Abandon):
            self._abandon(step)
        elif isinstance(step, DeleteOrphan):
            self.delete_key(step.key_id)
            self._log("orphan_deleted", short_key=step.short_key)
            self.note("orphan_deleted", step.rotation_id, step.short_key, "unreferenced")
        else:  # pragma: no cover - the planner emits only the steps above
            raise TypeError(f"unknown step {step!r}")

    # -- steps -------------------------------------------------------------------------

    def _rotate(self, step: Rotate) -> None:
        reason = f"{step.reason}: {self.reason}" if self.reason else step.reason
        generation, key = self.mint(new_rotation_id(self.ctx.clock()), reason)
        self.verify(generation, key)
        generation = self.publish(generation, key, tuple(self.providers))
        self.promote(generation)

    def mint(
        self, rotation_id: str, reason: str, *, native: bool = False
    ) -> tuple[Generation, Secret]:
        """Record the intent, mint the key, record the key: the new generation and its key."""
        now = self.ctx.clock()
        generation = Generation(
            rotation_id=rotation_id,
            phase=Phase.MINTING,
            started_at=now,
            reason=reason,
            native=native,
            request=self.request,
        )
        self.save(generation)  # intent first: a crash from here on leaves a findable record
        self.ensure_lease()
        created = self.ctx.keys.create_service_key(
            description=Marker(self.ctx.instance, self.policy.name, rotation_id).description(),
            expires_at=now + self.policy.key_ttl,
            workspaces=self.policy.workspaces,
            role_id=self.policy.role_id,
            org_role_id=self.policy.org_role_id,
        )
        generation = self.save(
            generation.model_copy(
                update={
                    "phase": Phase.PUBLISHING,
                    "key_id": created.info.id,
                    "short_key": created.info.short_key,
                    "fingerprint": created.key.fingerprint,
                    "created_at": created.info.created_at or now,
                    "expires_at": created.info.expires_at or now + self.policy.key_ttl,
                }
            )
        )
        self._log("minted", rotation=rotation_id, short_key=created.info.short_key, reason=reason)
        return generation, created.key

    def _resume(self, step: Resume) -> None:
        generation = self.record.find(step.rotation_id)
        key = self.read_back(step.source, generation)
        self.verify(generation, key)
        generation = self.publish(generation, key, step.targets)
        self.promote(generation)

    def _republish(self, step: Republish) -> None:
        generation = self.record.find(step.rotation_id)
        key = self.read_back(step.source, generation)
        self.save(self.publish(generation, key, step.targets))

    def _revoke(self, step: Revoke) -> None:
        generation = self.record.find(step.rotation_id)
        if not step.already_gone:
            self.delete_key(step.key_id)
        for target_id, version in generation.targets.items():
            provider = self.providers.get(target_id)
            if provider is not None:
                provider.retire(version)
        self.end(generation, Phase.REVOKED, step.reason)
        self._log(
            "revoked",
            rotation=step.rotation_id,
            short_key=step.short_key,
            reason=step.reason,
        )

    def _abandon(self, step: Abandon) -> None:
        generation = self.record.find(step.rotation_id)
        for provider in self.providers.values():
            provider.discard(step.rotation_id)  # nothing staged may point at a dead key
        if step.key_id:
            self.delete_key(step.key_id)
        self.end(generation, Phase.ABANDONED, step.reason)
        self._log(
            "abandoned",
            level=logging.WARNING,
            rotation=step.rotation_id,
            short_key=step.short_key,
            reason=step.reason,
        )

    # -- pieces ------------------------------------------------------------------------

    def verify(self, generation: Generation, key: Secret) -> None:
        """Prove the new key authenticates before any consumer can see it.

        A brand-new key may take up to a minute to be accepted everywhere (LangSmith caches
        auth results), so a 401 or 403 is retried over ``verify_attempts`` x
        ``verify_delay`` before the generation is abandoned.
        """
        for attempt in range(1, self.ctx.verify_attempts + 1):
            try:
                # As a consumer will use it: the endpoint and workspace of its payload.
                workspace = self.policy.verify_workspace
                self.ctx.keys.verify_key(key, workspace_id=workspace, endpoint=self.ctx.endpoint)
                return
            except WorkspaceRequired:
                raise  # the config's doing: no wait makes it go away
            except (LangSmithAuthError, LangSmithPermissionError):
                if attempt == self.ctx.verify_attempts:
                    break
                self.ctx.sleep(self.ctx.verify_delay.total_seconds())
        if generation.key_id:
            self.delete_key(generation.key_id)
        self.end(generation, Phase.ABANDONED, "new key failed verification")
        raise self._failure(
            f"new key {generation.short_key} was rejected by LangSmith "
            f"{self.ctx.verify_attempts} time(s); abandoned it",
            generation,
        )

    def publish(
        self, generation: Generation, key: Secret, target_ids: tuple[str, ...]
    ) -> Generation:
        payload = Payload(self.policy.name, generation.rotation_id, key, self.settings())
        versions = dict(generation.targets)
        for target_id in target_ids:
            self.ensure_lease()
            # Publishing reads back and compares (the Provider contract, which every
            # adapter's contract suite checks), so no second read is spent here.
            versions[target_id] = self.providers[target_id].publish(payload)
            self._log(
                "published",
                rotation=generation.rotation_id,
                target=target_id,
                fingerprint=payload.fingerprint,
            )
        digest = payload.settings_digest
        return generation.model_copy(update={"targets": versions, "settings_digest": digest})

    def promote(self, generation: Generation) -> None:
        """Make ``generation`` current; the previous current key becomes superseded now."""
        now = self.ctx.clock()
        record = self.record
        previous = record.current()
        if previous is not None and previous.rotation_id != generation.rotation_id:
            record = record.with_generation(
                previous.model_copy(update={"phase": Phase.SUPERSEDED, "superseded_at": now})
            )
        record = record.with_generation(
            generation.model_copy(update={"phase": Phase.CURRENT, "published_at": now})
        )
        reason = generation.reason or "rotated"
        record = record.with_event(
            self._event("rotated", generation.rotation_id, generation.short_key, reason)
        )
        self.record = self.ctx.store.save(record)
        self._log(
            "current",
            rotation=generation.rotation_id,
            short_key=generation.short_key,
            superseded=previous.short_key if previous else None,
        )

    def read_back(self, target_id: str, generation: Generation) -> Secret:
        stored = self.providers[target_id].read()
        if stored is None or stored.api_key is None or stored.fingerprint != generation.fingerprint:
            raise self._failure(
                f"target {target_id} no longer holds key {generation.short_key}", generation
            )
        return stored.api_key

    def settings(self) -> dict[str, str]:
        return published_settings(self.policy, self.ctx.endpoint)

    def delete_key(self, key_id: str) -> None:
        self.ensure_lease()
        with contextlib.suppress(LangSmithNotFound):  # already gone: what we wanted
            self.ctx.keys.delete_service_key(key_id)

    def ensure_lease(self) -> None:
        """Raise ``LeaseLost`` unless the lease outlasts the longest call about to be made."""
        if self.lease is not None:
            self.lease.ensure(self.ctx.call_margin)

    def note(self, action: str, rotation_id: str, short_key: str | None, reason: str) -> None:
        """Append to the policy's history (``langsmith-bridge history``)."""
        event = self._event(action, rotation_id, short_key, reason)
        self.record = self.ctx.store.save(self.record.with_event(event))

    def _event(self, action: str, rotation_id: str, short_key: str | None, reason: str) -> Event:
        return Event(
            at=self.ctx.clock(),
            action=action,
            rotation_id=rotation_id,
            short_key=short_key,
            reason=reason,
            actor=self.ctx.actor,
        )

    def end(self, generation: Generation, phase: Phase, reason: str) -> None:
        """End ``generation``, and say so in the policy's history, in one write."""
        ended = generation.model_copy(
            update={"phase": phase, "ended_at": self.ctx.clock(), "end_reason": reason}
        )
        action = "revoked" if phase is Phase.REVOKED else "abandoned"
        event = self._event(action, generation.rotation_id, generation.short_key, reason)
        self.record = self.ctx.store.save(self.record.with_generation(ended).with_event(event))

    def _log(self, name: str, level: int = logging.INFO, **fields: object) -> None:
        event(log, name, level, policy=self.policy.name, **fields)

    def _failure(self, message: str, generation: Generation) -> RotationError:
        return RotationError(message, policy=self.policy.name, rotation_id=generation.rotation_id)

    def save(self, generation: Generation) -> Generation:
        self.record = self.ctx.store.save(self.record.with_generation(generation))
        return generation


def published_settings(policy: Policy, endpoint: str) -> dict[str, str]:
    """What a payload holds besides the key and the marker: the settings consumers need."""
    settings = {ENDPOINT: endpoint}
    if policy.published_workspace:
        settings[WORKSPACE_ID] = policy.published_workspace
    return settings
