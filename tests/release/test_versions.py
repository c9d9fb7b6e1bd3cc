"""The version is written once (``bridge.__version__``); the places that must repeat it
(the image's label default, the chart's appVersion, the changelog) agree with it."""

from __future__ import annotations

import re
from pathlib import Path

from bridge import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_chart_and_changelog_carry_the_package_version() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    chart = (ROOT / "infra/k8s/langsmith-bridge/Chart.yaml").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()

    assert re.search(rf"^ARG VERSION={re.escape(__version__)}$", dockerfile, re.M)
    assert re.search(rf'^appVersion: "?{re.escape(__version__)}"?$', chart, re.M)
    assert f"## [{__version__}]" in changelog
