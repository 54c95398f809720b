"""What one run of a scenario came to: its violations and figures, as the report and the recordings read them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .ear import HeardBargeIn
from .scenario import Scenario
from .scenario_run import REPLY_GAP


@dataclass
class RunResult:
    service: str
    cancel_policy: str
    scenario: Scenario
    violations: dict[str, int]
    # measures.first_text_delay, in seconds, of the turn after each barge-in and of each text turn
    # nobody interrupted: the barge-in penalty is the gap between the two.
    after_barge_in: list[float] = field(default_factory=list)
    uninterrupted: list[float] = field(default_factory=list)
    tool_dispatch: list[float] = field(default_factory=list)  # seconds, arguments done → handler start
    incremental: int = 0
    eligible: int = 0  # generated creates after the first, which could have been incremental
    bytes_uploaded: int = 0
    user_turns: int = 0
    reconnects: int = 0
    abandoned_tokens: int = 0
    reply_gap: float = REPLY_GAP
    note: str = ""
    multiplexing: str = "lanes"  # the emulator's: "lanes", or "none" for a server without lanes
    errors: list[str] = field(default_factory=list)  # every ErrorFrame's text, in order, keys redacted
    run: int = 0  # the run's place in its campaign's plan (campaign.PlannedRun.index)
    # With --audio: every barge-in as the caller heard it, and the run's recording, if one was written.
    heard: list[HeardBargeIn] = field(default_factory=list)
    recording: str | None = None
    eager: EagerFigures | None = None  # with --eager: the mode's figures (:mod:`.eager`)

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    @property
    def label(self) -> str:
        """``service/cancel_policy``, plus ``/none`` when the emulator had no lanes (so lanes keep their old labels)."""
        base = f"{self.service}/{self.cancel_policy}"
        base = base if self.multiplexing == "lanes" else f"{base}/{self.multiplexing}"
        return base if self.eager is None else f"{base}/eager-{self.eager.mode}"


@dataclass
class EagerTurnFigures:
    """One turn: its kind, commit → first text (s), voice-to-voice (s, with ``--audio``)."""

    n: int
    kind: str
    pause: str | None
    commit_to_first_text: float | None = None
    voice_to_voice: float | None = None


@dataclass
class EagerFigures:
    """What ``--eager`` measured in one run, beside the harness's usual figures."""

    mode: str
    turns: list[EagerTurnFigures] = field(default_factory=list)
    withdrawn_answers: int = 0  # responses the server generated for a prediction then withdrawn
    withdrawn_tokens: int = 0  # their output tokens, which a server bills whether or not anyone heard them
    requests: int = 0  # responses generated in all
    answered_unfinished: int = 0  # turns whose unfinished transcript's answer reached the TTS or context

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EagerFigures:
        fields = {k: v for k, v in data.items() if k != "turns"}
        return cls(**fields, turns=[EagerTurnFigures(**t) for t in data["turns"]])
