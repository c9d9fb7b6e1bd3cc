"""The Pub/Sub push entry for Secret Manager's SECRET_ROTATE events: ``secret_rotate``.

Secret Manager publishes SECRET_ROTATE to a secret's topics on its rotation schedule (the
bridge sets one on the secrets it creates: ``rotation_topic``, ``rotation_period``). A push
subscription POSTs each message here with an OIDC token, and the policy whose target is that
secret is rotated now, once: a redelivered message finds the generation minted for it
(``bridge.engine.requests``) and rotates nothing more.

It runs under functions-framework, on Cloud Run or Cloud Functions:
``langsmith-bridge gcp-push`` (or ``functions-framework --source
bridge/gcp_push/main.py --target secret_rotate``), with the configuration at
``LANGSMITH_BRIDGE_CONFIG`` and its ``[pubsub]`` section naming the audience and the push
identity.

Pub/Sub retries every answer but 2xx, with backoff, so the answer says whether a retry can
help:

* 401: the token is missing, forged, expired, or for another audience or identity (the
  reason is logged; the caller learns nothing about which check failed).
* 400 / 413: not a push envelope, or a body over 64 KiB.
* 200 ``rotated`` / ``duplicate``: done, now or before.
* 200 ``ignored``: another event type, or a secret no policy writes (logged).
* 200 ``failed``: a failure no retry can fix (a foreign target, a refused config): logged
  as an error and recorded as the policy's last run, for ``status --check`` and alerts.
* 503: worth retrying: another runner holds the policy, an outage, a lost race, or the
  policy first had a dead run's work to finish.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.config import BridgeConfig, Policy, load_config
from bridge.config.gcp import POLICY_ANNOTATION, GcpTarget
from bridge.config.load import ENV_VAR
from bridge.engine import Engine, RotateRequest, RunReport, served_by
from bridge.errors import BridgeError, ConfigError, RequestRefused
from bridge.gcp_push.messages import SECRET_ROTATE, MalformedPush, SecretEvent, parse_push
from bridge.logs import configure, event
from bridge.wiring import Connections, build_engine, push_verifier, store_options

log = logging.getLogger("bridge.gcp_push")
CONFIG_ENV = ENV_VAR
MAX_BODY = 64 * 1024  # a Secret resource as JSON, base64'd, is a few KiB


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Runtime:
    """What an instance keeps between requests: the config, one engine on one set of
    connections, the token check, and a lock per policy (concurrent deliveries of one
    message on one instance wait for each other instead of failing over the lease)."""

    config: BridgeConfig
    engine: Engine
    verify: Callable[[str | None], str]
    locks: dict[str, threading.Lock] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def lock(self, policy: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(policy, threading.Lock())


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def secret_rotate(request: Any) -> tuple[str, int, dict[str, str]]:
    """The functions-framework (Flask) function: one push request, one JSON answer."""
    if request.method != "POST":
        reply = Reply(405, {"error": "POST a Pub/Sub push"}, {"Allow": "POST"})
    else:
        body = request.stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            reply = Reply(413, {"error": f"the body is over {MAX_BODY} bytes"})
        else:
            reply = handle(request.headers.get("Authorization"), body)
    headers = {"Content-Type": "application/json", **reply.headers}
    return json.dumps(reply.body), reply.status, headers


def handle(authorization: str | None, body: bytes, runtime: Runtime | None = None) -> Reply:
    """Authenticate a push, read its event, rotate the policy it names: the answer."""
    try:
        runtime = runtime or get_runtime()
    except BridgeError as exc:
        event(log, "push_config_failed", level=logging.ERROR, error=exc)
        return Reply(500, {"error": "the bridge's configuration cannot be loaded"})
    try:
        runtime.verify(authorization)
    except RequestRefused as exc:
        event(log, "push_refused", level=logging.WARNING, reason=str(exc))
        return Reply(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
    except BridgeError as exc:  # Google's certificates cannot be fetched now
        event(log, "push_unverifiable", level=logging.ERROR, error=exc)
        return Reply(503, {"error": "the token cannot be checked now"})
    try:
        message = parse_push(body)
    except MalformedPush as exc:
        event(log, "push_malformed", level=logging.WARNING, reason=str(exc))
        return Reply(400, {"error": str(exc)})
    if message.event_type != SECRET_ROTATE:
        return Reply(200, {"outcome": "ignored", "event": message.event_type})
    policy = route(runtime.config, message)
    if policy is None:
        event(log, "push_unrouted", level=logging.WARNING, secret=message.secret)
        return Reply(200, {"outcome": "ignored", "reason": f"no policy writes {message.secret}"})
    return rotate(runtime, policy, message)


def route(config: BridgeConfig, message: SecretEvent) -> Policy | None:
    """The policy whose Secret Manager target is the event's secret.

    Secret Manager names the project by number, the config usually by id, so a numbered
    event matches on the secret id; two such policies are told apart by the exact policy
    name the bridge annotates its secrets with."""
    matches = [
        policy
        for policy in config.policy
        for target in policy.target
        if isinstance(target, GcpTarget)
        and target.secret == message.secret_id
        and (target.project == message.project or message.project.isdigit())
    ]
    if len(matches) > 1:
        named = message.annotations.get(POLICY_ANNOTATION)
        matches = [p for p in matches if p.name == named]
    return matches[0] if len(matches) == 1 else None


def rotate(runtime: Runtime, policy: Policy, message: SecretEvent) -> Reply:
    request = RotateRequest(
        id=f"pubsub:{message.message_id}",
        made_at=message.published_at,
        reason=f"SECRET_ROTATE (Pub/Sub message {message.message_id})",
    )
    engine = runtime.engine
    with runtime.lock(policy.name):
        report = engine.run(
            [policy], force=frozenset({policy.name}), reason=request.reason, request=request
        )
        reply = _answer(engine, report, request)
    event(
        log,
        "push_handled",
        level=logging.INFO if reply.status == 200 else logging.WARNING,
        policy=policy.name,
        message_id=message.message_id,
        status=reply.status,
        **{k: v for k, v in reply.body.items() if k != "policy"},
    )
    return reply


def _answer(engine: Engine, report: RunReport, request: RotateRequest) -> Reply:
    outcome = report.outcomes[0]
    name = outcome.policy
    if outcome.skipped:
        return Reply(503, {"policy": name, "retry": "another runner holds the policy"})
    if report.listing_error:
        return Reply(503, {"policy": name, "retry": "LangSmith's key listing failed"})
    if outcome.error:
        if outcome.retryable:
            return Reply(503, {"policy": name, "retry": outcome.error})
        return Reply(200, {"policy": name, "outcome": "failed", "error": outcome.error})
    if outcome.answered_by:
        return Reply(200, {"policy": name, "outcome": "duplicate", "rotation": outcome.answered_by})
    try:
        served = served_by(engine.store.load(name), request)
    except BridgeError as exc:
        return Reply(503, {"policy": name, "retry": f"the state cannot be read: {exc}"})
    if served is None:
        return Reply(503, {"policy": name, "retry": "a dead run's rotation was finished first"})
    return Reply(200, {"policy": name, "outcome": "rotated", "rotation": served.rotation_id})


def get_runtime() -> Runtime:
    """The instance's runtime, built on first use from ``LANGSMITH_BRIDGE_CONFIG``."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            configure(os.environ.get("LANGSMITH_BRIDGE_LOG_LEVEL", "info"), "json")
            config = load_config(Path(os.environ.get(CONFIG_ENV, "bridge.toml")))
            if config.pubsub is None:
                raise ConfigError(
                    "the config has no [pubsub] section: who may push (audience, "
                    "service_account) must be configured"
                )
            connections = Connections()
            connections.configure(store_options(config))
            engine = build_engine(config, connections=connections)
            _runtime = Runtime(config, engine, push_verifier(config.pubsub, connections))
        return _runtime


def reset_runtime() -> None:
    """Forget the cached runtime (tests; a config change in place)."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None:
            _runtime.engine.close()
        _runtime = None


__all__ = ["Reply", "Runtime", "handle", "reset_runtime", "route", "secret_rotate"]
