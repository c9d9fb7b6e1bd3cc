"""Deciding one step of AWS Secrets Manager's native rotation: a pure function of what the
secret and the record show, beside the planner and tested by table like it.

``bridge.engine.native`` gathers a ``NativeView`` (a few store reads and the record) and
carries out the ``NativeAction`` decided here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bridge.state import Phase

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


class NativeAction(StrEnum):
    MINT_AND_STAGE = "mint a key, verify it, stage it as AWSPENDING"
    ALREADY_STAGED = "nothing: the token's version is staged (AWS retried createSecret)"
    REFUSE_UNTRACKED = "refuse: the token's version holds a key the bridge no longer tracks"
    NOTHING = "nothing: LangSmith needs no separate setSecret"
    VERIFY_PENDING = "authenticate with the pending key"
    PUBLISH_AND_PROMOTE = "publish to the other targets, move AWSCURRENT, supersede"
    RECORD_PROMOTION = "record the promotion: AWSCURRENT moved, the state had not yet"
    ALREADY_FINISHED = "nothing: AWSCURRENT is on the token's version already"
    NO_PENDING = "refuse: no pending version for this token"
    WRONG_PENDING = "refuse: the pending version does not hold this rotation's key"


@dataclass(frozen=True)
class NativeView:
    """What one step sees.

    Attributes:
        step: The rotation step AWS invoked.
        staged: The token's version exists in the secret.
        phase: The phase of the record's generation for the token, if there is one.
        matches: The token's version holds that generation's key.
        current: AWSCURRENT is on the token's version.
    """

    step: str
    staged: bool
    phase: Phase | None
    matches: bool
    current: bool


def decide(view: NativeView) -> NativeAction:
    """The action for one rotation step (the step must be one of ``STEPS``)."""
    live = view.phase is not None and view.phase.live
    if view.step == "createSecret":
        if not view.staged:
            return NativeAction.MINT_AND_STAGE
        return NativeAction.ALREADY_STAGED if live else NativeAction.REFUSE_UNTRACKED
    if view.step == "setSecret":
        return NativeAction.NOTHING
    if view.step == "finishSecret" and view.current:
        if view.phase is not None and view.phase is not Phase.CURRENT:
            return NativeAction.RECORD_PROMOTION
        return NativeAction.ALREADY_FINISHED
    if not view.staged or view.phase is None:
        return NativeAction.NO_PENDING
    if not view.matches or not live:
        return NativeAction.WRONG_PENDING
    return (
        NativeAction.VERIFY_PENDING
        if view.step == "testSecret"
        else NativeAction.PUBLISH_AND_PROMOTE
    )
