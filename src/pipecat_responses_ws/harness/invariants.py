"""What must hold after every run, as pure functions over what the run observed.

Each check returns a count of violations (0 = held), so the report can sum them over many runs
and a test can feed a hand-made :class:`Observed` to prove a check can fail.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .scenario import TAG, WORD

# Downstream events, in the order they crossed the probe after the LLM.
START, END, TEXT, INTERRUPTION = "start", "end", "text", "interruption"


@dataclass(frozen=True)
class Event:
    time: float
    kind: str
    text: str = ""


@dataclass(frozen=True)
class ToolRun:
    call_id: str
    name: str
    time: float


@dataclass
class Observed:
    """Everything one run collected, stripped of Pipecat and emulator objects."""

    events: list[Event] = field(default_factory=list)
    # Tag of an abandoned response → when the interruption crossed the downstream probe.
    abandoned: dict[str, float] = field(default_factory=dict)
    tool_runs: list[ToolRun] = field(default_factory=list)
    # call_id → time the emulator finished sending the call's arguments (``output_item.done``).
    completed_calls: dict[str, float] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    # Time windows of turns with an injected fault: errors inside them are explained.
    fault_windows: list[tuple[float, float]] = field(default_factory=list)
    # Where a TTS stands between the LLM and the assistant aggregator (the voice pipeline), the
    # text that reached the aggregator: what was spoken up to each interruption, which the context
    # must hold instead of all the LLM sent.
    spoken: str | None = None


def _brackets(events: list[Event]) -> list[list[tuple[int, Event]]]:
    """Text events grouped by response bracket; text before any start opens its own group."""
    groups: list[list[tuple[int, Event]]] = [[]]
    for i, e in enumerate(events):
        if e.kind == START:
            groups.append([])
        elif e.kind == TEXT:
            groups[-1].append((i, e))
    return [g for g in groups if g]


def leaked_text(obs: Observed) -> int:
    """Text frames from an abandoned response that reached the speaker after the interruption.

    Three ways to see one, counted once per frame: text between an interruption and the next
    response start; a frame tagged with an abandoned response after its interruption; a frame
    whose tag differs from the tag its bracket started with (another turn's words).
    """
    leaked: set[int] = set()
    after_interruption = False
    for i, e in enumerate(obs.events):
        if e.kind == INTERRUPTION:
            after_interruption = True
        elif e.kind == START:
            after_interruption = False
        elif e.kind == TEXT:
            if after_interruption and e.text.strip():
                leaked.add(i)
            for tag in TAG.findall(e.text):
                cut = obs.abandoned.get(tag)
                if cut is not None and e.time > cut:
                    leaked.add(i)
    for group in _brackets(obs.events):
        first = next((TAG.findall(e.text)[0] for _, e in group if TAG.findall(e.text)), None)
        for i, e in group:
            if any(tag != first for tag in TAG.findall(e.text)):
                leaked.add(i)
    return len(leaked)


_SENTENCE = re.compile(r"[^.!?]+[.!?]")


def repeated_text(obs: Observed) -> int:
    """Sentences, and scripted words, a response bracket delivered more than once (pushed twice).

    A sentence catches text pushed twice; a scripted word (unique by construction) catches a
    single delta delivered twice, which leaves every sentence different.
    """
    count = 0
    for group in _brackets(obs.events):
        text = "".join(e.text for _, e in group)
        sentences = [" ".join(s.split()) for s in _SENTENCE.findall(text)]
        count += sum(n - 1 for s, n in Counter(sentences).items() if n > 1 and len(s.split()) >= 3)
        count += sum(n - 1 for n in Counter(WORD.findall(text)).values() if n > 1)
    return count


def bad_tool_runs(obs: Observed) -> int:
    """Calls run more than once, or run although the server never finished their arguments."""
    runs = Counter(r.call_id for r in obs.tool_runs)
    twice = sum(n - 1 for n in runs.values())
    incomplete = sum(1 for call_id in runs if call_id not in obs.completed_calls)
    return twice + incomplete


def calls_without_output(obs: Observed) -> int:
    """Assistant tool calls in the final context with no tool message answering them."""
    answered = {m.get("tool_call_id") for m in obs.messages if m.get("role") == "tool"}
    calls = [c.get("id") for m in obs.messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
    return sum(1 for c in calls if c not in answered)


def unanswered_turns(obs: Observed) -> int:
    return len(obs.unanswered)


def unexpected_errors(obs: Observed) -> int:
    """ErrorFrames outside every injected fault's window."""
    return sum(1 for t, _ in obs.errors if not any(a <= t <= b for a, b in obs.fault_windows))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def context_mismatch(obs: Observed) -> int:
    """1 when the assistant's words in the context differ from the words that reached the speaker.

    Whitespace is ignored because aggregators join frames with their own spacing.
    """
    said = "".join(e.text for e in obs.events if e.kind == TEXT) if obs.spoken is None else obs.spoken
    spoken = "".join(said.split())
    stored = "".join(
        "".join(_content_text(m.get("content")) for m in obs.messages if m.get("role") == "assistant").split()
    )
    return int(spoken != stored)


INVARIANTS: dict[str, Callable[[Observed], int]] = {
    "leaked_text": leaked_text,
    "repeated_text": repeated_text,
    "bad_tool_runs": bad_tool_runs,
    "calls_without_output": calls_without_output,
    "unanswered_turns": unanswered_turns,
    "unexpected_errors": unexpected_errors,
    "context_mismatch": context_mismatch,
}


def check(obs: Observed) -> dict[str, int]:
    return {name: fn(obs) for name, fn in INVARIANTS.items()}
