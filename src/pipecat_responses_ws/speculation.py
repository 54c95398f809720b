"""Eager end of turn for every speech-to-text: answer at the VAD's stop, before the turn commits.

Most bots have no eager STT. They wait for their turn-stop strategy (Pipecat's speech timeout is
0.6 s after the VAD's stop, Smart Turn longer) and only then ask the model, whose time to first
token the caller hears as silence on top. :class:`SpeculativeUserTurnStopStrategy` wraps that
strategy and asks the model as soon as the VAD says the caller stopped, with the transcript so
far, through Pipecat's own speculation path: a provisional ``LLMContextFrame(speculation=True)``
from the user aggregator, the answer held by the LLM service's ``SpeculationGate`` until the turn
commits, and an ``EagerEndOfTurnCancelFrame`` when the guess is withdrawn. When the wrapped
strategy commits the turn with the transcript that was guessed, the answer is already streaming
and nothing is asked twice; when the caller resumes, or the transcript changes, the guess is
withdrawn and nothing of it reaches the TTS or the context.

A withdrawn guess costs tokens, not time, on a service that can start the next answer while the
withdrawn one is still being generated (ours, with lanes). ``min_pause`` and ``max_per_turn``
bound what it spends; :attr:`SpeculativeUserTurnStopStrategy.stats` counts the guesses.

Install it around the stop strategy you already use::

    LLMUserAggregatorParams(
        user_turn_strategies=UserTurnStrategies(
            stop=[speculative(SpeechTimeoutUserTurnStopStrategy())]
        )
    )
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.turns.types import ProcessFrameResult, UserTurnSpeculation
from pipecat.turns.user_stop import BaseUserTurnStopStrategy, EagerMatchPolicy, NormalizedMatch, UserTurnStoppedParams
from pipecat.utils.string import TextPartForConcatenation, concatenate_aggregated_text


@dataclass
class SpeculationStats:
    """Guesses over the strategy's life: started, kept by the commit, withdrawn (each reason counted)."""

    started: int = 0
    kept: int = 0
    withdrawn: int = 0
    resumed: int = 0  # the caller spoke again
    changed: int = 0  # the transcript changed, or the commit's differed from the guess
    skipped: int = 0  # a pause the bound left unanswered (max_per_turn reached)


