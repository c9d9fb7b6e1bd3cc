"""The checks and writes that publishing and the native rotation steps share.

Everything that must be refused is refused before the first write: a secret pending
deletion, a secret the policy does not own (unless ``adopt``), an ``AWSCURRENT`` the policy
did not write, a stray ``AWSPENDING`` someone else staged, a request token already used for
other content. The checks are the provider's own, because moto is lenient where AWS is
strict (a reused token with other content, writes to a secret pending deletion).

Calls are spent only where something is unknown: a version whose fingerprint the writer
already knows (recorded in the state, or written by it) is never read again, since a
version's content never changes in Secrets Manager.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.config.aws import AwsTarget
from bridge.errors import OwnershipError, ProviderConflict, ProviderError, ProviderNotFound
from bridge.payload import Payload, Stored, encode
from providers.aws.secret_calls import ErrorMapper, SecretCalls, payload_of, same_text
from providers.aws.secret_view import CURRENT, PENDING, SecretView


class SecretWriter:
    """Checks and writes on one secret for one policy.

    Attributes:
        known: Version id -> fingerprint of the versions known to hold this policy's
            payloads (from the state, and from what this writer wrote or read back).
    """

    def __init__(
        self, target: AwsTarget, policy: str, calls: SecretCalls, errors: ErrorMapper
    ) -> None:
        self.target = target
        self.policy = policy
        self.calls = calls
        self.errors = errors
        self.known: dict[str, str] = {}

    # -- checks ------------------------------------------------------------------------

    def found_or_created(self, operation: str, view: SecretView | None = None) -> SecretView:
        """``view`` (or a fresh describe); an absent secret is created first."""
        view = view or self.calls.describe(operation)
        if view is None:
            self.creatable(operation)
            view = self.calls.create(operation)
        return view

    def creatable(self, operation: str) -> None:
        """An absent secret is created by name; an ARN names a secret that must exist."""
        if self.target.secret_id.startswith("arn:"):
            message = "no secret has this ARN (the bridge creates secrets by name only)"
            raise self.errors.error(ProviderNotFound, operation, message)

    def refusal(self, view: SecretView) -> tuple[type[ProviderError], str] | None:
        """Why the policy may not write this secret at all, or ``None`` when it may."""
        if view.pending_deletion:
            return ProviderError, (
                "is scheduled for deletion, and AWS refuses writes to it; restore it first"
            )
        ownership = view.ownership(self.policy)
        if ownership == "theirs":
            return OwnershipError, (
                f"belongs to policy {view.tagged_policy!r}; refusing to overwrite it"
            )
        if ownership == "unowned" and not self.target.adopt:
            return OwnershipError, (
                "was not created by langsmith-bridge; set adopt = true to take it over"
            )
        return None

    def check_writable(self, view: SecretView, operation: str) -> bool:
        """Refuse a secret pending deletion or not ours; ``True`` when adopting it."""
        refused = self.refusal(view)
        if refused:
            raise self.errors.error(refused[0], operation, refused[1])
        return view.ownership(self.policy) == "unowned"

    def require_ours(self, view: SecretView, operation: str) -> None:
        if view.pending_deletion or view.ownership(self.policy) != "ours":
            self.check_writable(view, operation)
            message = "is not tagged as this policy's yet; publish to it first"
            raise self.errors.error(OwnershipError, operation, message)

    def current_refusal(self, current: str, stored: Stored | None, adopting: bool) -> str | None:
        """Why the value at AWSCURRENT may not be replaced, or ``None`` when it may."""
        owner = stored.policy if stored else None
        if adopting and owner not in (None, self.policy):
            return f"AWSCURRENT holds a payload of policy {owner!r}; refusing to adopt it"
        if not adopting and owner != self.policy:
            return (
                f"AWSCURRENT is on version {current}, which this policy did not write "
                "(changed out of band); refusing to overwrite it"
            )
        return None

    def check_current(
        self, view: SecretView, operation: str, adopting: bool, *, need_content: bool = False
    ) -> tuple[str | None, Stored | None]:
        """The AWSCURRENT version and (when it had to be read) its payload, once it is known
        to be ours to replace. A known version is not read unless ``need_content``."""
        current = view.holder(CURRENT)
        if current is None or (current in self.known and not adopting and not need_content):
            return current, None
        stored = payload_of(self.calls.get(current, operation))
        refused = self.current_refusal(current, stored, adopting)
        if refused:
            kind = OwnershipError if adopting else ProviderConflict
            raise self.errors.error(kind, operation, refused)
        if stored is not None and stored.fingerprint:
            self.known[current] = stored.fingerprint
        return current, stored

    def stray_pending(self, view: SecretView, token: str | None, operation: str) -> str | None:
        """A version other than ``token`` carrying AWSPENDING that this policy staged (a
        crashed publish, which may be replaced); raise if someone else staged it."""
        pending = view.holder(PENDING)
        if pending is None or pending == token:
            return None
        stored = payload_of(self.calls.get(pending, operation))
        if stored is None or stored.policy != self.policy:
            message = (
                f"AWSPENDING is on version {pending}, which this policy did not stage "
                "(another rotation or a hand edit); refusing to replace it"
            )
            raise self.errors.error(ProviderConflict, operation, message)
        return pending

    # -- writes ------------------------------------------------------------------------

    def stage(
        self,
        view: SecretView,
        payload: Payload,
        token: str,
        existing: Mapping[str, Any] | None,
        adopting: bool,
        operation: str,
    ) -> tuple[str, tuple[str, ...]]:
        """Make version ``token`` hold ``payload`` with AWSPENDING (unless it is current
        already) and read it back. Returns the version and its labels.

        ``existing`` is what ``token`` holds, when the caller read it; ``None`` means it
        was not seen labelled, and AWS itself refuses the put if it holds other content.
        """
        text = secret_text(payload)
        if existing is not None and not same_text(existing, text):
            raise self.token_taken(token, operation)
        stray = self.stray_pending(view, token, operation)
        if adopting:
            self.calls.tag(operation)
        if stray is not None:
            self.calls.update_stage(operation, VersionStage=PENDING, RemoveFromVersionId=stray)
        if existing is None:
            labels = self.calls.put_pending(token, text, operation)
        else:
            labels = tuple(existing.get("VersionStages") or ())
            if CURRENT not in labels and PENDING not in labels:
                self.calls.update_stage(operation, VersionStage=PENDING, MoveToVersionId=token)
                labels += (PENDING,)
        stored = self.calls.read(operation, token)
        if stored is None or not stored.same_content(payload):
            message = f"version {token} does not hold the payload just written"
            raise self.errors.error(ProviderConflict, operation, message)
        self.known[token] = payload.fingerprint
        return token, labels

    def move_current(
        self, version: str, labels: tuple[str, ...], current: str | None, operation: str
    ) -> None:
        """AWSCURRENT to ``version``, removed from ``current`` (fails if it moved since)."""
        if CURRENT not in labels:
            moves = {"MoveToVersionId": version}
            if current is not None:
                moves["RemoveFromVersionId"] = current
            self.calls.update_stage(operation, VersionStage=CURRENT, **moves)
        if PENDING in labels:
            self.calls.update_stage(operation, VersionStage=PENDING, RemoveFromVersionId=version)

    def token_taken(self, token: str, operation: str) -> ProviderError:
        message = (
            f"version {token} already holds other content; a ClientRequestToken cannot "
            "be reused with a different value"
        )
        return self.errors.error(ProviderConflict, operation, message)


def secret_text(payload: Payload) -> str:
    """The SecretString: a JSON env map the SDKs and ECS can read single keys from."""
    return encode(payload.reveal_env(), "json")
