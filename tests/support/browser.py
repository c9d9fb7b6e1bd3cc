"""Debian's Chromium, headless, driven by Playwright (the wheel's own driver, never a
downloaded browser): open a page, wait for it to load, read back what a person would see
(each policy card's state, text, tables and box) and keep a full-page screenshot.

Chromium starts with the flags DESIGN.md names (``--no-sandbox`` for root in a container,
no GPU, no background networking, component updates or sync): a test page must not phone
anywhere. ``scripts/install-chromium.sh`` installs the browser; without it (or without the
``playwright`` wheel) ``available`` says why, and the browser tests skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WIDTH, HEIGHT = 1280, 800
TIMEOUT_MS = 15_000
RGB = tuple[int, int, int]

# One pass over the DOM: every policy card, in page coordinates (scroll included, so the
# boxes match a full-page screenshot taken at device scale 1).
_CARDS_JS = """() => [...document.querySelectorAll("section.policy")].map((s) => {
  const r = s.getBoundingClientRect();
  const tables = {};
  for (const t of s.querySelectorAll("table[class]")) {
    tables[t.className] = [...t.querySelectorAll("tr")].slice(1).map(
      (tr) => [...tr.cells].map((c) => c.innerText.trim()));
  }
  return {
    policy: s.dataset.policy || "", state: s.dataset.state || "",
    badge: (s.querySelector(".badge") || {}).innerText || "",
    text: s.innerText,
    gates: [...s.querySelectorAll("tr[data-gate]")].map((tr) => tr.dataset.gate),
    tables: tables,
    border: getComputedStyle(s).borderLeftColor,
    border_width: parseFloat(getComputedStyle(s).borderLeftWidth),
    box: [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height],
  };
})"""
_LOAD_MS_JS = """() => {
  const [n] = performance.getEntriesByType("navigation");
  return n.loadEventEnd - n.startTime;
}"""


def chromium_path() -> str | None:
    """Debian's ``chromium`` on PATH, or ``None``."""
    return shutil.which("chromium")


def available() -> str | None:
    """Why the browser cannot run here, or ``None`` when it can."""
    if chromium_path() is None:
        return "no chromium on PATH (scripts/install-chromium.sh installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright wheel is not installed (pip install playwright)"
    return None


@dataclass(frozen=True)
class Card:
    """One ``section.policy`` as rendered."""

    policy: str
    state: str  # its data-state
    badge: str
    text: str  # visible text
    gates: tuple[str, ...]  # data-gate of each superseded row
    tables: dict[str, list[list[str]]]  # table class -> rows (header left out) of cell texts
    border: str  # computed border-left-color, "rgb(r, g, b)"
    border_width: float
    box: tuple[float, float, float, float]  # x, y, width, height in page CSS pixels


@dataclass(frozen=True)
class PageView:
    """What one load of a page showed."""

    url: str
    title: str
    html: str  # the DOM serialised after load
    text: str  # document.body.innerText
    meta_refresh: str | None  # content of <meta http-equiv="refresh">
    cards: tuple[Card, ...]
    screenshot: Path
    load_ms: float  # navigation timing: loadEventEnd - startTime
    console_errors: tuple[str, ...]

    def card(self, policy: str) -> Card:
        return next(c for c in self.cards if c.policy == policy)


