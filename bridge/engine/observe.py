"""Observing one policy: its targets, its acks and LangSmith's listing, read once per run,
into the ``Observation`` its plan (and its ``status``) is a pure function of.

Metadata serves most of it: a target still on a version the state recorded holds what the
bridge wrote. A target's key is read back only to check an ack's proof, or to learn the
rotation of a key the record does not know (the state was lost).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.config import BridgeConfig, Policy
from bridge.engine.ack import proven
from bridge.engine.executor import published_settings
from bridge.engine.plan import Observation, TargetView
from bridge.errors import BridgeError
from bridge.langsmith import ApiKey, KeyListing
from bridge.logs import event
from bridge.marker import Marker
from bridge.payload import settings_digest
from bridge.provider import Known, Provider
from bridge.secrets import Secret
from bridge.state import Ack, Phase, PolicyRecord

log = logging.getLogger("bridge.engine")


def observe_policy(
    config: BridgeConfig,
    policy: Policy,
    record: PolicyRecord,
    providers: Mapping[str, Provider],
    acks: Iterable[Ack],
    listing: Listing | None,
    *,
    now: datetime,
    instance: str,
    prove_acks: bool = False,
) -> Observation:
    """What a policy's plan (and its ``status``) depends on, from its targets, its acks and
    the listing. A target's key is read back only to check an ack's proof, or to learn the
    rotation of a key the record does not know (a lost state); metadata serves the rest.

    Proofs are checked when a gate needs them, or always with ``prove_acks`` (``status``).
    """
    views = observe_targets(providers, known_versions(record))
    reader = _KeyReader(providers, views)
    known = {g.fingerprint for g in record.generations if g.fingerprint}
    views = tuple(
        reader.with_rotation(view) if view.fingerprint not in known else view for view in views
    )
    acks = tuple(acks)
    checked = frozenset[tuple[str, str]]()
    readable: frozenset[str] = frozenset()
    if prove_acks or ("explicit" in policy.ack and record.by_phase(Phase.SUPERSEDED)):
        live = {g.fingerprint for g in record.live() if g.phase is not Phase.SUPERSEDED}
        keys = reader.keys({ack.fingerprint for ack in acks if ack.fingerprint in live})
        checked, readable = proven(policy.name, acks, keys), frozenset(keys)
    return Observation(
        now=now,
        targets=views,
        acks=acks,
        proven=checked,
        provable=readable,
        keys=None if listing is None else listing.for_policy(policy.name, record),
        keys_listed_at=None if listing is None else listing.listed_at,
        keys_served_at=None if listing is None else listing.served_at,
        settings_digest=settings_digest(
            published_settings(policy, config.langsmith.consumer_endpoint)
        ),
        instance=instance,
        run_every=config.run.every,
        orphan_age=max(timedelta(hours=1), 4 * config.run.lease_ttl),
    )


@dataclass(frozen=True)
class Listing:
    """One listing of LangSmith's service keys, indexed for every policy of a run."""

    by_policy: Mapping[str, Mapping[str, ApiKey]]  # by the policy their marker names
    by_id: Mapping[str, ApiKey]
    listed_at: datetime  # the bridge's clock
    served_at: datetime | None  # LangSmith's (its Date header), when it sent one

    @classmethod
    def of(cls, keys: KeyListing, listed_at: datetime) -> Listing:
        by_policy: dict[str, dict[str, ApiKey]] = {}
        by_id: dict[str, ApiKey] = {}
        for key in keys:
            by_id[key.id] = key
            marker = Marker.parse(key.description)
            if marker:
                by_policy.setdefault(marker.policy, {})[key.id] = key
        return cls(by_policy, by_id, listed_at, keys.served_at)

    def for_policy(self, policy: str, record: PolicyRecord) -> dict[str, ApiKey]:
        """Keys marked for ``policy`` by any deployment, and the keys its record names
        (an older version's mark, or another instance's, still counts)."""
        keys = dict(self.by_policy.get(policy, {}))
        for generation in record.generations:
            if generation.key_id and generation.key_id in self.by_id:
                keys[generation.key_id] = self.by_id[generation.key_id]
        return keys


class _KeyReader:
    """Reads a policy's targets back, at most once each per run, for what metadata cannot
    tell: the rotation an unknown key belongs to, and the keys acks must prove."""

    def __init__(self, providers: Mapping[str, Provider], views: Iterable[TargetView]) -> None:
        self._providers = providers
        self._views = list(views)
        self._read: dict[str, tuple[Secret | None, str | None]] = {}

    def _get(self, target_id: str) -> tuple[Secret | None, str | None]:
        if target_id not in self._read:
            try:
                stored = self._providers[target_id].read()
            except BridgeError as exc:
                event(log, "read_back_failed", level=logging.WARNING, target=target_id, error=exc)
                stored = None
            self._read[target_id] = (stored.api_key, stored.rotation_id) if stored else (None, None)
        return self._read[target_id]

    def with_rotation(self, view: TargetView) -> TargetView:
        if view.ownership != "ours" or not view.fingerprint:
            return view
        key, rotation = self._get(view.target_id)
        if key is None or key.fingerprint != view.fingerprint:
            return view
        return dataclasses.replace(view, rotation_id=rotation)

    def keys(self, fingerprints: Iterable[str]) -> dict[str, Secret]:
        found: dict[str, Secret] = {}
        for fingerprint in fingerprints:
            for view in self._views:
                if view.fingerprint == fingerprint:
                    key, _ = self._get(view.target_id)
                    if key is not None and key.fingerprint == fingerprint:
                        found[fingerprint] = key
                        break
        return found


def known_versions(record: PolicyRecord) -> dict[str, dict[str, str]]:
    """Per target id, the versions live generations wrote there, with their fingerprints.

    A target still on one of them holds what the bridge wrote (a version's content never
    changes), so observing it needs only the store's metadata.
    """
    known: dict[str, dict[str, str]] = {}
    for generation in record.live():
        if generation.fingerprint:
            for target_id, version in generation.targets.items():
                known.setdefault(target_id, {})[version] = generation.fingerprint
    return known


def observe_targets(
    providers: Mapping[str, Provider], known: Mapping[str, Known] | None = None
) -> tuple[TargetView, ...]:
    """Observe every target; a failure is recorded on its view, never raised."""
    views = []
    for target_id, provider in providers.items():
        try:
            seen = provider.observe((known or {}).get(target_id, {}))
        except BridgeError as exc:
            views.append(TargetView(target_id, provider.name, provider.reference, error=str(exc)))
            continue
        views.append(
            TargetView(
                target_id,
                provider.name,
                provider.reference,
                fingerprint=seen.fingerprint,
                ownership=seen.ownership,
                detail=seen.detail,
                settings_digest=seen.settings_digest,
                version=seen.version,
            )
        )
    return tuple(views)
