"""Issue 7, item 11: what was done, when, why and by whom; and a key expiring before the
next run fails ``status --check``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bridge.cli import EXIT_OK
from bridge.engine.status import PolicyStatus, status_problems
from tests.integration.conftest import policy_toml


def test_history_shows_rotations_revocations_reasons_and_actors(make_bridge: Any) -> None:
    bridge = make_bridge(policy_toml("p", ack="grace"))
    bridge.run()
    code, _, _ = bridge.cli("rotate", "p", "--reason", "key seen in a CI log")
    assert code == EXIT_OK
    bridge.run()  # the grace gate opens: the first key is revoked

    code, out, _ = bridge.cli("history", "p", "--json")

    assert code == EXIT_OK
    data = json.loads(out)
    actions = [item["action"] for item in data["history"]]
    assert actions == ["rotated", "rotated", "revoked"]
    assert "key seen in a CI log" in data["history"][1]["reason"]
    assert all(item["actor"] and item["short_key"] for item in data["history"])
    assert data["last_success_at"] and data["last_error"] is None
    code, text, _ = bridge.cli("history", "p")
    assert "key seen in a CI log" in text and "revoked" in text


def test_a_failed_run_is_recorded_with_its_error(make_bridge: Any) -> None:
    bridge = make_bridge(policy_toml("p", ack="grace"))
    bridge.run()
    first = bridge.store().load("p")
    (bridge.root / "out/p.env").write_text("LANGSMITH_API_KEY=hand-written\n")  # foreign now

    with bridge.engine() as engine:
        assert not engine.run(engine.select()).ok

    record = bridge.store().load("p")
    assert record.last_error and "refusing to touch it" in record.last_error
    assert record.last_success_at == first.last_success_at
    assert record.last_run_at and first.last_run_at and record.last_run_at > first.last_run_at


def test_status_flags_a_key_expiring_before_the_next_run(make_bridge: Any) -> None:
    bridge = make_bridge(
        policy_toml("p", ack="grace", rotate_every="1h", key_ttl="3h"), run='every = "1h"'
    )
    bridge.run()
    assert bridge.status("p")["expiring"] == []

    # No run for a while (the schedule stopped): the key is now within one run of expiry.
    bridge.emu.clock.advance(timedelta(hours=2, minutes=56))
    status = bridge.status("p")

    short = status["current"]["short_key"]
    assert status["expiring"] == [short]
    entry = PolicyStatus(**{**status_fields(status), "expiring": (short,)})
    assert f"p: key {short} expires before the next run" in status_problems(entry)


def status_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Enough of a ``PolicyStatus`` for ``status_problems``."""
    return {
        "name": data["name"],
        "current": object(),
        "pending": (),
        "superseded": (),
        "targets": (),
        "acks": (),
        "next_rotation_at": None,
        "next_run_at": None,
        "expiring": (),
        "last_run_at": None,
        "last_success_at": None,
        "last_error": None,
        "history": (),
    }
