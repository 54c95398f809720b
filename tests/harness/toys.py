"""Deliberately broken LLM services: each breaks one promise the harness checks."""

from __future__ import annotations

from typing import Any

from pipecat.frames.frames import (
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection

from pipecat_responses_ws import ResponsesWSLLMService


def _ours(cls: type[ResponsesWSLLMService], url: str) -> ResponsesWSLLMService:
    return cls(api_key="k", ws_url=url, settings=cls.Settings(model="emulated", system_instruction="Be brief."))


class LeaksAfterInterruption(ResponsesWSLLMService):
    """Keeps talking after the user barged in: re-pushes the last text it sent."""

    last_text = ""

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, LLMTextFrame):
            self.last_text = frame.text
        await super().push_frame(frame, direction)

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
