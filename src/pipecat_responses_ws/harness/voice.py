"""The harness's scenarios played on a real voice pipeline, in real time, with a caller who speaks.

``phone line in → Silero VAD → scripted transcriber → user aggregator → LLM under test →
espeak-ng TTS → phone line out → assistant aggregator``. Pipecat's own turn taking decides
when the caller's turn ends and when a barge-in interrupts the bot (its VAD turn-start strategy,
then the speech-timeout stop strategy), so every service under test meets the same ears.

The caller speaks each user turn; a barge-in is the caller starting the next turn's words at the
scenario's phase, which interrupts the bot through the VAD exactly as on a call. Everything the
frame-level harness checks is checked here too (its probes sit on both sides of the LLM), and
each barge-in is also measured at the caller's ear (:mod:`.ear`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import TTSTextFrame
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMUserAggregatorParams
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from ..emulator import Emulator
from .ear import BargeInMark, Ear, HeardBargeIn
from .phone import Caller, PhoneLine, ScriptedTranscriber, Utterance
from .pipeline import Conversation, Probe
from .scenario import LONG_WORDS_SPOKEN, Turn
from .scenario_run import RunProgress, ScenarioRun, tools_schema
from .speech import RATE, EspeakTTS, synthesize

CALLER_VOICE = "en-us+f3"  # a voice unlike the bot's, so a listener to a recording tells them apart
MID_ANSWER = 0.6  # seconds of an answer the caller hears before a mid-answer barge-in
QUIET = 0.5  # the caller waits this long after the bot's voice stops before taking the next turn
AUDIO_STARTS = 3.0  # an answer's audio starting later than this after its text counts as none
_clips: dict[str, np.ndarray] = {}


async def caller_clip(words: str) -> np.ndarray:
    """The caller's voice for ``words`` (synthesized once per process)."""
    if words not in _clips:
        _clips[words] = await synthesize(words, voice=CALLER_VOICE, words_per_minute=200)
    return _clips[words]


class VoiceRun(ScenarioRun):
    """One scenario on a voice pipeline: the caller, the line, and the barge-ins as marked."""

    long_words = LONG_WORDS_SPOKEN

    def __init__(
        self,
        emu: Emulator,
        llm: Any,
        *,
        wait: float,
        reply_gap: float,
        rtvi: bool,
        transcriber: ScriptedTranscriber | None = None,
        turn_strategies: UserTurnStrategies | None = None,
    ) -> None:
        """``transcriber`` and ``turn_strategies`` replace the scripted STT and the speech timeout (``--eager``)."""
        self.caller = Caller()
        self.line = PhoneLine(self.caller)
        self.transcriber = transcriber or ScriptedTranscriber()
        # What the assistant aggregator is given: the TTS's words, each as its audio went out.
        self.spoken = Probe("probe-after-line")
        conv = Conversation(
            llm,
            context=LLMContext(tools=tools_schema()),
            rtvi=rtvi,
            inputs=[self.line.input(), VADProcessor(vad_analyzer=SileroVADAnalyzer()), self.transcriber],
            user_params=LLMUserAggregatorParams(
                user_turn_strategies=turn_strategies or UserTurnStrategies(stop=[SpeechTimeoutUserTurnStopStrategy()])
            ),
            listeners=[EspeakTTS(self.line.provenance), self.line.output(), self.spoken],
            audio_rate=RATE,
        )
        super().__init__(emu, conv, wait, reply_gap)
        conv.follow(self.line.changes)
        self.marks: list[BargeInMark] = []
        self.origin = time.monotonic()
        self._turn = 0
        self._utterance: Utterance | None = None

    async def speak(self, words: str) -> Utterance:
        """The caller says ``words``; returns once the first sample is on the line."""
        samples = await caller_clip(words)
        self.transcriber.expect(words)
        return await asyncio.wait_for(self.caller.say(words, samples), 5)

    async def ask(self, text: str) -> tuple[float, int]:
        """The caller speaks a turn: when Pipecat's turn taking handed it to the LLM, and the brackets before."""
        conv = self.conv
        before, contexts = len(conv.turns()), conv.contexts_sent
        self._utterance = await self.speak(text)
        if await self.wait(lambda: conv.contexts_sent > contexts, self._turn, "the caller's turn to reach the LLM"):
            return conv.last_context_at, before
        return time.monotonic(), before

    async def turn(self, turn: Turn) -> None:
        self._turn = turn.n
        await super().turn(turn)
        await self.until_quiet()

    async def until_quiet(self) -> None:
        """A caller lets the bot finish: wait for the last answer's audio to start and then to stop."""
        line, turns = self.line, self.conv.turns()
        last = turns[-1] if turns else None
        if last is not None and last.first_text_at is not None:
            first_text = last.first_text_at
            try:
                await self.conv.wait_for(lambda: line.last_audible > first_text, AUDIO_STARTS, "the answer's audio")
            except TimeoutError:
                return
        # Woken when the line could have been quiet long enough: each chunk played moves that moment on.
        await self.conv.wait_for(
            lambda: line.changes.reached(line.last_audible + QUIET), 60, "the bot to stop speaking"
        )

    def phase_reached(self, turn: Turn, since: int, before: RunProgress) -> Callable[[], bool]:
        """When the caller starts to speak again; the VAD's interruption follows a fifth of a second later."""
        line, tag = self.line, turn.tag("a")

        def heard_for(seconds: float) -> bool:
            first = line.first_heard.get(tag)
            return first is not None and line.changes.reached(first + seconds)

        if turn.phase == "before_request":
            return lambda: True  # at once: the turn has only just been handed to the LLM
        if turn.phase == "mid_text":
            return lambda: heard_for(MID_ANSWER)
        if turn.phase == "at_terminal":
            # The answer's text is all out and its audio is still playing: only the line can stop it now.
            text_ended = super().phase_reached(turn, since, before)
            return lambda: text_ended() and heard_for(0.1)
        return super().phase_reached(turn, since, before)

    async def cut_in(self, turn: Turn) -> tuple[float, int]:
        """The caller says the next turn's words over the bot: they interrupt it, then become the turn."""
        asked, since = await self.ask(turn.user_text("b"))
        utterance = self._utterance
        assert utterance is not None
        self.abandoned_at[turn.tag("a")] = utterance.start
        self.marks.append(BargeInMark(turn.n, str(turn.phase), turn.tag("a"), turn.tag("b"), utterance))
        return asked, since

    def spoken_text(self) -> str:
        return "".join(
            s.frame.text
            for s in self.spoken.seen
            if isinstance(s.frame, TTSTextFrame) and s.direction == FrameDirection.DOWNSTREAM
        )

    def ear(self) -> Ear:
        return Ear(self.origin, self.caller.said, self.line.heard, time.monotonic())

    def heard(self, ear: Ear) -> list[HeardBargeIn]:
        return [ear.barge_in(mark) for mark in self.marks]
