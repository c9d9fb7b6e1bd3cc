"""The rotation engine: observe, plan (pure), execute; one policy at a time under a lease.

See ``bridge.engine.planner`` for the rules and ``../README.md`` for the state machine.
"""

from bridge.engine.ack import AckError, acknowledge
from bridge.engine.observe import observe_targets
from bridge.engine.plan import Gate, Observation, Plan, Step, TargetView
from bridge.engine.planner import evaluate_gate, plan, rotation_reason
from bridge.engine.requests import RotateRequest, served_by
from bridge.engine.runner import Engine, PolicyOutcome, RunReport, in_shard
from bridge.engine.status import policy_status

__all__ = [
    "AckError",
    "Engine",
    "Gate",
    "Observation",
    "Plan",
    "PolicyOutcome",
    "RotateRequest",
    "RunReport",
    "Step",
    "TargetView",
    "acknowledge",
    "evaluate_gate",
    "in_shard",
    "observe_targets",
    "plan",
    "policy_status",
    "rotation_reason",
    "served_by",
]
