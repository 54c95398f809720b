"""Seeded random conversations, described as plain data so a failing run can be printed and replayed.

Every piece of text a response can produce carries a tag of its turn and part (``t3a``,
``u3b``…): scripted words are ``t3as0w1``-style tokens and echo replies repeat the user's
``u3b`` tag, so any fragment that reaches the speaker tells which response it came from and a
leak across an interruption is detectable from the text alone.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..emulator import Fault, Reply, ToolCall

KINDS = ("text", "tool", "parallel", "chain", "barge_in", "fault")
PHASES = ("before_request", "before_created", "mid_text", "mid_arguments", "during_tool", "at_terminal")
TOOLS = ("get_weather", "get_time")
# A tag is a turn number and a part letter; ``[tu]`` because replies are tagged ``t`` and the
# emulator's echo answers repeat the user's ``u`` tag.
TAG = re.compile(r"\b[tu](\d+[a-z])")
# One scripted word of ``tagged_text``: unique by construction, so seeing it twice in one
# response means a delta was delivered twice.
WORD = re.compile(r"\bt\d+[a-z]s\d+w\d+\b")


@functools.lru_cache(maxsize=256)
def tag_finder(tag: str) -> Callable[[str], bool]:
    """Whether a text holds ``tag`` where ``TAG`` would list it; a substring test rules most texts out."""
    marks = (f"t{tag}", f"u{tag}")
    pattern = re.compile(rf"\b[tu]{re.escape(tag)}")

    def holds(text: str) -> bool:
        return (marks[0] in text or marks[1] in text) and pattern.search(text) is not None

    return holds


# At the harness's pacing (about 100 words/s) this is 1.5 s of streaming left to abandon.
LONG_WORDS = 150
# On a voice pipeline the caller's barge-in takes seconds to become the next turn (the words
# themselves, then the VAD's and the turn strategy's silence), so an answer that is abandoned
# while still streaming must be longer: 4 s at 100 words/s, a long answer but not a rare one.
LONG_WORDS_SPOKEN = 400


@dataclass(frozen=True)
class Turn:
    """One user turn. ``phase`` is set for barge-ins, ``fault`` for fault turns."""

    n: int
    kind: str
    phase: str | None = None
    fault: str | None = None

    def tag(self, part: str) -> str:
        return f"{self.n}{part}"

    def user_text(self, part: str = "a") -> str:
        # No tool name and no "get" in it: the emulator's default model would call a named tool.
        return f"u{self.n}{part} please answer briefly"

    @property
    def barged(self) -> bool:
        return self.kind == "barge_in"


@dataclass(frozen=True)
class Scenario:
    seed: int
    index: int
    turns: tuple[Turn, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        parts = [f"{t.kind}:{t.phase or t.fault}" if (t.phase or t.fault) else t.kind for t in self.turns]
        return f"seed={self.seed} run={self.index}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        return cls(data["seed"], data["index"], tuple(Turn(**t) for t in data["turns"]))


def tagged_text(tag: str, words: int, per_sentence: int = 10) -> str:
    """``words`` words in sentences, every word naming its tag and place, so no sentence repeats."""
    sentences = []
    for s in range(0, words, per_sentence):
        count = min(per_sentence, words - s)
        sentences.append(" ".join(f"t{tag}s{s // per_sentence}w{i}" for i in range(count)) + ".")
    return " ".join(sentences)


def tool_args(turn: Turn, k: int) -> dict[str, str]:
    return {"city": f"City{turn.n}x{k}"}


def _text_fault(kind: str, **parameters: Any) -> Callable[[Turn, str], Reply]:
    return lambda turn, text: Reply(text=text, fault=Fault(kind=kind, **parameters))


# Each fault turn's scripted reply, by the turn's name; the kinds are the emulator's (:mod:`..emulator.faults`).
# Gateway and proxy misbehaviour rides along with the emulator's own failures. ``stop_reading`` is left out:
# it only shows when the client sends many megabytes at once, which no turn here does. connection_limit(_lane)
# fire before response.created: nothing was generated, so a replay on a fresh connection is safe, and the
# expired connection makes every later turn need one too.
FAULT_PLANS: dict[str, Callable[[Turn, str], Reply]] = {
    "drop_mid_text": _text_fault("drop", after_events=8, close_code=1006),
    "stall": _text_fault("stall", seconds=0.4, after_events=8),
    "failed": _text_fault("fail", after_events=4),
    "duplicate_delta": _text_fault("duplicate_delta", after_events=8),
    # A call announced done twice must still run once (``bad_tool_runs``).
    "duplicate_item_done": lambda t, _: Reply(
        calls=[ToolCall(TOOLS[0], tool_args(t, 0))], fault=Fault(kind="duplicate_item_done")
    ),
    # Tagged ``z``, a part no reply uses: spoken, it would show up as a leak.
    "stray_early_delta": lambda t, text: Reply(text=text, fault=Fault(kind="stray_early_delta", text=f"t{t.n}zs0w0 ")),
    "connection_limit": _text_fault("connection_limit"),
    "connection_limit_lane": _text_fault("connection_limit_lane"),
    "key_error": _text_fault("key_error", after_events=8),
    "malformed_event": _text_fault("malformed_event", after_events=8),
}
FAULTS = tuple(FAULT_PLANS)


def replies_for(turn: Turn, long_words: int = LONG_WORDS) -> list[Reply]:
    """Scripted replies for the turn's first response(s); follow-ups are left to the default model.

    The default model answers from the conversation alone (echo, or "Here is what I found"), so a
    service that skips or adds a request cannot shift every later reply by one.
    """
    t = turn
    if t.kind == "text":
        return [Reply(text=tagged_text(t.tag("a"), 12))]
    if t.kind == "tool":
        return [Reply(calls=[ToolCall(TOOLS[0], tool_args(t, 0))])]
    if t.kind == "parallel":
        return [Reply(calls=[ToolCall(TOOLS[0], tool_args(t, 0)), ToolCall(TOOLS[1], tool_args(t, 1))])]
    if t.kind == "chain":
        return [Reply(calls=[ToolCall(TOOLS[0], tool_args(t, 0))]), Reply(calls=[ToolCall(TOOLS[1], tool_args(t, 1))])]
    if t.kind == "fault":
        return [FAULT_PLANS[str(t.fault)](t, tagged_text(t.tag("a"), 30))]
    # Barge-ins: the abandoned response; the fresh answer after it is the default echo of u{n}b.
    long_text = tagged_text(t.tag("a"), long_words)
    if t.phase == "before_request":
        return []  # the request may never be written; a scripted reply could be left in the queue
    if t.phase == "before_created":
        return [Reply(text=long_text, fault=Fault(kind="delay_created", seconds=0.5))]
    if t.phase == "mid_arguments":
        return [Reply(calls=[ToolCall(TOOLS[0], {"city": "Oslo" * 20})], tokens_per_second=5)]
    if t.phase == "during_tool":
        return [Reply(calls=[ToolCall(TOOLS[0], tool_args(t, 0))])]
    if t.phase == "at_terminal":
        return [Reply(text=tagged_text(t.tag("a"), 6))]
    return [Reply(text=long_text)]  # mid_text


def generate(seed: int, index: int, *, faults: bool = False, turns: tuple[int, int] = (2, 4)) -> Scenario:
    """One run's scenario; the same ``seed`` and ``index`` always give the same turns."""
    rng = random.Random(f"{seed}:{index}")
    kinds = [k for k in KINDS if faults or k != "fault"]
    # Barge-ins are what the harness is for: weight them so every run is likely to have one.
    weights = [4 if k == "barge_in" else 1 for k in kinds]
    out = []
    for n in range(1, rng.randint(*turns) + 1):
        kind = rng.choices(kinds, weights)[0]
        out.append(
            Turn(
                n=n,
                kind=kind,
                phase=rng.choice(PHASES) if kind == "barge_in" else None,
                fault=rng.choice(FAULTS) if kind == "fault" else None,
            )
        )
    return Scenario(seed, index, tuple(out))


def scenarios(seed: int, runs: int, *, faults: bool = False) -> list[Scenario]:
    return [generate(seed, i, faults=faults) for i in range(runs)]
