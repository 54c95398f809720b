"""``harness --eager --audio``: the eager turns of :mod:`.eager` spoken by the caller on the phone line.

The caller's voice goes through Silero VAD as in every ``--audio`` run (:mod:`.voice`); only the
transcriber and the turn strategies are the mode's. Voice-to-voice is measured at the caller's
ear, from the end of the caller's last words in a turn to the first sound of its answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..emulator import Emulator
from ..measures import voice_to_voice
from .eager import EagerTurns, Words, strategies, transcriber
from .ear import BargeInMark, Ear
from .phone import Utterance
from .result import EagerFigures
from .speech import RATE
from .voice import VoiceRun


class EagerVoiceRun(EagerTurns, VoiceRun):
    def __init__(self, emu: Emulator, llm: Any, mode: str, *, wait: float, rtvi: bool) -> None:
        super().__init__(
            emu,
            llm,
            wait=wait,
            reply_gap=0.0,
            rtvi=rtvi,
            transcriber=transcriber(mode),
            turn_strategies=strategies(mode),
        )
        self.figures = EagerFigures(mode)
        self.said = []
        self.last_words: list[tuple[int, Utterance]] = []  # each turn's number and the caller's last utterance in it

    async def speak_turn(self, said: Words, pause: float) -> None:
        self.said.append(said)
        self._turn = len(self.said)
        utterance = await self.speak(said.first)
        if said.rest is not None:
            ends = utterance.start + len(utterance.samples) / RATE
            await asyncio.sleep(max(0.0, ends + pause - time.monotonic()))
            utterance = await self.speak(said.rest)
        self.last_words.append((self._turn, utterance))

    async def settle(self) -> None:
        await self.until_quiet()

    def finish(self, spoken: str | None) -> EagerFigures:
        figures = super().finish(spoken)
        ear = self.ear()
        for (n, last), turn in zip(self.last_words, figures.turns, strict=False):
            turn.voice_to_voice = _voice_to_voice(ear, n, last)
        return figures


def _voice_to_voice(ear: Ear, n: int, last: Utterance) -> float | None:
    """From the end of the caller's last words in turn ``n`` to the first sound of its answer (tagged ``na``)."""
    heard = ear.barge_in(BargeInMark(n, "eager", abandoned=f"{n}z", fresh=f"{n}a", utterance=last))
    return None if heard.fresh_at is None else voice_to_voice(heard.caller_end, heard.fresh_at)
