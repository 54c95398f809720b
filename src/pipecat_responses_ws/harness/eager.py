"""``harness --eager``: turns answered ahead of their commit, kept or withdrawn, at seeded moments.

A caller says each turn whole, or says its first words, pauses (shorter than the turn-stop
strategy waits, so the turn is not over) and says the rest. The same caller is heard under three
ways of ending a turn, each a ``--eager`` mode:

- ``off``: Pipecat's speech timeout (0.6 s after the VAD's stop) commits the turn, then the model
  is asked, as most bots run;
- ``vad``: the same, wrapped in :class:`~pipecat_responses_ws.speculation.SpeculativeUserTurnStopStrategy`,
  which asks at the VAD's stop and withdraws when the caller resumes;
- ``stt``: a scripted Flux-style eager STT (:class:`ScriptedEagerTranscriber`) predicts the end of
  the turn at the VAD's stop, withdraws it when the caller resumes (Flux's TurnResumed) and
  commits as long after the last stop as the speech timeout would, through Pipecat's
  ``EagerUserTurnStrategies``.

At frame level the caller is VAD frames queued at the scripted moments; with ``--audio`` it is the
caller's voice on the phone line through Silero VAD (:mod:`.voice`). Per turn: the commit (the
``UserStoppedSpeakingFrame`` reaching the LLM) to the answer's first text, after turns whose
prediction was kept and after turns whose first prediction was withdrawn; with ``--audio`` also
voice-to-voice; the tokens the server generated for withdrawn predictions; and any answer to an
unfinished transcript that reached the TTS or the context (an ``answered_unfinished`` violation).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipecat.audio.vad.vad_analyzer import VAD_START_SECS, VAD_STOP_SECS
from pipecat.frames.frames import (
    EagerEndOfTurnCancelFrame,
    EagerTranscriptionFrame,
    Frame,
    ProposedUserStartedSpeakingFrame,
    ProposedUserStoppedSpeakingFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregatorParams
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import EagerUserTurnStrategies, UserTurnStrategies

from ..emulator import Emulator
from ..measures import first_text_delay
from ..speculation import speculative
from .phone import ScriptedTranscriber
from .pipeline import Conversation
from .result import EagerFigures, EagerTurnFigures
from .scenario import Scenario, Turn
from .scenario_run import WAIT, ScenarioRun, tools_schema

MODES = ("off", "vad", "stt")
KINDS = ("kept", "resumed")
# How long a resumed turn's caller is silent between their two halves, from the end of the first.
# The turn ends 0.8 s into a silence (the VAD's stop delay, then the speech timeout), and the VAD
# hears the caller again 0.2 s after they resume (its start delay): 0.65 s at most leaves a margin.
# A guess is made at 0.2 s and withdrawn 0.1-0.45 s later, before the model's first token.
PAUSES = {"short_pause": 0.3, "long_pause": 0.45}
# The model as a real endpoint answers: half a second to the first token, then 25 tokens a second.
TTFT = 0.5
TOKENS_PER_SECOND = 25.0
SPEECH_TIMEOUT = 0.6  # Pipecat's default user_speech_timeout, which the scripted STT's commit matches
SPEAKING = 0.5  # frame level: seconds from the VAD's start to the caller falling silent
BETWEEN_TURNS = 0.4  # frame level: after an answer ends, before the caller's next turn


@dataclass(frozen=True)
class Words:
    """What the caller says in one turn: whole, or its first words and (after a pause) the rest."""

    first: str
    rest: str | None = None

    @property
    def whole(self) -> str:
        return self.first if self.rest is None else f"{self.first} {self.rest}"

    @property
    def unfinished_answer(self) -> str | None:
        """A fragment only an answer to the first words alone holds (the emulator echoes the user)."""
        return None if self.rest is None else f"{self.first}."


def words(turn: Turn) -> Words:
    """The same words either way, so a kept and a resumed turn are answered alike; only the pause differs."""
    if turn.kind == "resumed":
        return Words(f"u{turn.n}a please", "answer briefly")
    return Words(f"u{turn.n}a please answer briefly")


def generate(seed: int, index: int, turns: tuple[int, int] = (2, 4)) -> Scenario:
    """One run's turns, each kept or resumed after a short or a long pause; the same seed, the same turns."""
    rng = random.Random(f"eager:{seed}:{index}")
    out = []
    for n in range(1, rng.randint(*turns) + 1):
        kind = rng.choice(KINDS)
        out.append(Turn(n, kind, phase=rng.choice(list(PAUSES)) if kind == "resumed" else None))
    return Scenario(seed, index, tuple(out))


