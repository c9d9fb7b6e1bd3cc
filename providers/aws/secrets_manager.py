"""AWS Secrets Manager: the payload as a JSON env map, moved through the store's own labels.

Publishing a generation (each step idempotent, keyed by the rotation id), five calls for a
rotation run including the observation that precedes it:

1. ``DescribeSecret`` (the observation's, reused within the run): tags, labels, pending
   deletion. When absent, ``CreateSecret`` tagged as bridge-owned and *without* a value,
   so that even the first payload goes through ``AWSPENDING``.
2. Refuse what must not be touched (``secret_writes``). A current version the state
   recorded is known to be ours without reading it.
3. ``PutSecretValue`` as ``AWSPENDING`` with ``ClientRequestToken`` = the rotation id (the
   version id), then ``GetSecretValue`` of that version: read back and compare.
4. Move ``AWSCURRENT`` with ``RemoveFromVersionId`` = the version seen in step 1, so a
   concurrent move fails instead of being overwritten; clear ``AWSPENDING``. AWS itself moves
   ``AWSPREVIOUS`` to the superseded version; ``retire`` clears it once its key is revoked.

A no-op run costs one ``DescribeSecret``: when AWSCURRENT is on a version the state
recorded, its content is known (versions are immutable), so no value is read. Revoking a
superseded key later costs one more call in the run that does it: clearing AWSPREVIOUS.

The native rotation protocol drives steps 3-4 itself through ``staging``
(``providers.aws.staging``), with its own token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.config.aws import AwsTarget
from bridge.errors import ProviderConflict
from bridge.payload import Payload, Stored, decode
from bridge.provider import ABSENT, Known, Observed, Ownership
from providers.aws.secret_calls import (
    ErrorMapper,
    SecretCalls,
    SecretsManagerClient,
    payload_of,
    same_text,
)
from providers.aws.secret_view import (
    CURRENT,
    PENDING,
    PREVIOUS,
    SecretView,
    request_token,
    settings_variant,
)
from providers.aws.secret_writes import SecretWriter, secret_text
from providers.aws.staging import SecretsManagerStaging


class SecretsManagerProvider:
    """One Secrets Manager secret, written on behalf of one policy.

    Args:
        target: The secret's address and creation settings.
        policy: The policy the bridge acts for (its ownership tags and payload marker).
        client: A Secrets Manager client (a boto3 client or a fake).
        connect: Instead of ``client``, a function giving the shared client on first use
            (what ``AwsConnection`` passes, so that no client is built before a call).
    """

    name = "aws"

    def __init__(
        self,
        target: AwsTarget,
        policy: str,
        client: SecretsManagerClient | None = None,
        *,
        connect: Callable[[], SecretsManagerClient] | None = None,
    ) -> None:
        if (client is None) == (connect is None):
            raise TypeError("give exactly one of client and connect")
        self.target = target
        self.policy = policy
        self.reference = target.secret_id + (f"@{target.region}" if target.region else "")
        self._errors = ErrorMapper(self.name, self.reference)
        self._calls = SecretCalls(target, policy, connect or _fixed(client), self._errors)
        self._writer = SecretWriter(target, policy, self._calls, self._errors)
        self._view: SecretView | None = None  # the observation's describe, until a write

    @property
    def staging(self) -> SecretsManagerStaging:
        return SecretsManagerStaging(self._writer)

    # -- the Provider protocol ---------------------------------------------------------

    def observe(self, known: Known) -> Observed:
        self._writer.known.update(known)
        view = self._view = self._calls.describe("observe")
        if view is None:
            return ABSENT
        refused = self._writer.refusal(view)
        if refused:
            return Observed("foreign", owner=view.tagged_policy, detail=refused[1])
        adopting = view.ownership(self.policy) == "unowned"
        current = view.holder(CURRENT)
        if current is None:  # created, but no value yet
            return Observed("ours", owner=self.policy, content_read=False)
        if current in self._writer.known and not adopting:
            fingerprint = self._writer.known[current]
            return Observed("ours", fingerprint, current, owner=self.policy, content_read=False)
        # Not ``read``: a value that is no payload at all (a plain string) is judged like
        # any foreign value, as publish judges it, instead of failing the observation.
        response = self._calls.get(current, "observe")
        stored = payload_of(response)
        refused_current = self._writer.current_refusal(current, stored, adopting)
        if refused_current and stored is None:
            refused_current += f"; its value is not a payload: {_unreadable(response)}"
        owner = stored.policy if stored else None
        seen = stored.fingerprint if stored else None
        if refused_current:
            return Observed("foreign", seen, current, owner=owner, detail=refused_current)
        digest = stored.settings_digest if stored else None
        ownership: Ownership = "adoptable" if adopting else "ours"
        return Observed(ownership, seen, current, owner=owner, settings_digest=digest)

    def read(self) -> Stored | None:
        return self._calls.read("read")

    def publish(self, payload: Payload) -> str:
        operation = "publish"
        view, self._view = self._writer.found_or_created(operation, self._view), None
        adopting = self._writer.check_writable(view, operation)
        known_current = view.holder(CURRENT)
        # Read the current value only when it may already be this payload (a resume or a
        # republish): a rotation replaces a version whose key is known to differ.
        maybe_same = self._writer.known.get(known_current or "") == payload.fingerprint
        current, stored = self._writer.check_current(
            view, operation, adopting, need_content=maybe_same
        )
        if current is not None and stored is not None and stored.same_content(payload):
            if adopting:
                self._calls.tag(operation)
            if PENDING in view.labels(current):  # a publish died between its two moves
                self._writer.move_current(current, view.labels(current), current, operation)
            return current
        token, existing = self._token(view, payload, operation)
        try:
            version, labels = self._writer.stage(
                view, payload, token, existing, adopting, operation
            )
        except ProviderConflict:
            if existing is not None:
                raise
            # The token was unlabelled (so unseen) and AWS refused the put: it holds other
            # content. Judge what it holds, as for a labelled one, and stage once more.
            token, existing = self._token(view, payload, operation, fetch=True)
            version, labels = self._writer.stage(
                view, payload, token, existing, adopting, operation
            )
        self._writer.move_current(version, labels, current, operation)
        return version

    def retire(self, version: str) -> None:
        """Clear ``AWSPREVIOUS`` from ``version`` if it still has it; never touch AWSCURRENT."""
        operation = "retire"
        # The observation's describe serves: removing AWSPREVIOUS names the version that
        # must hold it, so a label that moved meanwhile makes the call fail, not misfire.
        view, self._view = self._view or self._calls.describe(operation), None
        if view is None or view.pending_deletion or PREVIOUS not in view.labels(version):
            return
        self._writer.require_ours(view, operation)
        try:
            self._calls.update_stage(operation, VersionStage=PREVIOUS, RemoveFromVersionId=version)
        except ProviderConflict:
            return  # the label moved on meanwhile: nothing left to retire

    def discard(self, rotation_id: str) -> None:
        """Take ``AWSPENDING`` off a version staged for the abandoned ``rotation_id``, so a
        dead key is never pending (and a later native rotation is not blocked by it)."""
        operation = "discard"
        view, self._view = self._calls.describe(operation), None
        if view is None or view.pending_deletion or view.ownership(self.policy) != "ours":
            return
        pending = view.holder(PENDING)
        if pending is None or CURRENT in view.labels(pending):
            return
        stored = self._calls.read(operation, pending)
        if stored is None or stored.policy != self.policy or stored.rotation_id != rotation_id:
            return  # someone else's staging: reported by publish, never removed here
        self._calls.update_stage(operation, VersionStage=PENDING, RemoveFromVersionId=pending)

    def validate(self) -> None:
        """Check that publishing would be allowed; an absent secret is fine (it is created)."""
        operation = "validate"
        view = self._calls.describe(operation)
        if view is None:
            self._writer.creatable(operation)
            return
        adopting = self._writer.check_writable(view, operation)
        self._writer.check_current(view, operation, adopting, need_content=True)
        self._writer.stray_pending(view, None, operation)

    # -- tokens ------------------------------------------------------------------------

    def _token(
        self, view: SecretView, payload: Payload, operation: str, *, fetch: bool = False
    ) -> tuple[str, Mapping[str, Any] | None]:
        """The rotation's token and what it holds, when that can be anything. A republish
        of the same key with changed settings goes to a token derived from it, as a
        version's content never changes."""
        token = request_token(payload.rotation_id)
        existing = self._labelled(view, token, operation, fetch)
        if existing is None or _same(existing, payload):
            return token, existing
        stored = payload_of(existing)
        if stored is None or not stored.owned_by(self.policy) or stored.api_key != payload.api_key:
            message = (
                f"version {token} already holds another payload for rotation "
                f"{payload.rotation_id}; refusing to reuse its request token"
            )
            raise self._errors.error(ProviderConflict, operation, message)
        token = request_token(payload.rotation_id, settings_variant(payload.settings))
        return token, self._labelled(view, token, operation, fetch)

    def _labelled(
        self, view: SecretView, token: str, operation: str, fetch: bool
    ) -> Mapping[str, Any] | None:
        """What ``token`` holds, read only when it is labelled (or ``fetch``): an unlabelled
        token is either unused or refused by AWS on reuse with other content."""
        if not fetch and not view.labels(token):
            return None
        return self._calls.get(token, operation)


def _fixed(client: SecretsManagerClient | None) -> Callable[[], SecretsManagerClient]:
    assert client is not None
    return lambda: client


def _unreadable(response: Mapping[str, Any] | None) -> str:
    """Why a ``GetSecretValue`` answer holds no payload, for the operator: the parser's
    reason (which never quotes the value), as ``payload_of`` only says that it holds none."""
    if response is None:
        return "the version is gone"
    text = response.get("SecretString")
    if not isinstance(text, str):
        return "no SecretString"
    try:
        decode(text, "json")
    except ValueError as exc:
        return str(exc)
    return "unknown"  # not reached: payload_of parses the same text the same way


def _same(existing: Mapping[str, Any], payload: Payload) -> bool:
    return same_text(existing, secret_text(payload))
