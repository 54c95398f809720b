"""Text paced into frames: at most one ``LLMTextFrame`` per interval, at once where it matters.

A model streams a word per delta, 20 to 100 a second. A TTS service that speaks whole sentences
(Pipecat's default) waits for a sentence's end before it synthesises anything, so the words
before that end gain nothing by travelling through the pipeline one frame each: every processor
after the LLM pays for every frame. Here a response's text goes out as it arrives only when it
matters to the listener, and is otherwise joined:

- a response's first words go at once (what a barge-in or a turn's first audio waits for);
- so does any text that ends a sentence or a clause (``. ! ? ; :``, a line break), with what
  waited before it, so the TTS starts on it as soon as it arrived;
- the rest goes joined with the first words that arrive once ``interval`` seconds have passed
  since the last push, so the reader pushes it as it pushes any words, with no task woken for it;
  when no words come (the model pauses), what waits goes on its own one interval after that;
- anything else the response does (a tool call, its end) takes what waits along first, in order.

Nothing is lost or reordered: waiting text is released before any other happening of its
response, and a barge-in drops it with the rest of the answer it belongs to.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from time import monotonic

from ..protocol import events as ev

# The default interval: a frame per 40 ms carries two words at a fast model's pace, and is far
# below what a listener could hear (text before a sentence's end is not spoken before it anyway).
TEXT_PACING_SECS = 0.04
# Where a listener hears a pause, so a sentence-aggregating TTS may start: text holding one goes at once.
CLAUSE_END = re.compile(r"[.!?;:\n…。！？]")


class TextPacer:
    """Joins one response's text deltas into frames at most every ``interval`` seconds.

    ``pace`` wraps the owner's express handler (what the reader pushes text with while the owner
    waits): the handler gets the text due now (a delta, or it and what waited before it, joined),
    and nothing while it waits. When the words after the interval are slow to come (a second
    interval passes), ``on_due`` gets what waits, joined: the owner's queue, whose ``put`` also
    takes it along before anything else it queues.
    A response not paced pays nothing for this on its text path.
    """

    __slots__ = ("_due", "_on_due", "_timer", "_waiting", "interval")

    def __init__(self, interval: float, on_due: Callable[[ev.TextDelta], None]) -> None:
        self.interval = interval
        self._on_due = on_due
        self._due = 0.0  # monotonic time before which text that ends nothing waits
        self._waiting: list[ev.TextDelta] = []
        self._timer: asyncio.TimerHandle | None = None

    def pace(self, express: Callable[[ev.TextDelta], Awaitable[None]]) -> Callable[[ev.TextDelta], Awaitable[None]]:
        """``express``, getting only the text due now."""
        take = self.take

        async def paced(text: ev.TextDelta) -> None:
            due = take(text, monotonic())
            if due is not None:
                await express(due)

        return paced

    def take(self, text: ev.TextDelta, now: float) -> ev.TextDelta | None:
        waiting = self._waiting
        waiting.append(text)
        if now < self._due and CLAUSE_END.search(text.delta) is None:
            if len(waiting) == 1:
                # Only a bound: the words due after ``_due`` usually come first and take this along.
                # Released here, it wakes the owner to push it; taken along, the reader pushes it, waking no one.
                delay = self._due - now + self.interval
                self._timer = asyncio.get_running_loop().call_later(delay, self._fire)
            return None
        self._due = now + self.interval
        return self.release()

    def release(self) -> ev.TextDelta | None:
        """What waits, joined into one delta (numbered as its last), or None when nothing does."""
        waiting = self._waiting
        if not waiting:
            return None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if len(waiting) == 1:
            text = waiting[0]
        else:
            last = waiting[-1]
            text = ev.TextDelta(
                stream_id=last.stream_id,
                sequence_number=last.sequence_number,
                item_id=waiting[0].item_id,
                delta="".join(delta.delta for delta in waiting),
            )
        waiting.clear()
        return text

    def drop(self) -> None:
        """Forget what waits (a barge-in)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiting.clear()

    def _fire(self) -> None:
        self._timer = None
        text = self.release()
        if text is not None:
            self._due = monotonic() + self.interval
            self._on_due(text)