def scenarios(seed: int, runs: int) -> list[Scenario]:
    return [generate(seed, i) for i in range(runs)]


def strategies(mode: str) -> UserTurnStrategies:
    """The user aggregator's turn strategies for ``mode``."""
    if mode == "stt":
        return EagerUserTurnStrategies()
    stop = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=SPEECH_TIMEOUT)
    return UserTurnStrategies(stop=[speculative(stop) if mode == "vad" else stop])


def transcriber(mode: str) -> ScriptedTranscriber:
    return ScriptedEagerTranscriber() if mode == "stt" else ScriptedTranscriber()


class ScriptedEagerTranscriber(ScriptedTranscriber):
    """A Flux-style STT that knows the words: it follows the VAD as Flux follows the voice.

    The caller's first sound proposes the turn; each VAD stop predicts its end with the words so far
    (``EagerTranscriptionFrame``); the caller speaking again withdraws the prediction
    (``EagerEndOfTurnCancelFrame``, Flux's TurnResumed); ``commit_after`` seconds of silence after
    the VAD's stop commit the turn (a finalized ``TranscriptionFrame``, then a proposed stop).
    """

    def __init__(self, commit_after: float = SPEECH_TIMEOUT) -> None:
        super().__init__()
        self._commit_after = commit_after
        self._heard: list[str] = []
        self._in_turn = False
        self._predicted = False
        self._commit: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await FrameProcessor.process_frame(self, frame, direction)
        await self.push_frame(frame, direction)
        if direction != FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            await self._stop_commit()
            if not self._in_turn:
                self._in_turn = True
                await self.broadcast_frame(ProposedUserStartedSpeakingFrame)
            elif self._predicted:
                self._predicted = False
                await self.push_frame(EagerEndOfTurnCancelFrame())
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._words:
            self._heard += self._words
            self._words = []
            self._predicted = True
            await self.push_frame(EagerTranscriptionFrame(" ".join(self._heard), "caller", _now()))
            self._commit = self.create_task(self._commit_later(), "scripted-eager-commit")

    async def _commit_later(self) -> None:
        await asyncio.sleep(self._commit_after)
        self._commit = None
        heard, self._heard = " ".join(self._heard), []
        self._in_turn = self._predicted = False
        await self.push_frame(TranscriptionFrame(heard, "caller", _now(), finalized=True))
        await self.broadcast_frame(ProposedUserStoppedSpeakingFrame)

    async def _stop_commit(self) -> None:
        if self._commit is not None:
            task, self._commit = self._commit, None
            await self.cancel_task(task)

    async def cleanup(self) -> None:
        await self._stop_commit()
        await super().cleanup()


def _now() -> str:
    return datetime.now(UTC).isoformat()


