"""The least an LLM stage can do: ``websockets`` and ``json.loads`` in a loop, one ``LLMTextFrame`` per delta.

Benchmarks put it where the LLM service goes, so what the pipeline itself costs (and how many
sessions it holds) is measured beside what a service adds to it. It keeps no context: every turn
sends the latest user message alone, so the emulator's answer is as long as the one a service
gets for the whole context (the answer echoes the user's words).
"""

from __future__ import annotations

import json
from typing import Any

import websockets
from pipecat.frames.frames import (
    Frame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_responses_ws.protocol import wire

HEADERS = {"Authorization": "Bearer bench"}
# A request-level error ends the bare loop's answer too.
TERMINALS = wire.TERMINAL_EVENTS | {wire.ERROR}


def create_request(text: str) -> dict[str, Any]:
    return {
        "type": wire.RESPONSE_CREATE,
        "model": "emulated",
        "store": False,
        "input": [{"type": "message", "role": "user", "content": text}],
    }


def latest_user_text(frame: LLMContextFrame) -> str:
    """What the user said last: the emulator echoes it, as it does for a service sending the whole context."""
    for message in reversed(frame.context.get_messages()):
        if (
            isinstance(message, dict)
            and message.get("role") == "user"
            and isinstance(content := message.get("content"), str)
        ):
            return content
    return "go"


class BareLoopLLM(FrameProcessor):
    """The floor as an LLM stage: one ``LLMTextFrame`` per delta, nothing else."""

    def __init__(self, url: str) -> None:
        super().__init__(name="bare-loop-llm")
        self._url = url
        self._ws: Any = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        if self._ws is None:
            self._ws = await websockets.connect(self._url, additional_headers=HEADERS, compression=None, max_size=None)
        await self.push_frame(LLMFullResponseStartFrame())
        await self._ws.send(json.dumps(create_request(latest_user_text(frame))))
        async for raw in self._ws:
            event = json.loads(raw)
            kind = event["type"]
            if kind == wire.OUTPUT_TEXT_DELTA:
                await self.push_frame(LLMTextFrame(event["delta"]))
            elif kind in TERMINALS:
                break
        await self.push_frame(LLMFullResponseEndFrame())

    async def cleanup(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        await super().cleanup()
