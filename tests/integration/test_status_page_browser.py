"""The status page as a person sees it, in real headless Chromium: ``serve`` against the
emulator and a file target shows each stage of the demo (healthy; rotated and waiting for
the consumer ``api``; the gate overdue; a target blocked; acknowledged with ``curl`` and
revoked, healthy again), with the card's colour matching its state on the screenshot and
no key anywhere in what the browser rendered; and the page refreshes itself.

Screenshots go to ``tmp_path`` and, when ``BRIDGE_SCREENSHOTS`` names a folder, are copied
there too (``BRIDGE_SCREENSHOTS=/tmp/shots pytest tests/integration/test_status_page_browser.py``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.emulator.records import short_key
from bridge.payload import API_KEY
from bridge.serve import page
from tests.integration.conftest import Bridge, policy_toml
from tests.support.browser import (
    Card,
    Chromium,
    PageView,
    available,
    blankness,
    chromium,
    css_rgb,
    distance,
    hex_rgb,
    left_border_colour,
)
from tests.support.serving import Served, curl_ack, served

# The marker ``browser`` is not registered in pyproject (``--strict-markers``), so these
# run with the other integration tests and skip where Chromium is missing.
pytestmark = pytest.mark.integration

POLICY = "tracing"
KEY = re.compile(r"lsv2_(?:sk|pt)_[A-Za-z0-9]{32}")
# The template's --ok, --waiting, --overdue and --blocked.
COLOURS = {"ok": "#1a7f37", "waiting": "#9a6700", "overdue": "#cf222e", "blocked": "#cf222e"}
TOLERANCE = 24  # per channel, for antialiasing and PNG rounding
BLOCKED_FOREIGN = (
    "blocked: exists and was not written by langsmith-bridge; set adopt = true to take it"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    why = available()
    if why is not None:
        pytest.skip(why)
    with chromium() as instance:
        yield instance


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Path]:
    """Where this test's screenshots go; copied to ``$BRIDGE_SCREENSHOTS`` afterwards."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    yield folder
    wanted = os.environ.get("BRIDGE_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        for png in sorted(folder.glob("*.png")):
            shutil.copy2(png, Path(wanted) / png.name)


class Viewer:
    """Takes a fresh snapshot, looks at the page in Chromium, checks what every stage must
    show (no key, not blank, no console error, the card coloured as its state) and keeps
    the keys seen so far, so that no later page can show an earlier one."""

    def __init__(self, bridge: Bridge, service: Served, browser: Chromium, shots: Path) -> None:
        self.bridge = bridge
        self.service = service
        self.browser = browser
        self.shots = shots
        self.keys = [bridge.emu.bootstrap["admin_key"]]

    def remember_key(self) -> str:
        key = self.bridge.payload(POLICY)[API_KEY]
        self.keys.append(key)
        return key

    def look(self, name: str, state: str) -> Card:
        self.service.fresh()
        view = self.browser.open(self.service.url, self.shots / f"{name}.png")
        self.check(view)
        card = view.card(POLICY)
        assert card.state == state, card.text
        self.check_colour(view, card)
        return card

    def check(self, view: PageView) -> None:
        assert view.title == "langsmith-bridge status"
        assert view.console_errors == ()
        for text in (view.html, view.text):
            assert not KEY.search(text)
            for key in self.keys:
                assert key not in text and key[8:40] not in text and key[-10:] not in text
        colours, spread = blankness(view.screenshot)
        assert colours > 16 and spread > 128, (view.screenshot, colours, spread)

    def check_colour(self, view: PageView, card: Card) -> None:
        expected = hex_rgb(COLOURS[card.state])
        assert css_rgb(card.border) == expected, card.border
        seen = left_border_colour(view.screenshot, card)
        assert distance(seen, expected) <= TOLERANCE, (view.screenshot, seen, expected)


def consumer_bridge(make_bridge: Callable[..., Bridge]) -> Bridge:
    policy = policy_toml(POLICY, consumers=["api"], ack="explicit", min_overlap="0s", max_wait="1h")
    return make_bridge(policy)


def test_chromium_shows_each_stage_of_a_rotation_without_a_key_and_in_its_colour(
    make_bridge: Callable[..., Bridge], browser: Chromium, shots: Path
) -> None:
    bridge = consumer_bridge(make_bridge)
    bridge.run()
    with served(bridge.config, bridge.emu.clock.now) as service:
        viewer = Viewer(bridge, service, browser, shots)
        first = viewer.remember_key()

        card = viewer.look("1-healthy", "ok")
        assert card.badge == "healthy" and card.gates == ()
        assert short_key(first) in card.text
        ((store, _, serves, in_sync),) = card.tables["targets"]
        assert (store, in_sync) == ("file", "in sync") and serves.startswith("sha256:")
        assert "superseded" not in card.tables

        bridge.run(POLICY, force=True)
        second = viewer.remember_key()
        card = viewer.look("2-waiting-for-api", "waiting")
        assert card.badge == "waiting for consumers" and card.gates == ("closed",)
        ((old, _, _, gate, waiting_for, why),) = card.tables["superseded"]
        assert (old, gate, waiting_for) == (short_key(first), "closed", "api")
        assert why == "waiting for api" and short_key(second) in card.text
        (entry,) = service.client.get("/v1/status").json()["policies"]
        old_id = entry["superseded"][0]["key_id"]

        bridge.emu.clock.advance(timedelta(hours=2))  # past max_wait = 1h; on_timeout = hold
        card = viewer.look("3-gate-overdue", "overdue")
        assert card.badge == "gate overdue" and card.gates == ("overdue",)
        (row,) = card.tables["superseded"]
        assert row[3:] == ["overdue", "api", "max_wait passed, holding (waiting for api)"]

        target = bridge.root / "out" / f"{POLICY}.env"
        published = target.read_bytes()
        target.write_text(f"# edited by hand\nLANGSMITH_API_KEY={second}\n")  # not ours now
        card = viewer.look("4-target-blocked", "blocked")
        assert card.badge == "target blocked" and "edited by hand" not in card.text
        ((_, where, _, state),) = card.tables["targets"]
        assert where == str(target) and state == BLOCKED_FOREIGN
        target.write_bytes(published)  # put back, as an operator would

        code, said = curl_ack(service.url, second, POLICY, "api", "api-0")
        assert code == 200, said
        bridge.run()
        card = viewer.look("5-acked-and-revoked", "ok")
        assert card.badge == "healthy" and "superseded" not in card.tables
        ((consumer, replica, uses, heard, proof),) = card.tables["acks"]
        assert (consumer, replica, proof) == ("api", "api-0", "proven")
        assert uses == card.tables["targets"][0][2] and heard.endswith("s ago")
        ((_, action, revoked, why, _), *_) = card.tables["history"]  # the newest first
        assert (action, revoked, why) == ("revoked", short_key(first), "acknowledged by api")
        assert bridge.emulator_key(old_id)["deleted"]
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-healthy.png",
        "2-waiting-for-api.png",
        "3-gate-overdue.png",
        "4-target-blocked.png",
        "5-acked-and-revoked.png",
    ]


