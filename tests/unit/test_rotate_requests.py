"""Outside rotation requests (SECRET_ROTATE) are served once: a redelivered request finds
the generation minted for it, or any minted since it was made, and rotates nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.config import BridgeConfig
from bridge.engine import Engine, RotateRequest, served_by
from bridge.engine.plan import Rotate
from bridge.state import Generation, Phase, PolicyRecord
from providers import Connections
from tests.support.fakes import FakeKeyService, MemoryState

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def generation(rotation_id: str, started: datetime, **extra: object) -> Generation:
    fields: dict[str, object] = {"phase": Phase.CURRENT, **extra}
    return Generation(rotation_id=rotation_id, started_at=started, **fields)  # type: ignore[arg-type]


def request(made_at: datetime, id: str = "pubsub:1") -> RotateRequest:
    return RotateRequest(id, made_at, "SECRET_ROTATE message 1")


def test_a_request_is_served_by_the_generation_minted_for_it() -> None:
    made = generation("r1", START - timedelta(hours=1), request="pubsub:1")
    record = PolicyRecord(policy="p", generations=(made,))

    assert served_by(record, request(START)) == made  # minted for it, whatever the clocks


def test_a_request_is_served_by_any_generation_minted_since_it_was_made() -> None:
    later = generation("r2", START + timedelta(seconds=1))
    record = PolicyRecord(policy="p", generations=(generation("r1", START - timedelta(1)), later))

    assert served_by(record, request(START)) == later
    assert served_by(record, request(START + timedelta(seconds=2))) is None


def test_an_abandoned_generation_serves_no_request() -> None:
    lost = generation("r1", START + timedelta(seconds=1), phase=Phase.ABANDONED, request="pubsub:1")
    record = PolicyRecord(policy="p", generations=(lost,))

    assert served_by(record, request(START)) is None


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[Engine, FakeKeyService, Clock]]:
    config = BridgeConfig.model_validate(
        {
            "langsmith": {"admin_key_env": "LANGSMITH_ADMIN_KEY"},
            "run": {"verify_attempts": 1},
            "policy": [
                {
                    "name": "p",
                    "ack": "grace",
                    "default_workspace": "00000000-0000-4000-8000-000000000001",
                    "target": [{"provider": "file", "path": str(tmp_path / "p.env")}],
                }
            ],
        }
    )
    clock = Clock()
    keys = FakeKeyService(clock=clock)
    connections = Connections()
    built = Engine(
        config, keys, MemoryState(), connections.open, clock=clock, on_close=connections.close
    )
    yield built, keys, clock
    built.close()


def test_a_redelivered_request_rotates_once(engine: tuple[Engine, FakeKeyService, Clock]) -> None:
    bridge, keys, clock = engine
    bridge.run(bridge.select())  # the first key
    clock.now += timedelta(minutes=5)
    asked = RotateRequest("pubsub:42", clock.now - timedelta(seconds=2), "SECRET_ROTATE")

    first = bridge.run(bridge.select(), force=frozenset({"p"}), request=asked).outcomes[0]
    clock.now += timedelta(minutes=1)
    again = bridge.run(bridge.select(), force=frozenset({"p"}), request=asked).outcomes[0]

    record = bridge.store.load("p")
    current = record.current()
    assert current is not None and current.request == "pubsub:42"
    assert (first.ok, first.answered_by) == (True, None)
    assert (again.ok, again.answered_by) == (True, current.rotation_id)
    assert not any(isinstance(step, Rotate) for step in again.done)
    assert sum(c.verb == "create_service_key" for c in keys.calls) == 2  # first, one rotation


def test_a_new_request_rotates_again(engine: tuple[Engine, FakeKeyService, Clock]) -> None:
    bridge, _keys, clock = engine
    bridge.run(bridge.select())
    for number in (1, 2):
        clock.now += timedelta(minutes=5)
        asked = RotateRequest(f"pubsub:{number}", clock.now, "SECRET_ROTATE")
        bridge.run(bridge.select(), force=frozenset({"p"}), request=asked)

    requests = [g.request for g in bridge.store.load("p").generations]
    assert requests == [None, "pubsub:1", "pubsub:2"]
