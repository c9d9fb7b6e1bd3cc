"""AWS Secrets Manager: the payload as a JSON env map, moved through the store's own labels.

Publishing a generation (each step idempotent, keyed by the rotation id):

1. ``DescribeSecret``; when absent, ``CreateSecret`` tagged as bridge-owned and *without* a
   value, so that even the first payload goes through ``AWSPENDING``.
2. Refuse what must not be touched: a secret pending deletion, a secret the policy does not
   own (unless ``adopt``), an ``AWSCURRENT`` the policy did not write, a stray ``AWSPENDING``
   someone else staged, a request token already used for other content.
3. ``PutSecretValue`` as ``AWSPENDING`` with ``ClientRequestToken`` = the rotation id (the
   version id), and read that version back.
4. Move ``AWSCURRENT`` with ``RemoveFromVersionId`` = the version seen in step 1, so a
   concurrent move fails instead of being overwritten; clear ``AWSPENDING``. AWS itself moves
   ``AWSPREVIOUS`` to the superseded version; ``retire`` clears it once its key is revoked.

Steps 2-4 are also public (``stage_pending``, ``read_version``, ``promote``,
``current_version``) for the native rotation protocol, which supplies its own token.
The checks are the provider's own: moto accepts a reused token with other content and
writes to a secret pending deletion; AWS refuses both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bridge.config.targets import AwsTarget
from bridge.errors import OwnershipError, ProviderConflict, ProviderError, ProviderNotFound
from bridge.payload import Payload, Stored, encode
from providers.aws_client import SECRETS_MANAGER_ACTIONS, ErrorMapper, SecretsManagerClient
from providers.aws_secret import (
    CURRENT,
    PENDING,
    PREVIOUS,
    SecretView,
    request_token,
    settings_variant,
    valid_token,
)
from providers.aws_store import SecretStore, payload_of, same_text

if TYPE_CHECKING:
    from bridge.provider import StagedProvider

__all__ = ["SECRETS_MANAGER_ACTIONS", "SecretsManagerClient", "SecretsManagerProvider"]


class SecretsManagerProvider:
    """One Secrets Manager secret, written on behalf of one policy.

    Args:
        target: The secret's address and creation settings.
        policy: The policy the bridge acts for (its ownership tags and payload marker).
        client: A Secrets Manager client (a boto3 client or a fake); by default a boto3
            client for the target's region and endpoint is built on first use.
    """

    name = "aws"

    def __init__(
        self, target: AwsTarget, policy: str, client: SecretsManagerClient | None = None
    ) -> None:
        self.target = target
        self.policy = policy
        self.reference = target.secret_id + (f"@{target.region}" if target.region else "")
        self._errors = ErrorMapper(self.name, self.reference)
        self._store = SecretStore(target, policy, client, self._errors)

    # -- the Provider protocol ---------------------------------------------------------

    def read(self) -> Stored | None:
        return self._store.read("read")

    def publish(self, payload: Payload) -> str:
        operation = "publish"
        view = self._found_or_created(operation)
        adopting = self._check_writable(view, operation)
        current, stored = self._check_current(view, operation, adopting)
        if current is not None and stored is not None and stored.same_content(payload):
            if adopting:
                self._store.tag(operation)
            if PENDING in view.labels(current):  # a publish died between its two moves
                self._move_current(current, view.labels(current), current, operation)
            return current
        token, existing = self._publish_token(payload, operation)
        version, labels = self._stage(view, payload, token, existing, adopting, operation)
        self._move_current(version, labels, current, operation)
        return version

    def retire(self, version: str) -> None:
        """Clear ``AWSPREVIOUS`` from ``version`` if it still has it; never touch AWSCURRENT."""
        operation = "retire"
        view = self._store.describe(operation)
        if view is None or view.pending_deletion or PREVIOUS not in view.labels(version):
            return
        self._require_ours(view, operation)
        try:
            self._store.update_stage(operation, VersionStage=PREVIOUS, RemoveFromVersionId=version)
        except ProviderConflict:
            return  # the label moved on meanwhile: nothing left to retire

    def discard(self, rotation_id: str) -> None:
        """Take ``AWSPENDING`` off a version staged for the abandoned ``rotation_id``, so a
        dead key is never pending (and a later native rotation is not blocked by it)."""
        operation = "discard"
        view = self._store.describe(operation)
        if view is None or view.pending_deletion or view.ownership(self.policy) != "ours":
            return
        pending = view.holder(PENDING)
        if pending is None or CURRENT in view.labels(pending):
            return
        stored = self._store.read(operation, pending)
        if stored is None or stored.policy != self.policy or stored.rotation_id != rotation_id:
            return  # someone else's staging: reported by publish, never removed here
        self._store.update_stage(operation, VersionStage=PENDING, RemoveFromVersionId=pending)

    def validate(self) -> None:
        """Check that publishing would be allowed; an absent secret is fine (it is created)."""
        operation = "validate"
        view = self._store.describe(operation)
        if view is None:
            self._creatable(operation)
            return
        adopting = self._check_writable(view, operation)
        self._check_current(view, operation, adopting)
        self._stray_pending(view, None, operation)

    def close(self) -> None:
        self._store.close()

    # -- native rotation primitives ----------------------------------------------------

    def stage_pending(self, payload: Payload, token: str | None = None) -> str:
        """Write ``payload`` as ``AWSPENDING`` under ``token`` and read it back.

        Args:
            payload: What to stage.
            token: The ``ClientRequestToken`` (32-64 characters); by default derived from
                ``payload.rotation_id`` (a native rotation's token is used as it is).

        Returns:
            The staged version id (the token).

        Raises:
            ProviderConflict: the token already holds other content, or ``AWSPENDING`` is on
                a version this policy did not stage.
            OwnershipError: the secret belongs to someone else.
        """
        operation = "stage_pending"
        token = token or request_token(payload.rotation_id)
        if not valid_token(token):
            message = f"a ClientRequestToken has 32-64 characters, not {len(token)}"
            raise self._errors.error(ProviderError, operation, message)
        view = self._found_or_created(operation)
        adopting = self._check_writable(view, operation)
        existing = self._store.get(token, operation)
        return self._stage(view, payload, token, existing, adopting, operation)[0]

    def read_version(self, version: str) -> Stored | None:
        """The payload held by ``version``, or ``None`` when there is no such version."""
        return self._store.read("read_version", version)

    def current_version(self) -> str | None:
        """The version carrying ``AWSCURRENT``, or ``None`` (no secret, or no value yet)."""
        view = self._store.describe("current_version")
        return view.holder(CURRENT) if view else None

    def promote(self, version: str) -> None:
        """Move ``AWSCURRENT`` to ``version`` (one this policy staged), then clear its
        ``AWSPENDING``. AWS moves ``AWSPREVIOUS`` to the version AWSCURRENT leaves.

        Raises:
            ProviderNotFound: the secret or the version does not exist.
            ProviderConflict: the version was not written by this policy, or AWSCURRENT
                moved meanwhile.
        """
        operation = "promote"
        view = self._store.describe(operation)
        if view is None:
            raise self._errors.error(ProviderNotFound, operation, "the secret does not exist")
        self._require_ours(view, operation)
        stored = self._store.read(operation, version)
        if stored is None:
            message = f"version {version} does not exist"
            raise self._errors.error(ProviderNotFound, operation, message)
        if stored.policy != self.policy:
            message = f"version {version} was not staged by this policy; refusing to promote it"
            raise self._errors.error(ProviderConflict, operation, message)
        self._move_current(version, view.labels(version), view.holder(CURRENT), operation)

    # -- checks: everything is refused before the first write --------------------------

    def _found_or_created(self, operation: str) -> SecretView:
        view = self._store.describe(operation)
        if view is None:
            self._creatable(operation)
            view = self._store.create(operation)
        return view

    def _creatable(self, operation: str) -> None:
        """An absent secret is created by name; an ARN names a secret that must exist."""
        if self.target.secret_id.startswith("arn:"):
            message = "no secret has this ARN (the bridge creates secrets by name only)"
            raise self._errors.error(ProviderNotFound, operation, message)

    def _check_writable(self, view: SecretView, operation: str) -> bool:
        """Refuse a secret pending deletion or not ours; ``True`` when adopting it."""
        if view.pending_deletion:
            message = "is scheduled for deletion, and AWS refuses writes to it; restore it first"
            raise self._errors.error(ProviderError, operation, message)
        ownership = view.ownership(self.policy)
        if ownership == "theirs":
            message = f"belongs to policy {view.tagged_policy!r}; refusing to overwrite it"
            raise self._errors.error(OwnershipError, operation, message)
        if ownership == "unowned" and not self.target.adopt:
            message = "was not created by langsmith-bridge; set adopt = true to take it over"
            raise self._errors.error(OwnershipError, operation, message)
        return ownership == "unowned"

    def _require_ours(self, view: SecretView, operation: str) -> None:
        if view.pending_deletion or view.ownership(self.policy) != "ours":
            self._check_writable(view, operation)
            message = "is not tagged as this policy's yet; publish to it first"
            raise self._errors.error(OwnershipError, operation, message)

    def _check_current(
        self, view: SecretView, operation: str, adopting: bool
    ) -> tuple[str | None, Stored | None]:
        """The AWSCURRENT version and its payload, once it is known to be ours to replace."""
        current = view.holder(CURRENT)
        if current is None:
            return None, None
        stored = payload_of(self._store.get(current, operation))
        owner = stored.policy if stored else None
        if adopting and owner not in (None, self.policy):
            message = f"AWSCURRENT holds a payload of policy {owner!r}; refusing to adopt it"
            raise self._errors.error(OwnershipError, operation, message)
        if not adopting and owner != self.policy:
            message = (
                f"AWSCURRENT is on version {current}, which this policy did not write "
                "(changed out of band); refusing to overwrite it"
            )
            raise self._errors.error(ProviderConflict, operation, message)
        return current, stored

    def _stray_pending(self, view: SecretView, token: str | None, operation: str) -> str | None:
        """A version other than ``token`` carrying AWSPENDING that this policy staged (a
        crashed publish, which may be replaced); raise if someone else staged it."""
        pending = view.holder(PENDING)
        if pending is None or pending == token:
            return None
        stored = payload_of(self._store.get(pending, operation))
        if stored is None or stored.policy != self.policy:
            message = (
                f"AWSPENDING is on version {pending}, which this policy did not stage "
                "(another rotation or a hand edit); refusing to replace it"
            )
            raise self._errors.error(ProviderConflict, operation, message)
        return pending

    def _publish_token(
        self, payload: Payload, operation: str
    ) -> tuple[str, Mapping[str, Any] | None]:
        """The rotation's token and what it holds. A republish of the same key with changed
        settings goes to a token derived from it, as a version's content never changes."""
        token = request_token(payload.rotation_id)
        existing = self._store.get(token, operation)
        if existing is None or same_text(existing, _text(payload)):
            return token, existing
        stored = payload_of(existing)
        if stored is None or not stored.owned_by(self.policy) or stored.api_key != payload.api_key:
            message = (
                f"version {token} already holds another payload for rotation "
                f"{payload.rotation_id}; refusing to reuse its request token"
            )
            raise self._errors.error(ProviderConflict, operation, message)
        token = request_token(payload.rotation_id, settings_variant(payload.settings))
        return token, self._store.get(token, operation)

    # -- writes ------------------------------------------------------------------------

    def _stage(
        self,
        view: SecretView,
        payload: Payload,
        token: str,
        existing: Mapping[str, Any] | None,
        adopting: bool,
        operation: str,
    ) -> tuple[str, tuple[str, ...]]:
        """Make version ``token`` hold ``payload`` with AWSPENDING (unless it is current
        already) and read it back. Returns the version and its labels."""
        text = _text(payload)
        if existing is not None and not same_text(existing, text):
            message = (
                f"version {token} already holds other content; a ClientRequestToken cannot "
                "be reused with a different value"
            )
            raise self._errors.error(ProviderConflict, operation, message)
        stray = self._stray_pending(view, token, operation)
        if adopting:
            self._store.tag(operation)
        if stray is not None:
            self._store.update_stage(operation, VersionStage=PENDING, RemoveFromVersionId=stray)
        if existing is None:
            labels = self._store.put_pending(token, text, operation)
        else:
            labels = tuple(existing.get("VersionStages") or ())
            if CURRENT not in labels and PENDING not in labels:
                self._store.update_stage(operation, VersionStage=PENDING, MoveToVersionId=token)
                labels += (PENDING,)
        stored = self._store.read(operation, token)
        if stored is None or stored.fingerprint != payload.fingerprint:
            message = f"version {token} does not hold the key just written"
            raise self._errors.error(ProviderConflict, operation, message)
        return token, labels

    def _move_current(
        self, version: str, labels: tuple[str, ...], current: str | None, operation: str
    ) -> None:
        """AWSCURRENT to ``version``, removed from ``current`` (fails if it moved since)."""
        if CURRENT not in labels:
            moves = {"MoveToVersionId": version}
            if current is not None:
                moves["RemoveFromVersionId"] = current
            self._store.update_stage(operation, VersionStage=CURRENT, **moves)
        if PENDING in labels:
            self._store.update_stage(operation, VersionStage=PENDING, RemoveFromVersionId=version)


def _text(payload: Payload) -> str:
    """The SecretString: a JSON env map the SDKs and ECS can read single keys from."""
    return encode(payload.reveal_env(), "json")


if TYPE_CHECKING:

    def _conforms(provider: SecretsManagerProvider) -> StagedProvider:
        return provider
