"""One run: reconcile every selected policy once, each under its own lease.

The runner lists LangSmith's service keys once per run (one call for any number of
policies), then works on policies concurrently, each in its own thread with its own lease,
observation, plan and execution. A policy whose lease another runner holds is skipped: it
is being reconciled there.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridge.config import BridgeConfig, Policy, TargetConfig
from bridge.engine.executor import Context, PolicyExecutor, published_settings
from bridge.engine.guarded import Guard, GuardedProvider, GuardedState
from bridge.engine.plan import Observation, Plan, Step, TargetView
from bridge.engine.planner import plan as make_plan
from bridge.engine.ports import KeyService
from bridge.errors import BridgeError, LeaseHeld
from bridge.langsmith import ApiKey, RetryPolicy
from bridge.logs import event
from bridge.marker import Marker
from bridge.payload import settings_digest
from bridge.provider import Known, Provider
from bridge.state import PolicyRecord, StateStore

log = logging.getLogger("bridge.engine")

OpenTarget = Callable[[TargetConfig, str], Provider]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PolicyOutcome:
    """What happened to one policy in one run."""

    policy: str
    plan: Plan | None = None
    done: list[Step] = field(default_factory=list)  # the steps carried out, in order
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "plan": self.plan.to_json() if self.plan else None,
            "done": [step.to_json() | {"description": step.describe()} for step in self.done],
            "error": self.error,
            "skipped": self.skipped,
        }


@dataclass
class RunReport:
    outcomes: list[PolicyOutcome]
    dry_run: bool = False
    listing_error: str | None = None  # LangSmith's key listing failed: the run saw nothing

    @property
    def ok(self) -> bool:
        """Nothing failed: every policy, and the key listing they all depend on."""
        return self.listing_error is None and all(outcome.ok for outcome in self.outcomes)

    @property
    def skipped(self) -> bool:
        """Some policy was left to another runner holding its lease."""
        return any(outcome.skipped for outcome in self.outcomes)

    @property
    def changes(self) -> bool:
        """Some policy has steps planned (or done)."""
        return any((o.plan and o.plan.steps) or o.done for o in self.outcomes)


def in_shard(name: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment of policies to ``INDEX/COUNT`` shards (Kubernetes Indexed Jobs)."""
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(name.encode()) % count == index


class Engine:
    """Reconciles the configured policies against LangSmith, the state and the targets.

    Build it with ``bridge.wiring.build_engine``; every store and state call goes through
    one ``Guard`` (a bound per store, retries under ``retry``).
    """

    def __init__(
        self,
        config: BridgeConfig,
        keys: KeyService,
        store: StateStore,
        open_target: OpenTarget,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.guard = Guard(config.run.per_store_concurrency, retry or RetryPolicy(), sleep)
        self.store = GuardedState(store, self.guard)
        self._open_target = open_target
        self._on_close = on_close
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.ctx = Context(
            keys=keys,
            store=self.store,
            clock=clock,
            sleep=sleep,
            instance=config.langsmith.instance,
            endpoint=config.langsmith.consumer_endpoint,
            verify_attempts=config.run.verify_attempts,
            verify_delay=config.run.verify_delay,
        )

    def close(self) -> None:
        """Release the LangSmith connection pool, the state store and the store connections."""
        self.keys.close()
        self.store.close()
        if self._on_close is not None:
            self._on_close()

    def open_target(self, target: TargetConfig, policy: str) -> Provider:
        """The guarded adapter of one target."""
        return GuardedProvider(self._open_target(target, policy), self.guard)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def select(
        self, names: Iterable[str] | None = None, shard: tuple[int, int] | None = None
    ) -> list[Policy]:
        """The configured policies named (all when ``names`` is empty) and in ``shard``."""
        wanted = set(names or ())
        unknown = wanted - {policy.name for policy in self.config.policy}
        if unknown:
            raise BridgeError(f"no such policy: {', '.join(sorted(unknown))}")
        return [
            p
            for p in self.config.policy
            if (not wanted or p.name in wanted) and in_shard(p.name, shard)
        ]

    def run(
        self,
        policies: list[Policy],
        *,
        dry_run: bool = False,
        force: frozenset[str] = frozenset(),
    ) -> RunReport:
        """Reconcile ``policies`` once; with ``dry_run`` only observe and plan."""
        keys, listed_at, listing_error = self._list_keys()
        workers = min(self.config.run.concurrency, max(1, len(policies)))

        def one(policy: Policy) -> PolicyOutcome:
            return self._reconcile(policy, keys, listed_at, dry_run, policy.name in force)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="policy") as pool:
            outcomes = list(pool.map(one, policies))
        return RunReport(outcomes, dry_run=dry_run, listing_error=listing_error)

    def _list_keys(
        self,
    ) -> tuple[dict[str, dict[str, ApiKey]] | None, datetime | None, str | None]:
        """This instance's marked keys, grouped by policy, and when they were listed; or,
        if LangSmith failed, ``None``s and the error."""
        listed_at = self.clock()
        try:
            listing = self.keys.list_service_keys()
        except BridgeError as exc:
            event(log, "list_keys_failed", level=logging.ERROR, error=exc)
            return None, None, str(exc)
        grouped: dict[str, dict[str, ApiKey]] = {}
        for key in listing:
            marker = Marker.parse(key.description)
            if marker and marker.instance == self.config.langsmith.instance:
                grouped.setdefault(marker.policy, {})[key.id] = key
        return grouped, listed_at, None

    def _reconcile(
        self,
        policy: Policy,
        keys: Mapping[str, Mapping[str, ApiKey]] | None,
        listed_at: datetime | None,
        dry_run: bool,
        force: bool,
    ) -> PolicyOutcome:
        outcome = PolicyOutcome(policy.name)
        try:
            with ExitStack() as stack:
                if not dry_run:
                    stack.enter_context(
                        self.store.lease(policy.name, self.owner, self.config.run.lease_ttl)
                    )
                providers = self.providers(policy)
                record = self.store.load(policy.name)
                observation = Observation(
                    now=self.clock(),
                    targets=observe_targets(providers, known_versions(record)),
                    acks=self.store.acks(policy.name, policy.consumers),
                    keys=None if keys is None else keys.get(policy.name, {}),
                    keys_listed_at=listed_at,
                    settings_digest=settings_digest(
                        published_settings(policy, self.config.langsmith.consumer_endpoint)
                    ),
                )
                outcome.plan = make_plan(policy, record, observation, force=force)
                if outcome.plan.blocked:
                    outcome.error = outcome.plan.blocked
                elif not dry_run:
                    executor = PolicyExecutor(self.ctx, policy, record, providers)
                    for step in outcome.plan.steps:
                        executor.execute(step)
                        outcome.done.append(step)
        except LeaseHeld as exc:
            outcome.skipped = str(exc)
        except BridgeError as exc:
            outcome.error = str(exc)
            event(log, "policy_failed", level=logging.ERROR, policy=policy.name, error=exc)
        return outcome

    def providers(self, policy: Policy) -> dict[str, Provider]:
        """The policy's targets, keyed by target id, on the shared store connections."""
        return {t.target_id: self.open_target(t, policy.name) for t in policy.target}


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
            )
        )
    return tuple(views)
