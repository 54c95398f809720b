"""The events of one response, in order and with their pacing, but without any I/O.

The whole planned sequence is laid out when the response starts (ids drawn, jitter drawn), so
the runner can ask how long to wait *before* producing an event, and a cancel that arrives during
that wait replaces the event instead of following it. Producing an event is what counts a token.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import builders
from .model import Plan, PlannedCall, PlannedReasoning, PlannedText

Event = dict[str, Any]


@dataclass(frozen=True)
class Pacing:
    ttft: float
    tokens_per_second: float
    jitter: float = 0.0


@dataclass
class _Entry:
    delay: float
    build: Callable[[], Event]
    # Steering ends a response only where no output item is open: before an item, or at the end.
    boundary: bool = False
    terminal: bool = False


def argument_chunks(arguments: str, chars: int | None = None) -> list[str]:
    """Function-call arguments cut into deltas: at most three, as a model streams them, or ``chars`` characters each.

    ``chars=1`` is what a gateway relaying byte by byte sends (tens of thousands of deltas for one
    call); the cut is one slice per delta, so planning stays linear in their number.
    """
    if not arguments:
        return []
    if chars is not None:
        size = chars
    else:
        pieces = min(3, max(1, len(arguments) // 8))
        size = math.ceil(len(arguments) / pieces)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


class ResponseStream:
    """Produces a response's events one at a time; ``stop`` and ``steer`` change what comes next.

    ``end_reason`` after the terminal: ``completed``, ``failed``, ``incomplete`` (a fault or
    ``max_output_tokens``), ``cancelled`` or ``steered``. Every delta, whatever its size, is paced
    and counted as one output token, so ``argument_delta_chars`` deltas count one token each.
    """

    def __init__(
        self,
        writer: builders.ResponseEventWriter,
        plan: Plan,
        *,
        pacing: Pacing,
        rng: random.Random,
        new_id: Callable[[str], str],
        generate: bool = True,
        input_tokens: int = 0,
        cached_tokens: int = 0,
        max_output_tokens: int | None = None,
        argument_delta_chars: int | None = None,
    ) -> None:
        self.writer = writer
        self.tokens = 0
        self.reasoning_tokens = 0
        self.text = ""
        self.end_reason: str | None = None
        self._input_tokens = input_tokens
        self._cached_tokens = cached_tokens
        self._pacing = pacing
        self._rng = rng
        self._new_id = new_id
        self._budget = max_output_tokens if isinstance(max_output_tokens, int) and max_output_tokens > 0 else None
        self._argument_delta_chars = argument_delta_chars
        self._planned_tokens = 0
        self._truncated = False
        self._stop: tuple[str, str | None] | None = None
        self._steer = False
        self._index = 0
        self._entries: list[_Entry] = [_Entry(0.0, writer.created), _Entry(0.0, writer.in_progress)]
        if generate:
            for output_index, planned in enumerate(plan):
                if self._truncated:
                    break
                if isinstance(planned, PlannedText):
                    self._plan_message(output_index, planned.text)
                elif isinstance(planned, PlannedReasoning):
                    self._plan_reasoning(output_index, planned.summary)
                else:
                    self._plan_call(output_index, planned)
        end = ("incomplete", "max_output_tokens") if self._truncated else ("completed", None)
        self._entries.append(_Entry(0.0, lambda: self._terminal(end), boundary=True, terminal=True))

    # -- what the runner asks -------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.end_reason is not None

    @property
    def planned_events(self) -> int:
        """How many events the response sends if nothing interrupts it, terminal included."""
        return len(self._entries)

    def peek_delay(self) -> float | None:
        """Seconds to wait before the next event; ``None`` once the terminal has been produced."""
        if self.finished:
            return None
        if self._stop_now() or self._steer_now():
            return 0.0
        return self._entries[self._index].delay

    def next_is_terminal(self) -> bool:
        return not self.finished and (self._stop_now() or self._steer_now() or self._entries[self._index].terminal)

    def next(self) -> Event:
        if self.finished:
            raise RuntimeError("the response already ended")
        if self._stop is not None and self._stop_now():
            return self._terminal(self._stop)
        if self._steer_now():
            return self._terminal(("steered", None))
        entry = self._entries[self._index]
        self._index += 1
        return entry.build()

    def stop(self, kind: str, code: str | None = None) -> None:
        """End with ``kind`` (``cancelled``, ``failed`` or ``incomplete``) as the very next event."""
        if self._stop is None and not self.finished:
            self._stop = (kind, code)

    def steer(self) -> None:
        """End with ``incomplete`` (reason ``steered``) as soon as no output item is open."""
        self._steer = True

    # -- laying out the plan --------------------------------------------------------------------

    def _stop_now(self) -> bool:
        # A terminal needs a created response: stopping waits for created and in_progress.
        return self._stop is not None and self._index >= 2

    def _steer_now(self) -> bool:
        return self._steer and self._index >= 2 and self._entries[self._index].boundary

    def _token_delay(self) -> float:
        if self._planned_tokens == 0:
            return self._pacing.ttft
        interval = 1.0 / self._pacing.tokens_per_second if self._pacing.tokens_per_second > 0 else 0.0
        return max(0.0, interval * (1.0 + self._pacing.jitter * self._rng.uniform(-1.0, 1.0)))

    def _take_tokens(self, chunks: list[str]) -> list[tuple[str, float]]:
        """The chunks that fit the ``max_output_tokens`` budget, each with the delay before it."""
        taken: list[tuple[str, float]] = []
        for chunk in chunks:
            if self._budget is not None and self._planned_tokens >= self._budget:
                self._truncated = True
                break
            taken.append((chunk, self._token_delay()))
            self._planned_tokens += 1
        return taken

    def _plan_message(self, index: int, text: str) -> None:
        w = self.writer
        item_id = self._new_id("msg")
        added = builders.message_item(item_id, "", "in_progress")
        self._entries.append(_Entry(0.0, lambda: w.output_item_added(index, added), boundary=True))
        self._entries.append(_Entry(0.0, lambda: w.content_part_added(item_id, index)))
        chunks = self._take_tokens(list(builders.text_chunks(text)))
        for chunk, delay in chunks:
            self._entries.append(_Entry(delay, self._text_delta(item_id, index, chunk)))
        said = "".join(chunk for chunk, _ in chunks)
        done = builders.message_item(item_id, said, "incomplete" if self._truncated else "completed")
        self._entries.append(_Entry(0.0, lambda: w.output_text_done(item_id, index, said)))
        self._entries.append(_Entry(0.0, lambda: w.content_part_done(item_id, index, said)))
        self._entries.append(_Entry(0.0, lambda: w.output_item_done(index, done)))

    def _plan_reasoning(self, index: int, summary: str) -> None:
        w = self.writer
        item_id = self._new_id("rs")
        added = builders.reasoning_item(item_id)
        self._entries.append(_Entry(0.0, lambda: w.output_item_added(index, added), boundary=True))
        self._entries.append(_Entry(0.0, lambda: w.reasoning_summary_part_added(item_id, index)))
        chunks = self._take_tokens(list(builders.text_chunks(summary)))
        for chunk, delay in chunks:
            self._entries.append(_Entry(delay, self._reasoning_delta(item_id, index, chunk)))
        said = "".join(chunk for chunk, _ in chunks)
        # Opaque to the client but deterministic, so a test can follow it back into the next request.
        encrypted = "enc_" + hashlib.sha256(f"{item_id}:{said}".encode()).hexdigest()[:32]
        done = builders.reasoning_item(item_id, said, encrypted)
        self._entries.append(_Entry(0.0, lambda: w.reasoning_summary_text_done(item_id, index, said)))
        self._entries.append(_Entry(0.0, lambda: w.reasoning_summary_part_done(item_id, index, said)))
        self._entries.append(_Entry(0.0, lambda: w.output_item_done(index, done)))

    def _plan_call(self, index: int, call: PlannedCall) -> None:
        w = self.writer
        item_id, call_id = self._new_id("fc"), self._new_id("call")
        added = builders.function_call_item(item_id, call_id, call.name, "", "in_progress")
        self._entries.append(_Entry(0.0, lambda: w.output_item_added(index, added), boundary=True))
        chunks = self._take_tokens(argument_chunks(call.arguments, self._argument_delta_chars))
        for chunk, delay in chunks:
            self._entries.append(_Entry(delay, self._arguments_delta(item_id, index, chunk)))
        arguments = "".join(chunk for chunk, _ in chunks)
        status = "incomplete" if self._truncated else "completed"
        done = builders.function_call_item(item_id, call_id, call.name, arguments, status)
        self._entries.append(_Entry(0.0, lambda: w.function_call_arguments_done(item_id, index, arguments, call.name)))
        self._entries.append(_Entry(0.0, lambda: w.output_item_done(index, done)))

    def _text_delta(self, item_id: str, index: int, chunk: str) -> Callable[[], Event]:
        def build() -> Event:
            self.tokens += 1
            self.text += chunk
            return self.writer.output_text_delta(item_id, index, chunk)

        return build

    def _reasoning_delta(self, item_id: str, index: int, chunk: str) -> Callable[[], Event]:
        def build() -> Event:
            self.tokens += 1
            self.reasoning_tokens += 1
            return self.writer.reasoning_summary_text_delta(item_id, index, chunk)

        return build

    def _arguments_delta(self, item_id: str, index: int, chunk: str) -> Callable[[], Event]:
        def build() -> Event:
            self.tokens += 1
            return self.writer.function_call_arguments_delta(item_id, index, chunk)

        return build

    def _terminal(self, end: tuple[str, str | None]) -> Event:
        kind, code = end
        usage = builders.usage(self._input_tokens, self.tokens, self._cached_tokens, self.reasoning_tokens)
        self.end_reason = kind
        if kind == "completed":
            return self.writer.completed(usage)
        if kind == "failed":
            code = code or "server_error"
            return self.writer.failed(code, f"The response failed ({code}).", usage)
        if kind == "cancelled":
            return self.writer.cancelled(usage)
        if kind == "steered":
            return self.writer.incomplete("steered", usage)
        return self.writer.incomplete(code or "max_output_tokens", usage)
