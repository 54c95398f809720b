"""Both our services in a real Pipecat pipeline against a LiteLLM proxy (its Responses bridge, a mock model)."""

from __future__ import annotations

from typing import Any

import pytest
from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.processors.aggregators.llm_context import LLMContext

from pipecat_responses_ws import ResponsesHTTPLLMService, ResponsesWSLLMService
from pipecat_responses_ws.harness.pipeline import Conversation

from .litellm_proxy import (
    BRIDGED_MODEL,
    LONG_MODEL,
    LONG_TEXT,
    MASTER_KEY,
    MOCK_TEXT,
    PASSTHROUGH_MODEL,
    LiteLLMProxy,
)

pytestmark = pytest.mark.interop

USER_TURNS = ["Hi!", "How are you today?", "Tell me one more thing."]
# Generous: each turn crosses the proxy twice (the bridge calls its own chat endpoint).
TURN_TIMEOUT_SECS = 30.0


async def _talk(conversation: Conversation) -> None:
    for ended, text in enumerate(USER_TURNS, start=1):
        await conversation.say(text)
        await conversation.wait_turns_ended(ended, timeout=TURN_TIMEOUT_SECS)


def _ws_service(proxy: LiteLLMProxy, model: str = BRIDGED_MODEL) -> ResponsesWSLLMService:
    return ResponsesWSLLMService(
        api_key=MASTER_KEY,
        ws_url=proxy.ws_url,
        settings=ResponsesWSLLMService.Settings(model=model, system_instruction="Answer briefly."),
    )


def _http_service(proxy: LiteLLMProxy, model: str = BRIDGED_MODEL) -> ResponsesHTTPLLMService:
    return ResponsesHTTPLLMService(
        api_key=MASTER_KEY,
        base_url=proxy.http_base_url,
        settings=ResponsesHTTPLLMService.Settings(model=model, system_instruction="Answer briefly."),
    )


async def test_websocket_service_answers_every_turn_incrementally_through_litellm(litellm_proxy: LiteLLMProxy) -> None:
    llm = _ws_service(litellm_proxy)
    async with Conversation(llm) as conversation:
        await _talk(conversation)
    assert [t.text for t in conversation.turns()] == [MOCK_TEXT] * len(USER_TURNS)
    assert [e.error for e in conversation.errors()] == []
    # The mock streams a few characters a chunk: the text came in many deltas, not in one piece.
    assert llm.stats.text_deltas_received >= 5 * len(USER_TURNS)
    # LiteLLM ignores stream_id (so one response at a time per connection) but keeps the
    # connection's responses: every turn after the first went as previous_response_id + new items.
    assert (llm.stats.incremental_turns, llm.stats.full_context_fallbacks) == (len(USER_TURNS) - 1, 0)
    assert llm.stats.events_skipped == 0


async def test_websocket_service_barge_in_through_litellm(litellm_proxy: LiteLLMProxy) -> None:
    llm = _ws_service(litellm_proxy, LONG_MODEL)
    async with Conversation(llm) as conversation:
        await conversation.say("Tell me everything.")
        await conversation.wait_text("word3", timeout=TURN_TIMEOUT_SECS)
        await conversation.interrupt()
        await conversation.say("And once more, please.")
        await conversation.wait_turns_ended(2, timeout=TURN_TIMEOUT_SECS)
    abandoned, answered = conversation.turns()
    assert abandoned.interrupted and abandoned.text != LONG_TEXT
    assert answered.text == LONG_TEXT
    assert conversation.text_after_interruptions() == []
    assert [e.error for e in conversation.errors()] == []
    # Without lanes, the barge-in either moved to a warm spare connection or stayed on its own.
    assert llm.stats.barge_ins_to_spare + llm.stats.barge_ins_on_same_connection == 1
    assert llm.stats.events_skipped == 0


async def test_http_service_answers_every_turn_through_litellm(litellm_proxy: LiteLLMProxy) -> None:
    llm = _http_service(litellm_proxy)
    async with Conversation(llm) as conversation:
        await _talk(conversation)
    assert [t.text for t in conversation.turns()] == [MOCK_TEXT] * len(USER_TURNS)
    assert [e.error for e in conversation.errors()] == []
    assert llm.stats.text_deltas_received >= 5 * len(USER_TURNS)
    # store is off, so over HTTP every turn carries the whole conversation, as it should.
    assert llm.stats.incremental_turns == 0


async def test_http_service_skips_no_event_from_litellm(litellm_proxy: LiteLLMProxy) -> None:
    llm = _http_service(litellm_proxy)
    async with Conversation(llm) as conversation:
        await _talk(conversation)
    assert len(conversation.turns()) == len(USER_TURNS)
    assert llm.stats.events_skipped == 0


# -- LiteLLM as the gateway in front of a Responses server (our emulator) ------------------------

WEATHER = ToolsSchema(
    standard_tools=[
        FunctionSchema(
            name="get_weather",
            description="The current weather in a city",
            properties={"city": {"type": "string"}},
            required=["city"],
        )
    ]
)


async def _weather_turn(llm: ResponsesWSLLMService | ResponsesHTTPLLMService) -> tuple[Conversation, list[Any]]:
    """One question the emulator's model answers with a get_weather call, then with what the tool found."""
    calls: list[Any] = []

    async def get_weather(params: Any) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback({"sky": "clear", "degrees": 21})

    llm.register_function("get_weather", get_weather)
    async with Conversation(llm, context=LLMContext(tools=WEATHER)) as conversation:
        await conversation.say("What's the weather like in Paris?")
        # An error ends the wait too, so a failing gateway fails the test at once, not at the timeout.
        await conversation.wait_for(
            lambda: "Here is what I found" in conversation.text() or bool(conversation.errors()),
            TURN_TIMEOUT_SECS,
            "the answer after the tool, or an error",
        )
    return conversation, calls


async def test_http_service_calls_a_tool_through_litellm_in_front_of_the_emulator(litellm_proxy: LiteLLMProxy) -> None:
    llm = _http_service(litellm_proxy, PASSTHROUGH_MODEL)
    conversation, calls = await _weather_turn(llm)
    assert [e.error for e in conversation.errors()] == []
    assert calls == [{"city": "Paris"}]
    assert conversation.turns()[-1].text.startswith("Here is what I found:")


@pytest.mark.xfail(
    strict=False,
    raises=AssertionError,
    reason="LiteLLM 1.108.7 opens its upstream WebSocket with an ssl argument even for a ws:// URL, which websockets "
    "refuses: each connection is closed with 1011 at its first response.create; the service sends the turn once "
    "more on a fresh connection, then reports the error",
)
async def test_websocket_service_calls_a_tool_through_litellm_in_front_of_the_emulator(
    litellm_proxy: LiteLLMProxy,
) -> None:
    llm = _ws_service(litellm_proxy, PASSTHROUGH_MODEL)
    conversation, calls = await _weather_turn(llm)
    assert [e.error for e in conversation.errors()] == []
    assert calls == [{"city": "Paris"}]
    assert conversation.turns()[-1].text.startswith("Here is what I found:")
