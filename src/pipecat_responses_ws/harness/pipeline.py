"""A real Pipecat pipeline around any LLM service, driven turn by turn, with every frame timed.

``user aggregator → probe → LLM → probe → assistant aggregator``: the probes record what crosses
them (text, interruptions, tool frames, errors, metrics) with ``time.monotonic()``, so tests and
the harness can ask "which text reached the speaker, when, and in which turn".

Waits (:meth:`Conversation.wait_for`) wake on every frame through either probe and on every frame
the assistant aggregator passes on (it has updated the context by then), and on whatever else
the conversation was told to :meth:`~Conversation.follow` (an emulator's records, a client).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    FunctionCallInProgressFrame,
    FunctionCallResultFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregatorParams,
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from ..changes import Changes, until


@dataclass(frozen=True)
class Seen:
    time: float
    frame: Frame
    direction: FrameDirection


class Probe(FrameProcessor):
    """Passes every frame on, telling ``on_seen`` (if given) and, with ``keep``, keeping a timed copy."""

    def __init__(self, name: str, on_seen: Callable[[Seen], None] | None = None, *, keep: bool = True) -> None:
        super().__init__(name=name)
        self.seen: list[Seen] = []
        self._on_seen = on_seen
        self._keep = keep

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        seen = Seen(time.monotonic(), frame, direction)
        if self._keep:
            self.seen.append(seen)
        if self._on_seen is not None:
            self._on_seen(seen)
        await self.push_frame(frame, direction)


class Notifier(FrameProcessor):
    """Passes every frame on and notifies ``changes``, in the pushing processor's own call."""

    def __init__(self, name: str, changes: Changes) -> None:
        # Direct mode: no queue and no task of its own, so it costs the pipeline a call per frame.
        super().__init__(name=name, enable_direct_mode=True)
        self._changes = changes

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        self._changes.notify()
        await self.push_frame(frame, direction)


@dataclass
class TurnRecord:
    """What one response start..end bracket delivered downstream."""

    started: float
    text: str = ""
    first_text_at: float | None = None
    ended: float | None = None
    interrupted: bool = False