class Tab:
    """One page in its own browser context (no cache, no cookies shared with other tabs)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(str(error)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def goto(self, url: str) -> None:
        """Navigate to ``url`` and wait for its load event."""
        response = self.page.goto(url, wait_until="load")
        assert response is not None and response.ok, f"GET {url}: {response}"

    def reload(self) -> None:
        self.page.reload(wait_until="load")

    def wait_for_state(self, policy: str, state: str, timeout_ms: float = TIMEOUT_MS) -> None:
        """Wait, without touching the page, until ``policy``'s card shows ``state``."""
        selector = f'section.policy[data-policy="{policy}"][data-state="{state}"]'
        self.page.wait_for_selector(selector, state="attached", timeout=timeout_ms)

    def load_ms(self) -> float:
        """How long the latest navigation took to its load event (navigation timing)."""
        return float(self.page.evaluate(_LOAD_MS_JS))

    def view(self, screenshot: Path) -> PageView:
        """What the page shows now; saves a full-page PNG at ``screenshot``."""
        page = self.page
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
        refresh = page.locator('meta[http-equiv="refresh"]')
        raw: list[dict[str, Any]] = page.evaluate(_CARDS_JS)
        return PageView(
            url=page.url,
            title=page.title(),
            html=page.content(),
            text=page.inner_text("body"),
            meta_refresh=refresh.get_attribute("content") if refresh.count() else None,
            cards=tuple(_card(c) for c in raw),
            screenshot=screenshot,
            load_ms=self.load_ms(),
            console_errors=tuple(self.console_errors),
        )


def _card(raw: dict[str, Any]) -> Card:
    x, y, width, height = (float(v) for v in raw["box"])
    return Card(
        policy=raw["policy"],
        state=raw["state"],
        badge=raw["badge"].strip(),
        text=raw["text"],
        gates=tuple(raw["gates"]),
        tables=raw["tables"],
        border=raw["border"],
        border_width=float(raw["border_width"]),
        box=(x, y, width, height),
    )


class Chromium:
    """One headless browser; each tab gets a fresh context."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser

    @contextmanager
    def tab(self) -> Iterator[Tab]:
        context = self._browser.new_context(
            viewport={"width": WIDTH, "height": HEIGHT}, device_scale_factor=1
        )
        try:
            yield Tab(context.new_page())
        finally:
            context.close()

    def open(self, url: str, screenshot: Path) -> PageView:
        """Load ``url`` in a new tab, read what it shows and save a full-page PNG."""
        with self.tab() as tab:
            tab.goto(url)
            return tab.view(screenshot)

    def load_ms(self, url: str) -> float:
        """How long one cold load of ``url`` took, by the page's navigation timing."""
        with self.tab() as tab:
            tab.goto(url)
            return tab.load_ms()


@contextmanager
def chromium() -> Iterator[Chromium]:
    """Headless Debian Chromium for the duration of the block."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    assert path is not None, available()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield Chromium(browser)
        finally:
            browser.close()


# -- pixels ----------------------------------------------------------------------------


def hex_rgb(colour: str) -> RGB:
    """``#1a7f37`` as ``(26, 127, 55)``."""
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def css_rgb(colour: str) -> RGB:
    """A computed colour, ``rgb(26, 127, 55)``, as a tuple."""
    inside = colour[colour.index("(") + 1 : colour.index(")")]
    red, green, blue = (int(float(part)) for part in inside.split(",")[:3])
    return red, green, blue


def left_border_colour(screenshot: Path, card: Card) -> RGB:
    """The median colour of the card's left border in the screenshot, sampled down the
    middle of the border's width and away from the rounded corners."""
    from PIL import Image

    x, y, _, height = card.box
    column = int(x + max(card.border_width, 2) / 2)
    rows = [int(y + height * f) for f in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]
    with Image.open(screenshot) as image:
        rgb = image.convert("RGB")
        samples = [rgb.getpixel((column, row)) for row in rows]
    channels = zip(*(s for s in samples if isinstance(s, tuple)), strict=True)
    median = tuple(sorted(values)[len(values) // 2] for values in map(list, channels))
    return median[0], median[1], median[2]


def distance(a: RGB, b: RGB) -> int:
    """The largest per-channel difference."""
    return max(abs(p - q) for p, q in zip(a, b, strict=True))


def blankness(screenshot: Path) -> tuple[int, int]:
    """(number of distinct colours, luminance spread) of the screenshot: a blank or
    single-colour image has (1, 0)."""
    from PIL import Image

    with Image.open(screenshot) as image:
        histogram = image.convert("L").histogram()
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    used = [level for level, count in enumerate(histogram) if count]
    return (len(colours) if colours is not None else 1 << 16), used[-1] - used[0]
