"""Deliberately broken LLM services: each breaks one promise the harness checks."""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.harness.scenario import TAG, tagged_text


def _ours(cls: type[ResponsesWSLLMService], url: str) -> ResponsesWSLLMService:
    return cls(api_key="k", ws_url=url, settings=cls.Settings(model="emulated", system_instruction="Be brief."))


class _RemembersItsLastText(ResponsesWSLLMService):
    last_text = ""

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, LLMTextFrame):
            self.last_text = frame.text
        await super().push_frame(frame, direction)


class LeaksAfterInterruption(_RemembersItsLastText):
    """Keeps talking after the user barged in: re-pushes the last text it sent."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame) and self.last_text:
            await super().push_frame(LLMTextFrame(self.last_text))


class RepeatsItself(ResponsesWSLLMService):
    """Pushes every response's text a second time just before the response ends."""

    said = ""

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, LLMTextFrame):
            self.said += frame.text
        elif isinstance(frame, LLMFullResponseEndFrame) and self.said:
            said, self.said = self.said, ""
            await super().push_frame(LLMTextFrame(" " + said))
        await super().push_frame(frame, direction)


class RunsToolsTwice(ResponsesWSLLMService):
    """Runs each tool call's handler twice (the first result is thrown away)."""

    def register_function(self, name: Any, handler: Any, *args: Any, **kwargs: Any) -> None:
        async def twice(params: Any) -> None:
            async def discard(*_a: Any, **_k: Any) -> None:
                return None

            real = params.result_callback
            params.result_callback = discard
            await handler(params)
            params.result_callback = real
            await handler(params)

        super().register_function(name, twice, *args, **kwargs)


class NeverAnswers(ResponsesWSLLMService):
    """Swallows the context: no request is ever made."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMContextFrame):
            return
        await super().process_frame(frame, direction)


def factory(cls: type[ResponsesWSLLMService]):
    return lambda url: _ours(cls, url)


class KeepsTalking(_RemembersItsLastText):
    """Goes on with the abandoned answer after the user barged in: one more sentence of it, after ``pause``.

    The sentence is :data:`EXTRA_WORDS` words tagged as the cut answer's, so the harness sees it as
    stale text and the caller hears it as that answer's audio; its length is known in advance.
    """

    pause = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame) and (found := TAG.search(self.last_text)):
            self.create_task(self._go_on(found.group(1)))

    async def _go_on(self, tag: str) -> None:
        # As its own response, the way a cancelled answer still streaming reaches a careless stage.
        await asyncio.sleep(self.pause)
        await super().push_frame(LLMFullResponseStartFrame())
        await super().push_frame(LLMTextFrame(extra_sentence(tag)))
        await super().push_frame(LLMFullResponseEndFrame())


EXTRA_WORDS = 8


def extra_sentence(tag: str) -> str:
    return tagged_text(tag, EXTRA_WORDS).replace("s0w", "s99w")


class KeepsTalkingAfterAPause(KeepsTalking):
    pause = 0.6


class SlowToAnswer(ResponsesWSLLMService):
    """Starts every answer :data:`SLOW_BY` seconds late, as a far-away or overloaded endpoint would."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMContextFrame):
            await asyncio.sleep(SLOW_BY)
        await super().process_frame(frame, direction)


SLOW_BY = 0.5