@dataclass
class Conversation:
    """Drives a pipeline with ``say``/``interrupt`` and answers questions about what happened."""

    llm: FrameProcessor
    context: LLMContext = field(default_factory=LLMContext)
    metrics: bool = True
    # Pipecat adds its RTVI observer by default; its per-text-frame work is the same for every
    # service, so a CPU benchmark may turn it off to see the services' own cost.
    rtvi: bool = True
    runner_task: asyncio.Task[Any] | None = None
    # Processors placed after the LLM's output probe (a transcript printer, a TTS stand-in).
    listeners: list[FrameProcessor] = field(default_factory=list)
    # The assistant aggregator's options (context summarization, …).
    assistant_params: LLMAssistantAggregatorParams | None = None
    # Pipecat's OpenTelemetry spans (turn, llm, …), when the opentelemetry SDK is installed.
    tracing: bool = False
    # Processors ahead of the user aggregator (a transport's input, a VAD, speech-to-text) and the
    # aggregator's options (its turn strategies), for a voice pipeline; the audio rate it runs at.
    inputs: list[FrameProcessor] = field(default_factory=list)
    user_params: LLMUserAggregatorParams | None = None
    audio_rate: int | None = None
    # False: the probes keep no frames (``frames`` is empty; turns and text are still followed),
    # and ``on_downstream`` hears each frame that leaves the LLM. Hundreds of sessions each
    # keeping every frame would grow the heap the garbage collector walks, as no real bot does.
    keep_frames: bool = True
    on_downstream: Callable[[Seen], None] | None = None

    def __post_init__(self) -> None:
        # Notified on every frame through either probe and after the assistant aggregator; the
        # waits wake on it and on whatever ``follow`` adds.
        self.changes = Changes()
        self._followed = [self.changes]
        self.pair = LLMContextAggregatorPair(
            self.context, user_params=self.user_params, assistant_params=self.assistant_params
        )
        self.upstream = Probe("probe-before-llm", on_seen=self._follow_upstream, keep=self.keep_frames)
        self.contexts_sent = 0  # LLMContextFrames that reached the LLM, and when the last one did
        self.last_context_at = 0.0
        # Brackets and text are kept up to date as frames pass, so the waits that check them cost
        # microseconds: the harness must not add its own work to the latencies it measures.
        self._turns: list[TurnRecord] = []
        self._text = ""
        self.downstream = Probe("probe-after-llm", on_seen=self._follow, keep=self.keep_frames)
        pipeline = Pipeline(
            [
                *self.inputs,
                self.pair.user(),
                self.upstream,
                self.llm,
                self.downstream,
                *self.listeners,
                self.pair.assistant(),
                # The context's changes have no frame of their own past the probes: the assistant
                # aggregator has added its message by the time it passes a frame on.
                Notifier("after-assistant-aggregator", self.changes),
            ]
        )
        params = PipelineParams(enable_metrics=self.metrics, enable_usage_metrics=self.metrics)
        if self.audio_rate is not None:
            params.audio_in_sample_rate = params.audio_out_sample_rate = self.audio_rate
        self.worker = PipelineWorker(
            pipeline, params=params, cancel_on_idle_timeout=False, enable_rtvi=self.rtvi, enable_tracing=self.tracing
        )
        self._started = asyncio.Event()

        @self.worker.event_handler("on_pipeline_started")
        async def _started(_worker: Any, _frame: Any) -> None:
            self._started.set()

    async def __aenter__(self) -> Conversation:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        self.runner_task = asyncio.create_task(runner.run())
        try:
            await asyncio.wait_for(self._started.wait(), timeout=10)
        except BaseException:
            await self._abandon()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            # The block failed or was cancelled (a Ctrl-C): nobody waits for the pipeline to drain.
            await self._abandon()
            return
        await self.worker.queue_frame(EndFrame())
        if self.runner_task is not None:
            try:
                await asyncio.wait_for(self.runner_task, timeout=15)
            except TimeoutError:
                await self.worker.cancel()

    async def _abandon(self) -> None:
        """Cancel the pipeline and give it a moment to close its processors (and their sockets)."""
        await self.worker.cancel()
        if self.runner_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.runner_task, timeout=5)

    # -- driving ---------------------------------------------------------------------------

    async def say(self, text: str) -> float:
        """The user finishes a turn; returns the time it was queued."""
        now = time.monotonic()
        await self.worker.queue_frame(LLMMessagesAppendFrame([{"role": "user", "content": text}], run_llm=True))
        return now

    async def interrupt(self) -> float:
        now = time.monotonic()
        await self.worker.queue_frame(InterruptionFrame())
        return now

    def follow(self, *changes: Changes) -> None:
        """Wake this conversation's waits on ``changes`` too (an emulator's records, a client's pool)."""
        self._followed.extend(changes)

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
        """Return once ``predicate()`` holds: checked now, on every frame and after each change followed."""
        await until(predicate, timeout, what, *self._followed)

    async def wait_turns_ended(self, count: int, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: sum(t.ended is not None for t in self.turns()) >= count, timeout, f"{count} turns")

    async def wait_text(self, fragment: str, timeout: float = 10.0) -> None:
        await self.wait_for(lambda: fragment in self.text(), timeout, f"text {fragment!r}")

    # -- reading ---------------------------------------------------------------------------

    def frames(self, kind: type[Frame] | tuple[type[Frame], ...]) -> list[Seen]:
        return [s for s in self.downstream.seen if isinstance(s.frame, kind)]

    def text(self) -> str:
        return self._text

    def turns(self) -> list[TurnRecord]:
        """Response brackets in order; text after an interruption inside a bracket is counted too."""
        return list(self._turns)

    def _follow_upstream(self, seen: Seen) -> None:
        if isinstance(seen.frame, LLMContextFrame):
            self.contexts_sent += 1
            self.last_context_at = seen.time
        self.changes.notify()

    def _follow(self, seen: Seen) -> None:
        # The waits run in their own tasks, after this frame's bookkeeping below.
        self.changes.notify()
        if self.on_downstream is not None:
            self.on_downstream(seen)
        frame, turns = seen.frame, self._turns
        if isinstance(frame, LLMFullResponseStartFrame):
            turns.append(TurnRecord(started=seen.time))
        elif isinstance(frame, LLMTextFrame):
            self._text += frame.text
            if turns:
                turn = turns[-1]
                turn.text += frame.text
                turn.first_text_at = turn.first_text_at or seen.time
        elif not turns:
            return
        elif isinstance(frame, InterruptionFrame):
            # The LLM closes its bracket just ahead of the interruption, so "interrupted"
            # means: the user barged in before the next answer started.
            turns[-1].interrupted = True
        elif isinstance(frame, LLMFullResponseEndFrame):
            turns[-1].ended = seen.time

    def text_after_interruptions(self) -> list[str]:
        """Text frames that crossed the probe after an interruption and before the next response start."""
        stale: list[str] = []
        after_interruption = False
        for seen in self.downstream.seen:
            if isinstance(seen.frame, InterruptionFrame):
                after_interruption = True
            elif isinstance(seen.frame, LLMFullResponseStartFrame):
                after_interruption = False
            elif after_interruption and isinstance(seen.frame, LLMTextFrame):
                stale.append(seen.frame.text)
        return stale

    def errors(self) -> list[ErrorFrame]:
        return [s.frame for s in self.upstream.seen if isinstance(s.frame, ErrorFrame)]  # type: ignore[misc]

    def tool_starts(self) -> list[Seen]:
        return self.frames(FunctionCallInProgressFrame)

    def tool_results(self) -> list[Seen]:
        return self.frames(FunctionCallResultFrame)

    def messages(self) -> list[dict[str, Any]]:
        return [cast(dict[str, Any], m) for m in self.context.get_messages() if isinstance(m, dict)]