class SpeculativeUserTurnStopStrategy(BaseUserTurnStopStrategy):
    """Guesses the end of the turn at the VAD's stop; ``inner`` still decides when the turn ends.

    A guess is made once the VAD reports the caller silent for ``min_pause`` seconds (the VAD's own
    stop delay comes first), with the transcript received so far, if there is one and no interim
    transcript is still open. It is withdrawn when the VAD hears the caller again, when a new
    transcript or an interim arrives, or when the turn ends in a way that did not keep it. At most
    ``max_per_turn`` guesses are made per turn; later pauses wait for the commit as without this.

    When ``inner`` ends the turn, the guess is kept if ``match_policy`` finds the committed
    transcript the same as the guessed one: the turn ends as confirming it, so the held answer is
    released and no second inference runs. Otherwise it is withdrawn and the turn is answered
    as usual.
    """

    def __init__(
        self,
        inner: BaseUserTurnStopStrategy,
        *,
        min_pause: float = 0.0,
        max_per_turn: int = 2,
        match_policy: EagerMatchPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        if min_pause < 0:
            raise ValueError(f"min_pause must be 0 or more seconds, not {min_pause}")
        if max_per_turn < 0:
            raise ValueError(f"max_per_turn must be 0 or more, not {max_per_turn}")
        super().__init__(**kwargs)
        self._inner = inner
        self._min_pause = min_pause
        self._max_per_turn = max_per_turn
        self._match_policy = match_policy or NormalizedMatch()
        self.stats = SpeculationStats()
        self._parts: list[TextPartForConcatenation] = []
        self._interim_open = False
        self._transcribed = False  # a transcript came since the caller last started speaking
        self._withdrawn_this_turn = False
        self._silent_since: float | None = None  # the VAD's stop, while the caller is silent
        self._pause_skipped = False  # this pause was already counted in stats.skipped
        self._turn_open = False
        self._guesses = 0  # this turn's
        self._speculation: UserTurnSpeculation | None = None
        self._confirming = False  # between the inner's inference trigger and its turn stop
        self._pause_timer: asyncio.Task[None] | None = None
        # The inner's frames and withdrawals pass through unchanged; its end of turn is decided here.
        inner.add_event_handler("on_push_frame", self._on_inner_push_frame)
        inner.add_event_handler("on_broadcast_frame", self._on_inner_broadcast_frame)
        inner.add_event_handler("on_user_turn_speculation_cancelled", self._on_inner_speculation_cancelled)
        inner.add_event_handler("on_user_turn_inference_triggered", self._on_inner_inference_triggered)
        inner.add_event_handler("on_user_turn_stopped", self._on_inner_turn_stopped)

    @property
    def inner(self) -> BaseUserTurnStopStrategy:
        return self._inner

    @property
    def resolves_proposed_turn_stop_frames(self) -> bool:
        return self._inner.resolves_proposed_turn_stop_frames

    @property
    def speculating(self) -> bool:
        """Whether a guess is in flight."""
        return self._speculation is not None

    async def _on_inner_push_frame(
        self, _inner: BaseUserTurnStopStrategy, frame: Frame, direction: FrameDirection
    ) -> None:
        await self.push_frame(frame, direction)

    async def _on_inner_broadcast_frame(
        self, _inner: BaseUserTurnStopStrategy, frame_cls: type[Frame], **kwargs: Any
    ) -> None:
        await self.broadcast_frame(frame_cls, **kwargs)

    async def _on_inner_speculation_cancelled(self, _inner: BaseUserTurnStopStrategy) -> None:
        await self.trigger_user_turn_speculation_cancelled()

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]  # as Pipecat's own strategies
        await super().setup(setup)
        await self._inner.setup(setup)

    async def cleanup(self) -> None:
        await self._stop_pause_timer()
        await super().cleanup()
        await self._inner.cleanup()

    async def handle_user_turn_started(self) -> None:
        await self._reset()
        self._turn_open = True
        await self._inner.handle_user_turn_started()

    async def handle_user_turn_stopped(self) -> None:
        # A turn ended without the inner's commit (the aggregator's stop watchdog, say) keeps
        # no guess: withdrawn here, it reaches the gate ahead of the turn's end.
        await self._withdraw("the turn ended without confirming it", count=None)
        await self._reset()
        self._turn_open = False
        self._silent_since = None
        await self._inner.handle_user_turn_stopped()

    async def _reset(self) -> None:
        await self._stop_pause_timer()
        self._parts = []
        self._interim_open = False
        self._transcribed = False
        self._withdrawn_this_turn = False
        self._guesses = 0
        self._speculation = None
        self._confirming = False

    async def process_frame(self, frame: Frame) -> ProcessFrameResult | None:
        # What the frame says about the guess is settled before the inner sees it, so a commit
        # the frame triggers compares against the transcript that includes it.
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._silent_since = None
            self._transcribed = False
            await self._stop_pause_timer()
            await self._withdraw("the caller spoke again", count="resumed")
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._silent_since = time.monotonic()
            self._pause_skipped = False
        elif isinstance(frame, InterimTranscriptionFrame):
            self._interim_open = True
            await self._withdraw("an interim transcript came", count="changed")
        elif isinstance(frame, TranscriptionFrame) and frame.text.strip():
            self._parts.append(TextPartForConcatenation(frame.text, frame.includes_inter_frame_spaces))
            self._interim_open = False
            self._transcribed = True
            await self._withdraw("the transcript changed", count="changed")
        result = await self._inner.process_frame(frame)
        if isinstance(frame, (VADUserStoppedSpeakingFrame, TranscriptionFrame)):
            await self._guess_when_due()
        return result

    async def _guess_when_due(self) -> None:
        """Guess now, or once the pause is ``min_pause`` long, if a guess is due at all."""
        if self._silent_since is None or self._pause_timer is not None:
            return
        wait = self._silent_since + self._min_pause - time.monotonic()
        if wait <= 0:
            await self._guess()
        else:
            self._pause_timer = self.task_manager.create_task(self._guess_after(wait), f"{self}::pause")

    async def _guess_after(self, wait: float) -> None:
        await asyncio.sleep(wait)
        self._pause_timer = None
        await self._guess()

    async def _guess(self) -> None:
        if not self._turn_open or self._silent_since is None or self._speculation is not None:
            return
        # Most STTs finalize a stretch of speech after the VAD's stop: until its words are in, the
        # transcript so far is the one the caller has just added to.
        if not self._parts or self._interim_open or not self._transcribed:
            return
        if self._guesses >= self._max_per_turn:
            self.stats.skipped += not self._pause_skipped
            self._pause_skipped = True
            return
        self._guesses += 1
        self.stats.started += 1
        self._speculation = UserTurnSpeculation(text=self._text())
        logger.debug(f"{self}: guessing the turn ended: [{self._speculation.text}]")
        await self.trigger_user_turn_inference_triggered(speculation=self._speculation)

    async def _withdraw(self, reason: str, *, count: str | None) -> None:
        if self._speculation is None:
            return
        logger.debug(f"{self}: withdrawing the guess [{self._speculation.text}]: {reason}")
        self._speculation = None
        self._withdrawn_this_turn = True
        self.stats.withdrawn += 1
        if count is not None:
            setattr(self.stats, count, getattr(self.stats, count) + 1)
        await self.trigger_user_turn_speculation_cancelled()

    async def _stop_pause_timer(self) -> None:
        if self._pause_timer is not None:
            timer, self._pause_timer = self._pause_timer, None
            await self.task_manager.cancel_task(timer)

    def _text(self) -> str:
        """The turn's transcript as the user aggregator will write it."""
        return concatenate_aggregated_text(self._parts)

    async def _on_inner_inference_triggered(
        self, _inner: BaseUserTurnStopStrategy, speculation: UserTurnSpeculation | None
    ) -> None:
        guess = self._speculation
        if speculation is None and guess is not None:
            await self._stop_pause_timer()
            if self._match_policy.matches(guess.text, self._text()):
                # The answer to exactly this transcript is already being generated and held;
                # the turn's end releases it, and asking again would answer the turn twice.
                self._speculation = None
                self._confirming = True
                self.stats.kept += 1
                return
            await self._withdraw("the committed transcript differs from the guess", count="changed")
        elif speculation is None and self._withdrawn_this_turn:
            # A withdrawal is broadcast, its guess's context frame is queued: a caller resuming just
            # as a guess was made can withdraw it before the LLM has begun it, and the gate then
            # holds that answer when it arrives, until this turn's end releases it. Withdrawing
            # once more now, long after any guess, discards it; with nothing held it is a no-op.
            await self.trigger_user_turn_speculation_cancelled()
        await self.trigger_user_turn_inference_triggered(speculation=speculation)

    async def _on_inner_turn_stopped(self, _inner: BaseUserTurnStopStrategy, params: UserTurnStoppedParams) -> None:
        confirms, self._confirming = self._confirming, False
        await self.trigger_user_turn_finalized(
            enable_user_speaking_frames=params.enable_user_speaking_frames,
            confirms_speculation=confirms or params.confirms_speculation,
        )


def speculative(
    strategy: BaseUserTurnStopStrategy,
    *,
    min_pause: float = 0.0,
    max_per_turn: int = 2,
    match_policy: EagerMatchPolicy | None = None,
) -> SpeculativeUserTurnStopStrategy:
    """``strategy`` answering at the VAD's stop (:class:`SpeculativeUserTurnStopStrategy`)."""
    return SpeculativeUserTurnStopStrategy(
        strategy, min_pause=min_pause, max_per_turn=max_per_turn, match_policy=match_policy
    )
