"""Both our services in a real Pipecat pipeline against a LiteLLM proxy (its Responses bridge, a mock model)."""

from __future__ import annotations

import pytest

from pipecat_responses_ws import ResponsesHTTPLLMService, ResponsesWSLLMService
from pipecat_responses_ws.harness.pipeline import Conversation

from .litellm_proxy import BRIDGED_MODEL, MASTER_KEY, MOCK_TEXT, LiteLLMProxy

pytestmark = pytest.mark.interop

USER_TURNS = ["Hi!", "How are you today?", "Tell me one more thing."]
# Generous: each turn crosses the proxy twice (the bridge calls its own chat endpoint).
TURN_TIMEOUT_SECS = 30.0


async def _talk(conversation: Conversation) -> None:
    for ended, text in enumerate(USER_TURNS, start=1):
        await conversation.say(text)
        await conversation.wait_turns_ended(ended, timeout=TURN_TIMEOUT_SECS)


def _ws_service(proxy: LiteLLMProxy) -> ResponsesWSLLMService:
    return ResponsesWSLLMService(
        api_key=MASTER_KEY,
        ws_url=proxy.ws_url,
        settings=ResponsesWSLLMService.Settings(model=BRIDGED_MODEL, system_instruction="Answer briefly."),
    )


def _http_service(proxy: LiteLLMProxy) -> ResponsesHTTPLLMService:
    return ResponsesHTTPLLMService(
        api_key=MASTER_KEY,
        base_url=proxy.http_base_url,
        settings=ResponsesHTTPLLMService.Settings(model=BRIDGED_MODEL, system_instruction="Answer briefly."),
    )


async def test_websocket_service_answers_every_turn_incrementally_through_litellm(litellm_proxy: LiteLLMProxy) -> None:
    llm = _ws_service(litellm_proxy)
    async with Conversation(llm) as conversation:
        await _talk(conversation)
    assert [t.text for t in conversation.turns()] == [MOCK_TEXT] * len(USER_TURNS)
    assert not conversation.errors()
    # The mock streams a few characters a chunk: the text came in many deltas, not in one piece.
    assert llm.stats.text_deltas_received >= 5 * len(USER_TURNS)
    # LiteLLM ignores stream_id (so one response at a time per connection) but keeps the
    # connection's responses: every turn after the first went as previous_response_id + new items.
    assert (llm.stats.incremental_turns, llm.stats.full_context_fallbacks) == (len(USER_TURNS) - 1, 0)
    assert llm.stats.events_skipped == 0


async def test_http_service_answers_every_turn_through_litellm(litellm_proxy: LiteLLMProxy) -> None:
    llm = _http_service(litellm_proxy)
    async with Conversation(llm) as conversation:
        await _talk(conversation)
    assert [t.text for t in conversation.turns()] == [MOCK_TEXT] * len(USER_TURNS)
    assert not conversation.errors()
    assert llm.stats.text_deltas_received >= 5 * len(USER_TURNS)
    # store is off, so over HTTP every turn carries the whole conversation, as it should.
    assert llm.stats.incremental_turns == 0


@pytest.mark.xfail(
    strict=False,
    reason="LiteLLM ends each stream with `data: [DONE]`, which the HTTP client logs and counts as a malformed "
    "event (one per turn) until its SSE parser accepts it",
)
async def test_http_service_skips_no_event_from_litellm(litellm_proxy: LiteLLMProxy) -> None:
    llm = _http_service(litellm_proxy)
    async with Conversation(llm) as conversation:
        await _talk(conversation)
    assert len(conversation.turns()) == len(USER_TURNS)
    assert llm.stats.events_skipped == 0
