"""AWS Secrets Manager's own rotation protocol, run by the bridge.

``aws secretsmanager rotate-secret`` invokes the rotation function four times with one
``ClientRequestToken``; the token becomes the generation's rotation id:

* ``createSecret``: mint a key and stage it as ``AWSPENDING`` (once per token).
* ``setSecret``: nothing to do; the LangSmith key is live from the moment it is minted.
* ``testSecret``: authenticate with the pending key.
* ``finishSecret``: publish to the policy's other targets, move ``AWSCURRENT`` to the token's
  version, and supersede the previous generation.

Revocation of the superseded key still waits for its gate; a later scheduled run does it.
Every step is idempotent, as AWS retries failed steps. What each step does is decided by
``native_plan.decide``, a pure function; this module reads what it needs (through the
target's ``staging`` capability) and carries the decision out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bridge.config import AwsTarget, Policy
from bridge.engine.executor import PolicyExecutor
from bridge.engine.native_plan import STEPS, NativeAction, NativeView, decide
from bridge.engine.runner import Engine
from bridge.errors import ConfigError, RotationError
from bridge.logs import event
from bridge.payload import Payload, Stored
from bridge.provider import Staging
from bridge.secrets import Secret
from bridge.state import Generation

log = logging.getLogger("bridge.engine")


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
            ConfigError: unknown step or secret, or a target without staging.
            RotationError: the step cannot complete; AWS will retry it.
        """
        if step not in STEPS:
            raise ConfigError(f"unknown rotation step {step!r}; expected one of {', '.join(STEPS)}")
        policy, target = find_policy(self.engine, secret_id)
        engine = self.engine
        with engine.store.lease(policy.name, engine.owner, engine.config.run.lease_ttl):
            providers = engine.providers(policy)
            executor = PolicyExecutor(engine.ctx, policy, engine.store.load(policy.name), providers)
            staging = providers[target.target_id].staging
            if staging is None:
                raise ConfigError(f"target {target.target_id} has no staging pointers")
            view, pending = _view(step, executor, staging, token)
            _ACTIONS[decide(view)](_Step(executor, staging, target.target_id, token, pending))
        event(log, "native_rotation_step", policy=policy.name, step=step, rotation=token)


@dataclass(frozen=True)
class _Step:
    """What a handler works with: the token's pending version as ``_view`` read it, so no
    handler reads it again."""

    executor: PolicyExecutor
    staging: Staging
    target_id: str
    token: str
    pending: Stored | None


def _view(
    step: str, executor: PolicyExecutor, staging: Staging, token: str
) -> tuple[NativeView, Stored | None]:
    """What ``decide`` needs (and the pending version), read with as few calls as the step
    allows."""
    generation = _generation(executor, token)
    if step == "setSecret":
        return NativeView(step, staged=False, phase=None, matches=False, current=False), None
    current = step == "finishSecret" and staging.current_version() == token
    stored = None if current else staging.read_version(token)
    matches = bool(
        stored is not None
        and stored.api_key is not None
        and generation is not None
        and stored.fingerprint == generation.fingerprint
    )
    view = NativeView(
        step,
        staged=current or stored is not None,
        phase=generation.phase if generation else None,
        matches=matches,
        current=current,
    )
    return view, stored


Handler = Callable[[_Step], None]


def _mint_and_stage(step: _Step) -> None:
    executor = step.executor
    generation, key = executor.mint(
        step.token, "rotation requested by Secrets Manager", native=True
    )
    executor.verify(generation, key)
    payload = Payload(executor.policy.name, step.token, key, executor.settings())
    version = step.staging.stage_pending(payload, step.token)
    executor.save(generation.model_copy(update={"targets": {step.target_id: version}}))


def _verify_pending(step: _Step) -> None:
    _, key = _pending(step)
    executor = step.executor
    workspace = executor.policy.verify_workspace
    executor.ctx.keys.verify_key(key, workspace_id=workspace, endpoint=executor.ctx.endpoint)


def _publish_and_promote(step: _Step) -> None:
    executor = step.executor
    generation, key = _pending(step)
    others = tuple(t for t in executor.providers if t != step.target_id)
    generation = executor.publish(generation, key, others)
    step.staging.promote(step.token)
    targets = {**generation.targets, step.target_id: step.token}
    executor.promote(generation.model_copy(update={"targets": targets}))


def _record_promotion(step: _Step) -> None:
    generation = _generation(step.executor, step.token)
    assert generation is not None
    step.executor.promote(generation)


def _nothing(step: _Step) -> None:
    """Nothing to do for this step."""


def _refusal(message: str) -> Handler:
    def refuse(step: _Step) -> None:
        raise RotationError(message, policy=step.executor.policy.name, rotation_id=step.token)

    return refuse


_ACTIONS: dict[NativeAction, Handler] = {
    NativeAction.MINT_AND_STAGE: _mint_and_stage,
    NativeAction.ALREADY_STAGED: _nothing,
    NativeAction.REFUSE_UNTRACKED: _refusal(
        "this token's pending version holds a key the bridge no longer tracks; "
        "cancel this rotation and start a new one"
    ),
    NativeAction.NOTHING: _nothing,
    NativeAction.VERIFY_PENDING: _verify_pending,
    NativeAction.PUBLISH_AND_PROMOTE: _publish_and_promote,
    NativeAction.RECORD_PROMOTION: _record_promotion,
    NativeAction.ALREADY_FINISHED: _nothing,
    NativeAction.NO_PENDING: _refusal("no pending version for this token"),
    NativeAction.WRONG_PENDING: _refusal("the pending version does not hold this rotation's key"),
}


def _pending(step: _Step) -> tuple[Generation, Secret]:
    """The generation and key ``decide`` found matching (it checked both exist)."""
    generation = _generation(step.executor, step.token)
    stored = step.pending
    assert generation is not None and stored is not None and stored.api_key is not None
    return generation, stored.api_key


def _generation(executor: PolicyExecutor, token: str) -> Generation | None:
    try:
        return executor.record.find(token)
    except KeyError:
        return None
