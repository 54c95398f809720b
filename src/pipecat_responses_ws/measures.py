"""The figures the harness and the benchmarks report, each defined once, here.

Pure arithmetic on times and counts that the callers have already measured: no clock, no I/O.
Times are in seconds unless a name says otherwise; callers convert for display.

Two ways of summing many values, for two kinds of many:

- a :class:`Distribution` (median, p95, max) over the *cases* of one campaign, e.g. the hundreds
  of barge-ins of a harness run, where the tail is the news;
- a :class:`Spread` (median and min–max) of one figure over *repetitions* of a benchmark, which
  says how far one run's number can be trusted: a figure that one run produced is not a result.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .client.pacing import CLAUSE_END


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` (0–1) of the values at or below it.

    Always one of the values, never an interpolation, so a p99 over 100 cases is the second
    largest and a p95 over 10 cases is the largest.
    """
    if not values:
        raise ValueError("no values")
    if not 0 <= share <= 1:
        raise ValueError(f"share must be between 0 and 1, not {share}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class Distribution:
    """Median, p95 (:func:`percentile`) and maximum of the cases of one campaign."""

    median: float
    p95: float
    max: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution | None:
        """``None`` when there are no cases, so "no barge-in was measured" never reads as 0 ms."""
        if not values:
            return None
        return cls(statistics.median(values), percentile(values, 0.95), max(values), len(values))


@dataclass(frozen=True)
class Spread:
    """One figure over repeated runs: the median run's value, the lowest and the highest."""

    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no runs")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def format(self, digits: int = 1, scale: float = 1.0, unit: str = "") -> str:
        """``13.2 (13.0–13.5)``: the median (``unit`` after it), then the range; one run shows its value alone."""
        median = f"{self.median * scale:.{digits}f}{unit}"
        if self.runs == 1:
            return median
        return f"{median} ({self.low * scale:.{digits}f}–{self.high * scale:.{digits}f})"


def first_text_delay(asked: float, first_text: float, model_time: float = 0.0) -> float:
    """From the user's turn being handed to the pipeline to its answer's first text frame leaving the
    LLM stage, minus ``model_time``: the server's own share (its time to first token and pacing,
    where the caller knows it), so what is left is what the client and the pipeline added.
    """
    return first_text - asked - model_time


def barge_in_penalty(after_barge_in: float, uninterrupted: float) -> float:
    """The barge-in penalty: the first text of the turn after a barge-in minus the first text of an
    uninterrupted turn (both :func:`first_text_delay`, in the same pipeline and server settings).

    What an interruption costs the next answer; 0 means the user waits no longer after barging in
    than after any other turn.
    """
    return after_barge_in - uninterrupted


def barge_in_penalties(after_barge_in: Sequence[float], uninterrupted: Sequence[float]) -> list[float]:
    """:func:`barge_in_penalty` of every barge-in, against the median uninterrupted turn of the same
    runs; empty when there was no uninterrupted turn to compare with.
    """
    if not uninterrupted:
        return []
    reference = statistics.median(uninterrupted)
    return [barge_in_penalty(after, reference) for after in after_barge_in]


def lateness(
    arrivals: Sequence[float], tokens_per_second: float, deltas_per_frame: Sequence[int] | None = None
) -> list[float]:
    """How much later than the server's pacing each text delta of one answer arrived: delta ``i``'s
    arrival minus (the first delta's arrival + ``i`` / ``tokens_per_second``). Negative is early;
    a stage that keeps up stays near 0 however long the answer.

    ``arrivals`` are the answer's text frames; a frame carrying several deltas (``deltas_per_frame``,
    one each unless given) is as late as each of them, so joining text never hides lateness.
    """
    if not arrivals:
        return []
    first = arrivals[0]
    counts = deltas_per_frame if deltas_per_frame is not None else [1] * len(arrivals)
    if len(counts) != len(arrivals):
        raise ValueError("one delta count per frame")
    late: list[float] = []
    for t, count in zip(arrivals, counts, strict=True):
        late += [t - (first + (len(late) + k) / tokens_per_second) for k in range(count)]
    return late


def clause_end_lateness(
    arrivals: Sequence[float], tokens_per_second: float, deltas_per_frame: Sequence[Sequence[str]]
) -> list[float]:
    """:func:`lateness` of the deltas that end a sentence or a clause (``pacing.CLAUSE_END``) alone:
    where a TTS that speaks whole sentences waits for the text, and so what paced text must not
    delay. ``deltas_per_frame``: each frame's deltas, in order."""
    late = lateness(arrivals, tokens_per_second, [len(deltas) for deltas in deltas_per_frame])
    ends = [bool(CLAUSE_END.search(delta)) for deltas in deltas_per_frame for delta in deltas]
    return [t for t, end in zip(late, ends, strict=True) if end]


def cpu_per_delta_us(cpu_seconds: float, deltas: int) -> float:
    """Process CPU time spent receiving, divided by the deltas received, in microseconds."""
    if deltas <= 0:
        raise ValueError("no deltas were received")
    return cpu_seconds / deltas * 1e6


def frames_per_delta(frames: int, deltas: int) -> float:
    """Text frames pushed divided by the text deltas received: 1 when every delta is a frame of its
    own, less when text that had already arrived went out together."""
    if deltas <= 0:
        raise ValueError("no deltas were received")
    return frames / deltas


def incremental_share(incremental: int, eligible: int) -> float | None:
    """Of the generated requests after a conversation's first (each of which could continue a cached
    response), the share that did: named a ``previous_response_id`` and did not carry the
    conversation's first user message again. ``None`` when no request was eligible.
    """
    return incremental / eligible if eligible else None


def bytes_per_turn(bytes_uploaded: int, user_turns: int) -> float | None:
    """Bytes of every ``response.create`` frame sent, divided by the user's turns."""
    return bytes_uploaded / user_turns if user_turns else None


# -- At the caller's ear. Times are on the phone line's clock; the bot's speech is given as the
# spans in which its voice was audible, pauses shorter than the harness's silence gap joined.

Span = tuple[float, float]


def overrun(bot_speech: Sequence[Span], caller: Span) -> float:
    """From the caller's speech onset to the bot's voice falling silent: how long the bot talked
    over a barge-in, whether it was speaking at the onset or started while the caller spoke.
    0 when the bot was silent all through the caller's utterance.
    """
    onset, caller_end = caller
    return next((end - onset for start, end in bot_speech if end > onset and start < caller_end), 0.0)


def overlap(bot_speech: Sequence[Span], caller: Span) -> float:
    """How much of the caller's utterance the bot's voice covered, wherever in it the bot spoke."""
    return sum(max(0.0, min(end, caller[1]) - max(start, caller[0])) for start, end in bot_speech)


def stale_audio(abandoned: Sequence[Span], silent_at: float) -> float:
    """Audio of the abandoned answer the caller heard after the bot first fell silent
    (onset + :func:`overrun`): the cancelled answer coming back. ``abandoned`` is its audible chunks.
    """
    return sum(max(0.0, end - max(start, silent_at)) for start, end in abandoned)


def voice_to_voice(caller_end: float, bot_first_audio: float) -> float:
    """From the end of the caller's speech to the first audible sample of the bot's next answer."""
    return bot_first_audio - caller_end
