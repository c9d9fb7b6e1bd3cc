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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from bridge.config import BridgeConfig, Policy, TargetConfig
from bridge.engine.alerts import Announcer, problems
from bridge.engine.executor import Context, PolicyExecutor
from bridge.engine.guarded import Guard, GuardedProvider, GuardedState
from bridge.engine.observe import Listing, observe_policy
from bridge.engine.plan import Observation, Plan, Step
from bridge.engine.planner import plan as make_plan
from bridge.engine.ports import KeyService
from bridge.engine.requests import RotateRequest, served_by
from bridge.engine.status import PolicyStatus, policy_status
from bridge.errors import BridgeError, LeaseHeld, LeaseLost, StateConflict
from bridge.langsmith import RetryPolicy
from bridge.logs import event
from bridge.notify import Notifier
from bridge.provider import Provider
from bridge.secrets import redact
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
    retryable: bool = False  # the error is one a later try may not meet (an outage, a race)
    answered_by: str | None = None  # the generation that had already served the request
    status: PolicyStatus | None = None  # after the run, for alerts and metrics

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
            "answered_by": self.answered_by,
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
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        self.config = config
        self.keys = keys
        self.guard = Guard(config.run.per_store_concurrency, retry or RetryPolicy(), sleep)
        self.store = GuardedState(store, self.guard)
        self._open_target = open_target
        self._on_close = on_close
        self.clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._sleep = sleep
        repeat = config.alerts.repeat_every
        self._announcer = Announcer(self.store, notifiers, clock, repeat) if notifiers else None

    @cached_property
    def instance(self) -> str:
        """This deployment's mark on its keys: the configured one, else the state's id."""
        return self.config.langsmith.instance or self.store.deployment_id()

    def _instance_for(self, dry_run: bool) -> str:
        """The mark, without creating the state's id on a dry run of a state that has no
        record yet (a dry run writes nothing; with no record, nothing is ours yet)."""
        if dry_run and not self.config.langsmith.instance and not self.store.policies():
            return "(none yet)"
        return self.instance

    @cached_property
    def ctx(self) -> Context:
        return Context(
            keys=self.keys,
            store=self.store,
            clock=self.clock,
            sleep=self._sleep,
            instance=self.instance,
            endpoint=self.config.langsmith.consumer_endpoint,
            verify_attempts=self.config.run.verify_attempts,
            verify_delay=self.config.run.verify_delay,
            actor=self.owner,
            call_margin=self.config.langsmith.worst_call,
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
        reason: str | None = None,
        request: RotateRequest | None = None,
    ) -> RunReport:
        """Reconcile ``policies`` once; with ``dry_run`` only observe and plan.

        ``force`` names policies to rotate now (for ``reason``); with ``request`` a policy
        the request was already served for is not rotated again (``answered_by``)."""
        listing, listing_error = self._list_keys()
        workers = min(self.config.run.concurrency, max(1, len(policies)))
        instance = self._instance_for(dry_run)  # resolved once, before the threads share it

        def one(policy: Policy) -> PolicyOutcome:
            wanted = policy.name in force
            return self._reconcile(
                policy,
                listing,
                instance,
                dry_run,
                wanted,
                reason if wanted else None,
                request if wanted else None,
            )

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="policy") as pool:
            outcomes = list(pool.map(one, policies))
        if not dry_run and self._announcer is not None:
            for outcome in outcomes:
                if not outcome.skipped:
                    found = problems(outcome.status, outcome.policy, outcome.error)
                    self._announcer.announce(outcome.policy, found)
        return RunReport(outcomes, dry_run=dry_run, listing_error=listing_error)

    def _list_keys(self) -> tuple[Listing | None, str | None]:
        """LangSmith's keys, once for the whole run; or ``None`` and why the listing failed."""
        listed_at = self.clock()
        try:
            keys = self.keys.list_service_keys()
        except BridgeError as exc:
            event(log, "list_keys_failed", level=logging.ERROR, error=exc)
            return None, str(exc)
        return Listing.of(keys, listed_at), None

    def _reconcile(
        self,
        policy: Policy,
        listing: Listing | None,
        instance: str,
        dry_run: bool,
        force: bool,
        reason: str | None,
        request: RotateRequest | None = None,
    ) -> PolicyOutcome:
        outcome = PolicyOutcome(policy.name)
        seen: tuple[PolicyRecord, Observation] | None = None
        executor: PolicyExecutor | None = None
        try:
            with ExitStack() as stack:
                lease = None
                if not dry_run:
                    ttl = self.config.run.lease_ttl
                    lease = stack.enter_context(self.store.lease(policy.name, self.owner, ttl))
                providers = self.providers(policy)
                record = self.store.load(policy.name)
                answered = served_by(record, request) if request else None
                if answered is not None:  # read under the lease: no twin can be minting
                    force, request = False, None
                    outcome.answered_by = answered.rotation_id
                observation = observe_policy(
                    self.config,
                    policy,
                    record,
                    providers,
                    self.store.acks(policy.name, policy.consumers),
                    listing,
                    now=self.clock(),
                    instance=instance,
                )
                seen = (record, observation)
                outcome.plan = make_plan(policy, record, observation, force=force)
                if outcome.plan.blocked:
                    outcome.error = outcome.plan.blocked
                elif not dry_run:
                    executor = PolicyExecutor(
                        self.ctx,
                        policy,
                        record,
                        providers,
                        lease=lease,
                        reason=reason,
                        request=request.id if request else None,
                    )
                    for step in outcome.plan.steps:
                        executor.execute(step)
                        outcome.done.append(step)
                if not dry_run:
                    self.store.record_run(policy.name, self.clock(), outcome.error)
        except LeaseHeld as exc:
            outcome.skipped = str(exc)
        except BridgeError as exc:
            outcome.error = str(exc)
            outcome.retryable = exc.retryable or isinstance(exc, StateConflict | LeaseLost)
            event(log, "policy_failed", level=logging.ERROR, policy=policy.name, error=exc)
            if not dry_run:
                self._note_failure(policy.name, outcome.error)
        except Exception as exc:  # a bug, or input no check foresaw: never the others' run
            outcome.error = f"internal error ({type(exc).__name__}): {redact(str(exc))}"
            log.exception("policy %s failed unexpectedly", policy.name)  # redacted by the filter
            if not dry_run:
                self._note_failure(policy.name, outcome.error)
        if seen is not None:
            record, observation = seen
            final = executor.record if executor is not None else record
            outcome.status = policy_status(policy, final, observation)
        return outcome

    def _note_failure(self, policy: str, error: str) -> None:
        try:
            self.store.record_run(policy, self.clock(), error)
        except BridgeError as exc:  # the state is what failed, most likely; say so once
            event(log, "record_run_failed", level=logging.WARNING, policy=policy, error=exc)

    def providers(self, policy: Policy) -> dict[str, Provider]:
        """The policy's targets, keyed by target id, on the shared store connections."""
        return {t.target_id: self.open_target(t, policy.name) for t in policy.target}