class EagerTurns(ScenarioRun):
    """What an ``--eager`` run does with each turn, whoever the caller is (frames, or a voice)."""

    figures: EagerFigures
    said: list[Words]

    async def speak_turn(self, said: Words, pause: float) -> None:
        """The caller says ``said``, pausing ``pause`` seconds between its halves."""
        raise NotImplementedError

    async def settle(self) -> None:
        """Between one turn's answer and the caller's next turn."""
        raise NotImplementedError

    async def turn(self, turn: Turn) -> None:
        said = words(turn)
        since = len(self.conv.turns())
        stops = len(self.commits())
        await self.speak_turn(said, PAUSES.get(turn.phase or "", 0.0))
        answer = await self.answered_whole(said, turn.n, since)
        figures = EagerTurnFigures(turn.n, turn.kind, turn.phase)
        commits = self.commits()[stops:]
        if answer is not None and answer.first_text_at is not None and commits:
            figures.commit_to_first_text = first_text_delay(commits[0], answer.first_text_at)
        self.figures.turns.append(figures)
        await self.settle()

    async def answered_whole(self, said: Words, n: int, since: int) -> Any:
        """The answer to the whole turn, once it has ended; ``None`` (an unanswered turn) if it never does."""
        echo = f"You said: {said.whole}"

        def whole() -> Any:
            return next((t for t in self.conv.turns()[since:] if echo in t.text), None)

        if await self.wait(lambda: (b := whole()) is not None and b.ended is not None, n, echo):
            return whole()
        return None

    def commits(self) -> list[float]:
        """When each turn's end reached the LLM: a ``UserStoppedSpeakingFrame`` past the probe before it."""
        return [
            s.time
            for s in self.conv.upstream.seen
            if isinstance(s.frame, UserStoppedSpeakingFrame) and s.direction == FrameDirection.DOWNSTREAM
        ]

    def finish(self, spoken: str | None) -> EagerFigures:
        """The run's figures once it is over: the server's records and what reached the TTS and context."""
        figures = self.figures
        heard = self.conv.text() if spoken is None else spoken
        context = " ".join(str(m.get("content")) for m in self.conv.messages() if m.get("role") == "assistant")
        markers = [m for said in self.said if (m := said.unfinished_answer) is not None]
        figures.answered_unfinished = sum(m in heard or m in context for m in markers)
        generated = [r for r in self.emu.records.responses if r.generate]
        figures.requests = len(generated)
        withdrawn = [r for r in generated if any(m in r.text for m in markers)]
        figures.withdrawn_answers = len(withdrawn)
        figures.withdrawn_tokens = sum(r.output_tokens_generated for r in withdrawn)
        return figures


class EagerRun(EagerTurns):
    """One ``--eager`` scenario at frame level: the caller is VAD frames at the scripted moments."""

    def __init__(
        self,
        emu: Emulator,
        llm: Any,
        mode: str,
        *,
        wait: float = WAIT,
        rtvi: bool = False,
        turn_strategies: UserTurnStrategies | None = None,
    ) -> None:
        """``turn_strategies`` replaces the mode's own (:func:`strategies`), to try other settings."""
        self.transcriber = transcriber(mode)
        conv = Conversation(
            llm,
            context=LLMContext(tools=tools_schema()),
            rtvi=rtvi,
            inputs=[self.transcriber],
            user_params=LLMUserAggregatorParams(user_turn_strategies=turn_strategies or strategies(mode)),
        )
        super().__init__(emu, conv, wait)
        self.figures = EagerFigures(mode)
        self.said = []

    async def utter(self, text: str) -> None:
        """The caller says ``text``: the VAD's start, and its stop once the caller has been silent a while."""
        self.transcriber.expect(text)
        await self.conv.worker.queue_frame(VADUserStartedSpeakingFrame(start_secs=VAD_START_SECS))
        await asyncio.sleep(SPEAKING + VAD_STOP_SECS)
        await self.conv.worker.queue_frame(VADUserStoppedSpeakingFrame(stop_secs=VAD_STOP_SECS))

    async def speak_turn(self, said: Words, pause: float) -> None:
        self.said.append(said)
        await self.utter(said.first)
        if said.rest is not None:
            # The VAD's stop came its stop delay into the pause.
            await asyncio.sleep(max(0.0, pause - VAD_STOP_SECS))
            await self.utter(said.rest)

    async def settle(self) -> None:
        await asyncio.sleep(BETWEEN_TURNS)
