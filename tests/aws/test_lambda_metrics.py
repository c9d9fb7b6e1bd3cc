"""The Lambda's figures in CloudWatch's Embedded Metric Format: one document for the run
(no dimensions: what the template's alarms watch) and one per policy, each a valid EMF
document whose metrics are members of it, printed on their own stdout lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.aws_lambda import METRIC_NAMESPACE
from bridge.engine.tally import COUNTS
from tests.aws.conftest import scheduled_event
from tests.aws.test_lambda_events import file_policies, state

pytestmark = pytest.mark.integration


def emf_documents(text: str) -> list[dict[str, Any]]:
    documents = []
    for line in text.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def check_emf(document: dict[str, Any]) -> None:
    """The EMF specification's rules for one document."""
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int)
    (directive,) = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == METRIC_NAMESPACE
    for dimension_set in directive["Dimensions"]:
        for name in dimension_set:
            assert isinstance(document[name], str)
    for metric in directive["Metrics"]:
        assert isinstance(document[metric["Name"]], int | float)
        assert metric["Unit"] in ("Count", "Seconds")


def test_a_scheduled_run_prints_its_figures_as_emf(
    lambda_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = lambda_env(state(tmp_path) + file_policies(tmp_path, "a", "b"))
    capsys.readouterr()

    handler(scheduled_event(), None)

    documents = emf_documents(capsys.readouterr().out)
    for document in documents:
        check_emf(document)
    run, *policies = documents
    assert run["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [[]]
    assert {name: run[name] for name in COUNTS} == dict.fromkeys(COUNTS, 0)
    assert run["RunDuration"] >= 0
    assert sorted(d["Policy"] for d in policies) == ["a", "b"]


def test_a_failed_policy_is_counted(
    lambda_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out/b.env").write_text("LANGSMITH_API_KEY=someone-elses\n")  # foreign
    handler = lambda_env(state(tmp_path) + file_policies(tmp_path, "a", "b"))
    capsys.readouterr()

    with pytest.raises(Exception, match="failed"):
        handler(scheduled_event(), None)

    run, *policies = emf_documents(capsys.readouterr().out)
    assert (run["PoliciesFailed"], run["TargetsBlocked"]) == (1, 1)
    assert {d["Policy"]: d["PoliciesFailed"] for d in policies} == {"a": 0, "b": 1}
