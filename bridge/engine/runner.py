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
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridge.config import BridgeConfig, Policy, TargetConfig
from bridge.engine.bounded import StoreLimits
from bridge.engine.executor import Context, PolicyExecutor
from bridge.engine.marker import Marker
from bridge.engine.plan import Observation, Plan, TargetView
from bridge.engine.planner import plan as make_plan
from bridge.engine.ports import KeyService
from bridge.errors import BridgeError, LeaseHeld
from bridge.langsmith import ApiKey
from bridge.logs import event
from bridge.provider import Provider
from bridge.state import StateStore

log = logging.getLogger("bridge.engine")

OpenTarget = Callable[[TargetConfig, str], Provider]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class PolicyOutcome:
    """What happened to one policy in one run."""

    policy: str
    plan: Plan | None = None
    done: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "plan": self.plan.to_json() if self.plan else None,
            "done": self.done,
            "error": self.error,
            "skipped": self.skipped,
        }


@dataclass
class RunReport:
    outcomes: list[PolicyOutcome]
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.outcomes)


def in_shard(name: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment of policies to ``INDEX/COUNT`` shards (Kubernetes Indexed Jobs)."""
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(name.encode()) % count == index


class Engine:
    """Reconciles the configured policies against LangSmith, the state and the targets."""

    def __init__(
        self,
        config: BridgeConfig,
        keys: KeyService,
        store: StateStore,
        open_target: OpenTarget,
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.keys = keys
        self.store = store
        self.open_target = StoreLimits(config.run.per_store_concurrency).wrap(open_target)
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.ctx = Context(
            keys=keys,
            store=store,
            clock=clock,
            sleep=sleep,
            instance=config.langsmith.instance,
            endpoint=config.langsmith.consumer_endpoint,
            verify_attempts=config.run.verify_attempts,
            verify_delay=config.run.verify_delay,
        )

    def close(self) -> None:
        """Release the LangSmith connection pool and the state store."""
        self.keys.close()
        self.store.close()

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
        keys, listed_at = self._list_keys()
        workers = min(self.config.run.concurrency, max(1, len(policies)))

        def one(policy: Policy) -> PolicyOutcome:
            return self._reconcile(policy, keys, listed_at, dry_run, policy.name in force)

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="policy") as pool:
            outcomes = list(pool.map(one, policies))
        return RunReport(outcomes, dry_run=dry_run)

    def _list_keys(self) -> tuple[dict[str, dict[str, ApiKey]] | None, datetime | None]:
        """This instance's marked keys, grouped by policy; ``None`` if LangSmith failed."""
        listed_at = self.clock()
        try:
            listing = self.keys.list_service_keys()
        except BridgeError as exc:
            event(log, "list_keys_failed", level=logging.ERROR, error=exc)
            return None, None
        grouped: dict[str, dict[str, ApiKey]] = {}
        for key in listing:
            marker = Marker.parse(key.description)
            if marker and marker.instance == self.config.langsmith.instance:
                grouped.setdefault(marker.policy, {})[key.id] = key
        return grouped, listed_at

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
                providers = stack.enter_context(self.providers(policy))
                record = self.store.load(policy.name)
                observation = Observation(
                    now=self.clock(),
                    targets=observe_targets(providers, policy.name),
                    acks=self.store.acks(policy.name, policy.consumers),
                    keys=None if keys is None else keys.get(policy.name, {}),
                    keys_listed_at=listed_at,
                )
                outcome.plan = make_plan(policy, record, observation, force=force)
                if outcome.plan.blocked:
                    outcome.error = outcome.plan.blocked
                elif keys is None and outcome.plan.due:
                    outcome.error = "LangSmith key listing failed; not acting blind"
                elif not dry_run:
                    executor = PolicyExecutor(self.ctx, policy, record, providers)
                    for step in outcome.plan.steps:
                        executor.execute(step)
                        outcome.done.append(step.describe())
        except LeaseHeld as exc:
            outcome.skipped = str(exc)
        except BridgeError as exc:
            outcome.error = str(exc)
            event(log, "policy_failed", level=logging.ERROR, policy=policy.name, error=exc)
        return outcome

    @contextmanager
    def providers(self, policy: Policy) -> Iterator[dict[str, Provider]]:
        """Open the policy's targets for the ``with`` block, keyed by target id."""
        opened: dict[str, Provider] = {}
        try:
            for target in policy.target:
                opened[target.target_id] = self.open_target(target, policy.name)
            yield opened
        finally:
            for provider in opened.values():
                provider.close()


def observe_targets(providers: Mapping[str, Provider], policy: str) -> tuple[TargetView, ...]:
    """Read every target; a failure is recorded on its view, never raised."""
    views = []
    for target_id, provider in providers.items():
        try:
            stored = provider.read()
        except BridgeError as exc:
            views.append(TargetView(target_id, provider.name, provider.reference, error=str(exc)))
            continue
        views.append(
            TargetView(
                target_id,
                provider.name,
                provider.reference,
                fingerprint=stored.fingerprint if stored else None,
                exists=stored is not None,
                owned=stored is None or stored.owned_by(policy),
            )
        )
    return tuple(views)
