"""AWS Secrets Manager's own rotation protocol, run by the bridge.

``aws secretsmanager rotate-secret`` invokes the rotation function four times with one
``ClientRequestToken``; the token becomes the generation's rotation id:

* ``createSecret``: mint a key and stage it as ``AWSPENDING`` (once per token).
* ``setSecret``: nothing to do; the LangSmith key is live from the moment it is minted.
* ``testSecret``: authenticate with the pending key.
* ``finishSecret``: publish to the policy's other targets, move ``AWSCURRENT`` to the token's
  version, and supersede the previous generation.

Revocation of the superseded key still waits for its gate; a later scheduled run does it.
Every step is idempotent, as AWS retries failed steps.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from bridge.config import AwsTarget, Policy
from bridge.engine.executor import PolicyExecutor
from bridge.engine.runner import Engine
from bridge.errors import ConfigError, RotationError
from bridge.logs import event
from bridge.payload import Payload
from bridge.provider import StagedProvider
from bridge.secrets import Secret
from bridge.state import Generation, Phase

log = logging.getLogger("bridge.engine")

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def find_policy(engine: Engine, secret_id: str) -> tuple[Policy, AwsTarget]:
    """The policy with an AWS target for ``secret_id`` (a name or an ARN).

    Raises:
        ConfigError: no policy, or more than one, targets that secret.
    """
    found = [
        (policy, target)
        for policy in engine.config.policy
        for target in policy.target
        if isinstance(target, AwsTarget) and _same_secret(target.secret_id, secret_id)
    ]
    if len(found) != 1:
        what = "no policy targets" if not found else "several policies target"
        raise ConfigError(f"{what} secret {secret_id}")
    return found[0]


def _same_secret(configured: str, given: str) -> bool:
    if configured == given:
        return True
    # An ARN ends in ":secret:<name>-<6 random characters>"; a name may itself hold '-'.
    name = given.rpartition(":secret:")[2]
    return bool(name) and name != given and name.rpartition("-")[0] == configured


class NativeRotation:
    """Runs one step of a Secrets Manager rotation for the policy that owns the secret."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def step(self, step: str, secret_id: str, token: str) -> None:
        """Run ``step`` for ``secret_id`` with AWS's ``ClientRequestToken``.

        Raises:
            ConfigError: unknown step or secret.
            RotationError: the step cannot complete; AWS will retry it.
        """
        if step not in STEPS:
            raise ConfigError(f"unknown rotation step {step!r}; expected one of {', '.join(STEPS)}")
        policy, target = find_policy(self.engine, secret_id)
        with self._executor(policy) as executor:
            staged = cast(StagedProvider, executor.providers[target.target_id])
            handlers = {
                "createSecret": self._create,
                "setSecret": self._set,
                "testSecret": self._test,
                "finishSecret": self._finish,
            }
            handlers[step](executor, staged, target.target_id, token)
        event(log, "native_rotation_step", policy=policy.name, step=step, rotation=token)

    @contextmanager
    def _executor(self, policy: Policy) -> Iterator[PolicyExecutor]:
        engine = self.engine
        with (
            engine.store.lease(policy.name, engine.owner, engine.config.run.lease_ttl),
            engine.providers(policy) as providers,
        ):
            yield PolicyExecutor(engine.ctx, policy, engine.store.load(policy.name), providers)

    def _create(
        self, executor: PolicyExecutor, staged: StagedProvider, target_id: str, token: str
    ) -> None:
        existing = staged.read_version(token)
        generation = _generation(executor, token)
        if existing is not None:
            if generation is None or not generation.phase.live:
                raise RotationError(
                    "this token's pending version holds a key the bridge no longer tracks; "
                    "cancel this rotation and start a new one",
                    policy=executor.policy.name,
                    rotation_id=token,
                )
            return  # already staged: AWS is retrying
        generation, key = executor.mint(token, "rotation requested by Secrets Manager", native=True)
        executor.verify(generation, key)
        payload = Payload(executor.policy.name, token, key, executor.settings())
        version = staged.stage_pending(payload)
        executor.save(generation.model_copy(update={"targets": {target_id: version}}))

    def _set(
        self, executor: PolicyExecutor, staged: StagedProvider, target_id: str, token: str
    ) -> None:
        """LangSmith minted the key already; there is no downstream service to update."""

    def _test(
        self, executor: PolicyExecutor, staged: StagedProvider, target_id: str, token: str
    ) -> None:
        _, key = self._pending(executor, staged, token)
        executor.ctx.keys.verify_key(key, workspace_id=executor.policy.verify_workspace)

    def _finish(
        self, executor: PolicyExecutor, staged: StagedProvider, target_id: str, token: str
    ) -> None:
        generation = _generation(executor, token)
        if staged.current_version() == token:
            if generation is not None and generation.phase is not Phase.CURRENT:
                executor.promote(generation)  # AWSCURRENT moved, the state had not yet
            return
        generation, key = self._pending(executor, staged, token)
        others = tuple(t for t in executor.providers if t != target_id)
        generation = executor.publish(generation, key, others)
        staged.promote(token)
        executor.promote(
            generation.model_copy(update={"targets": {**generation.targets, target_id: token}})
        )

    def _pending(
        self, executor: PolicyExecutor, staged: StagedProvider, token: str
    ) -> tuple[Generation, Secret]:
        generation = _generation(executor, token)
        stored = staged.read_version(token)
        if generation is None or stored is None or stored.api_key is None:
            raise RotationError(
                "no pending version for this token", policy=executor.policy.name, rotation_id=token
            )
        if stored.fingerprint != generation.fingerprint or not generation.phase.live:
            raise RotationError(
                "the pending version does not hold this rotation's key",
                policy=executor.policy.name,
                rotation_id=token,
            )
        return generation, stored.api_key


def _generation(executor: PolicyExecutor, token: str) -> Generation | None:
    try:
        return executor.record.find(token)
    except KeyError:
        return None
