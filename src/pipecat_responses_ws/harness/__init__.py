"""Interruption testing harness: seeded conversations, invariants and latency figures per service, on frames
or (``--audio``) on a real voice pipeline measured at the caller's ear."""

from .invariants import INVARIANTS, Observed, check
from .pipeline import Conversation, TurnRecord
from .result import RunResult
from .runner import resolve_factory, run_scenario
from .scenario import Scenario, Turn, generate, scenarios

__all__ = [
    "INVARIANTS",
    "Conversation",
    "Observed",
    "RunResult",
    "Scenario",
    "Turn",
    "TurnRecord",
    "check",
    "generate",
    "resolve_factory",
    "run_scenario",
    "scenarios",
]