def test_the_page_refreshes_itself_and_a_reload_shows_the_new_state(
    make_bridge: Callable[..., Bridge],
    browser: Chromium,
    shots: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bridge = consumer_bridge(make_bridge)
    bridge.run()
    with served(bridge.config, bridge.emu.clock.now) as service, browser.tab() as tab:
        tab.goto(service.url)
        assert tab.view(shots / "refresh-1-before.png").meta_refresh == str(page.REFRESH_S)

        bridge.run(POLICY, force=True)
        service.fresh()
        tab.reload()
        view = tab.view(shots / "refresh-2-reloaded.png")
        assert view.card(POLICY).state == "waiting"

        # The page's own refresh, shortened so a test can wait for it: nothing touches the
        # tab after the state changes server-side.
        monkeypatch.setattr(page, "REFRESH_S", 1)
        tab.reload()
        assert tab.view(shots / "refresh-3-fast.png").meta_refresh == "1"
        code, said = curl_ack(service.url, bridge.payload(POLICY)[API_KEY], POLICY, "api", "a-0")
        assert code == 200, said
        bridge.run()
        service.fresh()
        tab.wait_for_state(POLICY, "ok", timeout_ms=10_000)
        assert tab.view(shots / "refresh-4-by-itself.png").card(POLICY).badge == "healthy"
