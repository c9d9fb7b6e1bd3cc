"""The native rotation's decisions, by table: one row per situation AWS can invoke a step in."""

from __future__ import annotations

import pytest

from bridge.engine.native_plan import NativeAction, NativeView, decide
from bridge.state import Phase

A = NativeAction
ROWS = [
    # step, staged, phase, matches, current -> action
    ("createSecret", False, None, False, False, A.MINT_AND_STAGE),
    ("createSecret", True, Phase.PUBLISHING, True, False, A.ALREADY_STAGED),
    ("createSecret", True, Phase.ABANDONED, True, False, A.REFUSE_UNTRACKED),
    ("createSecret", True, None, False, False, A.REFUSE_UNTRACKED),
    ("setSecret", True, Phase.PUBLISHING, True, False, A.NOTHING),
    ("setSecret", False, None, False, False, A.NOTHING),
    ("testSecret", True, Phase.PUBLISHING, True, False, A.VERIFY_PENDING),
    ("testSecret", False, None, False, False, A.NO_PENDING),
    ("testSecret", True, None, False, False, A.NO_PENDING),
    ("testSecret", True, Phase.PUBLISHING, False, False, A.WRONG_PENDING),
    ("testSecret", True, Phase.REVOKED, True, False, A.WRONG_PENDING),
    ("finishSecret", True, Phase.PUBLISHING, True, False, A.PUBLISH_AND_PROMOTE),
    ("finishSecret", True, Phase.PUBLISHING, True, True, A.RECORD_PROMOTION),
    ("finishSecret", True, Phase.CURRENT, True, True, A.ALREADY_FINISHED),
    ("finishSecret", True, None, False, True, A.ALREADY_FINISHED),
    ("finishSecret", False, None, False, False, A.NO_PENDING),
    ("finishSecret", True, Phase.PUBLISHING, False, False, A.WRONG_PENDING),
    ("finishSecret", True, Phase.ABANDONED, True, False, A.WRONG_PENDING),
]


@pytest.mark.parametrize(
    ("step", "staged", "phase", "matches", "current", "action"),
    ROWS,
    ids=[f"{r[0]}:{r[5].name}:{i}" for i, r in enumerate(ROWS)],
)
def test_decide(
    step: str,
    staged: bool,
    phase: Phase | None,
    matches: bool,
    current: bool,
    action: NativeAction,
) -> None:
    assert decide(NativeView(step, staged, phase, matches, current)) is action


def test_every_action_is_reachable() -> None:
    assert {row[5] for row in ROWS} == set(NativeAction)
