"""Pipecat's built-in ``OpenAIResponsesHttpLLMService`` against the emulator's HTTP endpoint, in a real pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.openai.responses.llm import OpenAIResponsesHttpLLMService

from pipecat_responses_ws.emulator import Emulator, Fault, Reply, ToolCall
from pipecat_responses_ws.harness.pipeline import Conversation

WEATHER = ToolsSchema(
    standard_tools=[
        FunctionSchema(
            name="get_weather",
            description="get_weather for a city",
            properties={"city": {"type": "string"}},
            required=["city"],
        )
    ]
)


def pipecat_http(emu: Emulator) -> OpenAIResponsesHttpLLMService:
    settings = OpenAIResponsesHttpLLMService.Settings(model="emulated", system_instruction="Answer briefly.")
    return OpenAIResponsesHttpLLMService(api_key="sk-test", base_url=emu.http_base_url, settings=settings)


@asynccontextmanager
async def pipeline(
    tools: ToolsSchema | None = None, **emulator: Any
) -> AsyncIterator[tuple[Emulator, OpenAIResponsesHttpLLMService, Conversation]]:
    async with Emulator(**{"ttft": 0.02, "tokens_per_second": 200.0, **emulator}) as emu:
        llm = pipecat_http(emu)
        context = LLMContext(tools=tools) if tools is not None else LLMContext()
        async with Conversation(llm, context=context) as conversation:
            yield emu, llm, conversation


async def test_a_turn_streams_over_http() -> None:
    async with pipeline() as (emu, _, conversation):
        emu.queue_replies(Reply(text="Hello from HTTP."))
        await conversation.say("Hi!")
        await conversation.wait_turns_ended(1)
        assert conversation.text() == "Hello from HTTP."
        assert conversation.errors() == []
    (request,) = emu.records.http_requests
    (create,) = emu.records.creates()
    assert (request.method, request.path, request.status, request.stream) == ("POST", "/v1/responses", 200, True)
    assert create["store"] is False and create["instructions"] == "Answer briefly."
    assert emu.records.handshakes == [] and emu.connection_count == 0


async def test_a_tool_round_trip_sends_the_full_context_again() -> None:
    async with pipeline(tools=WEATHER) as (emu, llm, conversation):

        async def get_weather(params: Any) -> None:
            await params.result_callback({"city": params.arguments["city"], "sky": "clear"})

        llm.register_function("get_weather", get_weather)
        emu.queue_replies(Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})]), Reply(text="Clear in Oslo."))
        await conversation.say("What's the weather in Oslo?")
        await conversation.wait_text("Clear in Oslo.")
    first, follow_up = emu.records.creates()
    # Over HTTP with store false, nothing is chained: the second request carries the whole conversation.
    assert "previous_response_id" not in follow_up
    assert [item.get("type") for item in follow_up["input"]][-2:] == ["function_call", "function_call_output"]
    assert len(follow_up["input"]) > len(first["input"])


async def test_a_barge_in_closes_the_stream_and_the_emulator_stops_generating() -> None:
    long_text = " ".join(f"word{n}" for n in range(100)) + "."
    async with pipeline(tokens_per_second=25.0) as (emu, _, conversation):
        emu.queue_replies(Reply(text=long_text), Reply(text="Fresh answer."))
        await conversation.say("Tell me a long story.")
        await conversation.wait_text("word2 ")
        await conversation.interrupt()
        await emu.records.wait_for(lambda: emu.records.http_requests[0].closed_at is not None)
        await conversation.say("Stop, something else.")
        await conversation.wait_text("Fresh answer.")
    abandoned, fresh = emu.records.responses
    assert abandoned.cancelled_at is not None and abandoned.finished_at is None
    assert abandoned.output_tokens_generated < 100
    assert fresh.status == "completed"


async def test_run_inference_gets_a_non_streamed_response() -> None:
    async with pipeline() as (emu, llm, _):
        emu.queue_replies(Reply(text="A summary."))
        context = LLMContext(messages=[{"role": "user", "content": "Summarise our talk."}])
        assert await llm.run_inference(context, max_tokens=50) == "A summary."
    (request,) = emu.records.http_requests
    (create,) = emu.records.creates()
    assert request.stream is False and request.status == 200
    assert create["max_output_tokens"] == 50 and create["stream"] is False


async def test_line_separators_in_the_text_and_a_done_ending_are_read_whole() -> None:
    # What the emulator's line_separators fault and stream_end "done" play is what real servers send:
    # the built-in, on the SDK's own SSE decoder, hears every word and no error.
    async with pipeline(stream_end="done") as (emu, _, conversation):
        emu.queue_replies(Reply(text="one two three four five.", fault=Fault("line_separators")))
        await conversation.say("Hi!")
        await conversation.wait_turns_ended(1)
        assert conversation.text() == emu.records.responses[0].text == "one\u2028two\u2029three\x85four five."
        assert conversation.errors() == []
