"""Secrets Manager's own pending and current pointers, driven step by step by AWS's native
rotation protocol (``bridge.engine.native``): the ``Staging`` capability of the provider.
"""

from __future__ import annotations

from bridge.errors import ProviderConflict, ProviderError, ProviderNotFound
from bridge.payload import Payload, Stored
from providers.aws.secret_view import CURRENT, request_token, valid_token
from providers.aws.secret_writes import SecretWriter


class SecretsManagerStaging:
    """``AWSPENDING``/``AWSCURRENT`` of one secret, for one policy."""

    def __init__(self, writer: SecretWriter) -> None:
        self._writer = writer
        self._calls = writer.calls
        self._errors = writer.errors
        self._policy = writer.policy

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
        view = self._writer.found_or_created(operation)
        adopting = self._writer.check_writable(view, operation)
        existing = self._calls.get(token, operation)
        return self._writer.stage(view, payload, token, existing, adopting, operation)[0]

    def read_version(self, version: str) -> Stored | None:
        """The payload held by ``version``, or ``None`` when there is no such version."""
        return self._calls.read("read_version", version)

    def current_version(self) -> str | None:
        """The version carrying ``AWSCURRENT``, or ``None`` (no secret, or no value yet)."""
        view = self._calls.describe("current_version")
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
        view = self._calls.describe(operation)
        if view is None:
            raise self._errors.error(ProviderNotFound, operation, "the secret does not exist")
        self._writer.require_ours(view, operation)
        stored = self._calls.read(operation, version)
        if stored is None:
            message = f"version {version} does not exist"
            raise self._errors.error(ProviderNotFound, operation, message)
        if stored.policy != self._policy:
            message = f"version {version} was not staged by this policy; refusing to promote it"
            raise self._errors.error(ProviderConflict, operation, message)
        self._writer.move_current(version, view.labels(version), view.holder(CURRENT), operation)
