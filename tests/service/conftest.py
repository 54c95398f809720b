"""A real emulator on loopback and a real Pipecat pipeline around the service, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.aggregators.llm_context import LLMContext

from pipecat_responses_ws import ResponsesHTTPLLMService, ResponsesWSLLMService
from pipecat_responses_ws.emulator import Emulator
from pipecat_responses_ws.harness.pipeline import Conversation

# Long enough that a design which waits for the abandoned response misses by seconds.
LONG_TEXT = " ".join(f"word{n}" for n in range(60)) + "."
# The emulator's pacing unless a test sets its own: 20 ms to the first delta (a test about that
# moment sets it), 100 tokens a second (LONG_TEXT streams for 0.6 s, time for a barge-in mid-text).
PACING = {"ttft": 0.02, "tokens_per_second": 100.0}


def weather_tools(*names: str) -> ToolsSchema:
    return ToolsSchema(
        standard_tools=[
            FunctionSchema(
                name=name,
                description=f"{name} for a city",
                properties={"city": {"type": "string"}},
                required=["city"],
            )
            for name in names or ("get_weather",)
        ]
    )


@asynccontextmanager
async def session(
    *,
    emulator: dict[str, Any] | None = None,
    service: dict[str, Any] | None = None,
    tools: ToolsSchema | None = None,
    setup: Callable[[ResponsesWSLLMService], None] | None = None,
    settings: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Emulator, ResponsesWSLLMService, Conversation]]:
    """``settings`` adds ``ResponsesWSLLMService.Settings`` fields to the model and instructions."""
    options = {**PACING, **(emulator or {})}
    fields = {"model": "emulated", "system_instruction": "Answer briefly.", **(settings or {})}
    async with Emulator(**options) as emu:
        llm = ResponsesWSLLMService(
            api_key=options.get("api_key") or "test-key",
            ws_url=emu.ws_url,
            settings=ResponsesWSLLMService.Settings(**fields),
            **(service or {}),
        )
        if setup is not None:
            setup(llm)
        context = LLMContext(tools=tools) if tools is not None else LLMContext()
        async with Conversation(llm, context=context) as conversation:
            conversation.follow(emu.records.changes)
            yield emu, llm, conversation


@asynccontextmanager
async def http_session(
    *,
    emulator: dict[str, Any] | None = None,
    service: dict[str, Any] | None = None,
    tools: ToolsSchema | None = None,
    setup: Callable[[ResponsesHTTPLLMService], None] | None = None,
) -> AsyncIterator[tuple[Emulator, ResponsesHTTPLLMService, Conversation]]:
    """As ``session``, with our HTTP service on the emulator's ``http_base_url``."""
    options = {**PACING, **(emulator or {})}
    async with Emulator(**options) as emu:
        llm = ResponsesHTTPLLMService(
            **{
                "api_key": options.get("api_key") or "test-key",
                "base_url": emu.http_base_url,
                "settings": ResponsesHTTPLLMService.Settings(model="emulated", system_instruction="Answer briefly."),
                **(service or {}),
            }
        )
        if setup is not None:
            setup(llm)
        context = LLMContext(tools=tools) if tools is not None else LLMContext()
        async with Conversation(llm, context=context) as conversation:
            conversation.follow(emu.records.changes)
            yield emu, llm, conversation


@pytest.fixture
def long_text() -> str:
    return LONG_TEXT
