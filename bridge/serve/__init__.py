"""``langsmith-bridge serve``: the bridge as a long-running service.

* ``/``: the status page (every policy, its current and superseded keys, who is still
  waiting, overdue gates, blocked or stale targets, next rotation, expiry, recent history);
* ``/v1/status``: the same as JSON (``status --json``);
* ``/metrics``: Prometheus;
* ``POST /v1/ack``: a consumer acknowledges with its own key (``bridge.serve.http_ack``);
* ``/healthz``, ``/readyz``: the probes.

With ``--every`` it also reconciles on that schedule (a Deployment instead of a CronJob;
the lease keeps a second replica harmless). It binds to loopback unless told otherwise,
and beyond loopback only with a bearer token for the read-only endpoints.

Modules: ``app`` (routes), ``snapshot`` (statuses taken in the background), ``page`` (the
HTML), ``metrics``, ``http_ack``, ``loop`` (the schedule).
"""

from __future__ import annotations

import logging
from pathlib import Path

from bridge.config import load_config, parse_duration
from bridge.engine.runner import utcnow
from bridge.errors import ConfigError
from bridge.secrets import Secret
from bridge.serve.app import Service, create_app
from bridge.serve.loop import Loop
from bridge.serve.metrics import registry_for
from bridge.serve.snapshot import Watcher
from bridge.wiring import build_engine, connections_for, open_state, open_target

log = logging.getLogger("bridge.serve")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
REFRESH_S = 15.0  # how often the snapshot behind the page and /metrics is taken


def serve(
    config_path: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    every: str | None = None,
    token_file: str | None = None,
) -> int:
    """Serve until interrupted (SIGINT/SIGTERM); returns the exit code.

    Raises:
        ConfigError: a bad config, a loop slower than ``run.every``, an unreadable token
            file, or a non-loopback ``host`` without one.
    """
    import uvicorn

    config = load_config(config_path)
    token = read_token(token_file) if token_file else None
    if host not in LOOPBACK and token is None:
        raise ConfigError(
            f"binding to {host} exposes the status page and /metrics: give --token-file"
        )
    interval = parse_duration(every) if every else None
    if interval is not None and not (
        0 < interval.total_seconds() <= config.run.every.total_seconds()
    ):
        raise ConfigError(
            f"--every {every} must be above 0 and at most run.every "
            f"({config.run.every}), which the planner counts on to rotate before expiry"
        )
    connections = connections_for(config)
    store = open_state(config.state, connections)
    watcher = Watcher(config, store, lambda t, p: open_target(t, p, connections), utcnow, REFRESH_S)
    registry, run_metrics = registry_for(lambda: watcher.latest, utcnow)
    engine = build_engine(config, connections=connections) if interval else None
    loop = (
        Loop(engine, interval.total_seconds(), run_metrics, watcher.poke)
        if engine and interval
        else None
    )
    app = create_app(Service(config, store, watcher, registry, utcnow, token=token))
    watcher.start()
    if loop is not None:
        loop.start()
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, server_header=False)
    finally:
        if loop is not None:
            loop.stop()
        watcher.stop()
        if engine is not None:
            engine.close()
        store.close()
        connections.close()
    return 0


def read_token(path: str) -> Secret:
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror}") from None
    if len(text) < 16:
        raise ConfigError(f"the token in {path} is shorter than 16 characters")
    return Secret(text)


__all__ = ["Service", "create_app", "read_token", "serve"]
