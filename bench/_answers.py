"""Counting answers as they leave the LLM, for benchmarks that wait on them.

Tests poll a probe's list of every frame; at benchmark volumes that poll would cost more than
the stage being measured, so this processor counts and wakes the waiter instead.
"""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import Frame, LLMFullResponseEndFrame, LLMTextFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


class AnswerCounter(FrameProcessor):
    """Counts text frames and finished answers; ``answered`` is set at each answer's end."""

    def __init__(self) -> None:
        super().__init__(name="answer-counter")
        self.text_frames = 0
        self.answers = 0
        self.answered = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, LLMTextFrame):
            self.text_frames += 1
        elif isinstance(frame, LLMFullResponseEndFrame):
            self.answers += 1
            self.answered.set()
        await self.push_frame(frame, direction)

    async def wait_answers(self, count: int, timeout: float) -> None:
        """Until ``count`` answers have ended; ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while self.answers < count:
                self.answered.clear()
                await self.answered.wait()
