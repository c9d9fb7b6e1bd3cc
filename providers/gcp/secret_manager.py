"""Google Secret Manager: the payload as a JSON secret version, made current by aliases.

* The data of a version is the payload's environment map as JSON (what the AWS target
  writes), marker included: the marker names the generation of one *version*.
* Ownership lives in the secret's labels (``managed-by = langsmith-bridge`` and
  ``langsmith-bridge-policy``, the policy name made a valid label value) and, since a label
  cannot hold every policy name, the exact name in the annotation ``langsmith-bridge.policy``.
  Another policy's or nobody's secret is refused unless ``adopt = true``; a current version
  without this policy's marker was changed out of band and is not overwritten.
* A generation is written with ``AddSecretVersion``, read back and compared, and only then
  made current: one ``UpdateSecret(update_mask=version_aliases)`` with the etag the
  observation saw moves ``current`` to it and ``previous`` to the one it replaces, so a
  consumer reading ``versions/current`` flips atomically and a concurrent move fails
  instead of being overwritten. The version reference is the version number.
* ``retire`` takes ``previous`` off a superseded version and disables it (destroys it with
  ``destroy_retired``), never the current one.
* A run killed between ``AddSecretVersion`` and the alias move leaves an ENABLED version no
  alias names. The next publish of that payload makes it current instead of adding a twin;
  if its rotation is abandoned, ``discard`` disables it before its key is deleted.

A no-op run costs one ``GetSecret``: when ``current`` names a version the state recorded,
its content is known (versions are immutable), so no value is accessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.cloud.secretmanager_v1.types import resources

from bridge.config.gcp import POLICY_ANNOTATION, GcpTarget
from bridge.errors import OwnershipError, ProviderConflict, ProviderError
from bridge.payload import Payload, Stored, encode
from bridge.provider import ABSENT, Known, Observed, Ownership
from providers.gcp.sm_calls import (
    CURRENT,
    PREVIOUS,
    SecretCalls,
    SecretManagerPort,
    SecretView,
    owner_labels,
    payload_of,
)

State = resources.SecretVersion.State


@dataclass(frozen=True)
class _Current:
    """The version consumers read, as accessed: its payload, or why its data is none."""

    version: str
    stored: Stored | None
    unreadable: str | None = None
    aliased: bool = True  # ``current`` names it (else it is ``latest``, no alias yet)


@dataclass(frozen=True)
class _Seen:
    """What the last observation saw, for the publish that follows it."""

    view: SecretView
    current: _Current | None = None
    read: bool = False


class SecretManagerProvider:
    """One Secret Manager secret, written on behalf of one policy.

    Args:
        target: The secret's project, id and creation settings.
        policy: The policy the bridge acts for (its labels and payload marker).
        client: A Secret Manager client (``SecretManagerServiceClient`` or a fake).
        connect: Instead of ``client``, a function giving the shared client on first use.
    """

    name = "gcp"
    staging = None  # no pending pointer: a version becomes current by its alias

    def __init__(
        self,
        target: GcpTarget,
        policy: str,
        client: SecretManagerPort | None = None,
        *,
        connect: Callable[[], SecretManagerPort] | None = None,
    ) -> None:
        if (client is None) == (connect is None):
            raise TypeError("give exactly one of client and connect")
        self.target = target
        self.policy = policy
        self.reference = target.name
        self._calls = SecretCalls(target, policy, connect or _fixed(client), self.name, target.name)
        self._known: dict[str, str] = {}  # version -> fingerprint, recorded or written
        self._seen: _Seen | None = None

    # -- the Provider protocol ---------------------------------------------------------

    def observe(self, known: Known) -> Observed:
        operation = "observe"
        self._known.update(known)
        self._seen = None
        view = self._calls.get(operation)
        if view is None:
            return ABSENT
        refused = self._refusal(view)
        if refused:
            return Observed("foreign", owner=view.tagged_policy, detail=refused)
        adopting = view.ownership(self.policy) == "unowned"
        ownership: Ownership = "adoptable" if adopting else "ours"
        live = view.current
        if live is not None and live in self._known and not adopting:
            self._seen = _Seen(view)
            recorded = self._known[live]
            return Observed("ours", recorded, live, owner=self.policy, content_read=False)
        current = self._current(view, operation)
        self._seen = _Seen(view, current, read=True)
        if current is None:  # created, but no version yet
            owner = None if adopting else self.policy
            return Observed(ownership, owner=owner, content_read=False)
        stored = current.stored
        fingerprint, owner = (stored.fingerprint, stored.policy) if stored else (None, None)
        refused = self._current_refusal(current, adopting)
        if refused:
            return Observed("foreign", fingerprint, current.version, owner=owner, detail=refused)
        digest = stored.settings_digest if stored else None
        return Observed(
            ownership, fingerprint, current.version, owner=owner, settings_digest=digest
        )

    def read(self) -> Stored | None:
        operation = "read"
        view = self._calls.get(operation)
        current = None if view is None else self._current(view, operation)
        if current is None:
            return None
        if current.stored is None:
            message = f"unreadable payload: version {current.version} {current.unreadable}"
            raise self._calls.error(ProviderError, operation, message)
        return current.stored

    def publish(self, payload: Payload) -> str:
        operation = "publish"
        seen, self._seen = self._seen, None
        view = seen.view if seen else self._calls.get(operation)
        if view is None:
            view = self._calls.create(operation)
        self._check_owned(view, operation)
        adopting = view.ownership(self.policy) == "unowned"
        current = self._writable_current(view, payload, seen, adopting, operation)
        if current is not None and current.stored and current.stored.same_content(payload):
            if adopting or not current.aliased:
                self._move(view, current.version, None, adopting, operation)
            self._known[current.version] = payload.fingerprint
            return current.version
        replaced = current.version if current else view.current
        left = self._unaliased_holding(view, payload, operation)
        if left is not None:  # a dead run's version of this payload: make it current
            self._known[left] = payload.fingerprint
            self._move(view, left, replaced, adopting, operation)
            return left
        number = self._calls.add(secret_text(payload), operation)
        back = self._calls.access(number, operation)
        stored = None if back is None else payload_of(back[1], number)[0]
        if stored is None or not stored.same_content(payload):
            message = f"version {number} does not hold the payload just written"
            raise self._calls.error(ProviderConflict, operation, message)
        self._known[number] = payload.fingerprint
        self._move(view, number, replaced, adopting, operation)
        return number

    def retire(self, version: str) -> None:
        """Take ``previous`` off ``version`` and disable it (destroy it with
        ``destroy_retired``); never the current version. Already retired: a no-op."""
        operation = "retire"
        self._seen = None
        if not version.isdigit():
            return  # no version of that name: nothing to retire
        view = self._calls.get(operation)
        if view is None or view.current == version:
            return
        self._check_owned(view, operation)
        if view.ownership(self.policy) != "ours":
            return  # adoptable, never published to: no version of it is this policy's
        if view.aliases.get(PREVIOUS) == version:
            aliases = {a: n for a, n in view.aliases.items() if a != PREVIOUS}
            try:
                self._calls.update(view, operation, aliases=aliases)
            except ProviderConflict:
                return  # the secret changed meanwhile: the next run judges it afresh
        self._retire_version(version, operation)

    def discard(self, rotation_id: str) -> None:
        """Retire the versions of ``rotation_id`` that never became current: a run killed
        between ``AddSecretVersion`` and the alias move left them ENABLED, where a reader
        of ``versions/latest`` (or of the number) would find a key about to be deleted."""
        operation = "discard"
        self._seen = None
        view = self._calls.get(operation)
        if view is None or view.ownership(self.policy) != "ours":
            return
        for number in self._unaliased(view, operation):
            stored = self._stored(number, operation)
            if stored and stored.owned_by(self.policy) and stored.rotation_id == rotation_id:
                self._retire_version(number, operation)

    def validate(self) -> None:
        """The secret (if any) is the policy's and its current version is the policy's
        (or adoptable); an absent secret is fine, it is created. Nothing is written."""
        operation = "validate"
        self._seen = None
        view = self._calls.get(operation)
        if view is None:
            return
        self._check_owned(view, operation)
        adopting = view.ownership(self.policy) == "unowned"
        current = self._current(view, operation)
        if current is not None:
            self._check_current(current, adopting, operation)

    # -- ownership ---------------------------------------------------------------------

    def _refusal(self, view: SecretView) -> str | None:
        """Why the secret is not the policy's to write at all, or ``None`` when it is."""
        ownership = view.ownership(self.policy)
        if ownership == "theirs":
            return (
                f"belongs to policy {view.tagged_policy!r} (its labels); refusing to overwrite it"
            )
        if ownership == "unowned" and not self.target.adopt:
            return (
                "was not created by langsmith-bridge (no managed-by label); "
                "set adopt = true to take it over"
            )
        return None

    def _check_owned(self, view: SecretView, operation: str) -> None:
        refused = self._refusal(view)
        if refused:
            raise self._calls.error(OwnershipError, operation, refused)

    def _current_refusal(self, current: _Current, adopting: bool) -> str | None:
        """Why the current version may not be replaced, or ``None`` when it may."""
        owner = current.stored.policy if current.stored else None
        if adopting and owner not in (None, self.policy):
            return f"version {current.version} holds a payload of policy {owner!r}; not adopting it"
        if adopting or owner == self.policy:
            return None
        refused = (
            f"version {current.version}, the current one, was not written by this policy "
            "(changed out of band); refusing to overwrite it"
        )
        if current.unreadable:
            refused += f"; its data is not a payload: {current.unreadable}"
        return refused

    def _check_current(self, current: _Current, adopting: bool, operation: str) -> None:
        refused = self._current_refusal(current, adopting)
        if refused:
            kind = OwnershipError if adopting else ProviderConflict
            raise self._calls.error(kind, operation, refused)

    def _writable_current(
        self,
        view: SecretView,
        payload: Payload,
        seen: _Seen | None,
        adopting: bool,
        operation: str,
    ) -> _Current | None:
        """The current version once it is known replaceable, read only when it may hold
        ``payload`` or its author is unknown: a rotation replaces a version known to hold
        another key. ``None`` when the secret has no version."""
        live = view.current
        current = seen.current if seen and seen.read else None
        if current is None and live is not None:
            known = self._known.get(live)
            if not adopting and known not in (None, payload.fingerprint):
                return _Current(live, None)  # ours, holding another key: replace it
        if current is None and not (seen and seen.read):
            current = self._current(view, operation)
        if current is not None:
            self._check_current(current, adopting, operation)
        return current

    # -- reads and writes ----------------------------------------------------------------

    def _current(self, view: SecretView, operation: str) -> _Current | None:
        """The version consumers read: ``current``, or before any alias the newest
        ENABLED one (``latest``, unless a discard disabled that)."""
        aliased = view.current is not None
        ref = view.current
        if ref is None:
            enabled = self._calls.enabled(operation)
            if not enabled:
                return None
            ref = enabled[0]
        got = self._calls.access(ref, operation)
        if got is None:
            return None
        number, data = got
        stored, unreadable = payload_of(data, number)
        return _Current(number, stored, unreadable, aliased)

    def _unaliased(self, view: SecretView, operation: str) -> list[str]:
        """ENABLED versions newer than ``current`` that no alias names, newest first:
        added by a run that died before it moved ``current``."""
        floor = int(view.current) if view.current else 0
        named = set(view.aliases.values())
        return [n for n in self._calls.enabled(operation) if int(n) > floor and n not in named]

    def _unaliased_holding(self, view: SecretView, payload: Payload, operation: str) -> str | None:
        """An unaliased version already holding ``payload``, which a publish makes current
        instead of adding the same content again (the other would never be retired)."""
        for number in self._unaliased(view, operation):
            stored = self._stored(number, operation)
            if stored is not None and stored.same_content(payload):
                return number
        return None

    def _stored(self, number: str, operation: str) -> Stored | None:
        """Version ``number``'s payload; ``None`` when it is gone, disabled meanwhile, or
        not a payload."""
        try:
            got = self._calls.access(number, operation)
        except ProviderConflict:
            return None  # disabled since it was listed
        return None if got is None else payload_of(got[1], number)[0]

    def _retire_version(self, version: str, operation: str) -> None:
        """Disable ``version`` (and destroy it with ``destroy_retired``)."""
        info = self._calls.state(version, operation)
        if info is None or info.state == State.DESTROYED:
            return
        try:
            if info.state == State.ENABLED:
                info = self._calls.disable(info, operation)
            if self.target.destroy_retired:
                self._calls.destroy(info, operation)
        except ProviderConflict:
            return  # its state changed meanwhile (another retire): nothing left to do

    def _move(
        self,
        view: SecretView,
        number: str,
        replaced: str | None,
        adopting: bool,
        operation: str,
    ) -> None:
        """One etag-checked ``UpdateSecret``: ``current`` to ``number``, ``previous`` to the
        version it replaces, and (adopting) this policy's labels."""
        aliases = {**view.aliases, CURRENT: number}
        if replaced is not None and replaced != number:
            aliases[PREVIOUS] = replaced
        labels = annotations = None
        if adopting:
            labels = {**view.labels, **owner_labels(self.policy)}
            annotations = {**view.annotations, POLICY_ANNOTATION: self.policy}
        try:
            self._calls.update(
                view, operation, aliases=aliases, labels=labels, annotations=annotations
            )
        except ProviderConflict as exc:
            message = (
                f"changed since it was read (etag check failed moving {CURRENT} to version "
                f"{number}); nothing was overwritten"
            )
            raise self._calls.error(ProviderConflict, operation, message) from exc


def secret_text(payload: Payload) -> str:
    """A version's data: the JSON env map the AWS target writes too."""
    return encode(payload.reveal_env(), "json")


def _fixed(client: SecretManagerPort | None) -> Callable[[], SecretManagerPort]:
    assert client is not None
    return lambda: client
