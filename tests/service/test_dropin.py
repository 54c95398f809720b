"""What a bot switching from Pipecat's built-in expects to keep: its ``model=``, its filler event, its metrics.

Each runs against the emulator over loopback in a real pipeline; where the built-in is compared, it
runs the same scenario beside ours.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from pipecat.metrics.metrics import TTFATMetricsData, TTFBMetricsData
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.services.llm_service import FunctionCallParams, LLMService
from pipecat.services.openai.responses.llm import OpenAIResponsesLLMService
from pipecat.utils import deprecation

from pipecat_responses_ws import ResponsesHTTPLLMService, ResponsesWSLLMService
from pipecat_responses_ws.changes import Changes, until, within
from pipecat_responses_ws.emulator import Emulator, Reply, ToolCall
from pipecat_responses_ws.harness.pipeline import Conversation

from .conftest import weather_tools
from .test_pipecat_parity import SERVICES, generated_creates, running

OURS = {"websocket": ResponsesWSLLMService, "http": ResponsesHTTPLLMService}


def _ours(transport: str, emu: Emulator, **kwargs: Any) -> LLMService[Any]:
    where = {"ws_url": emu.ws_url} if transport == "websocket" else {"base_url": emu.http_base_url}
    return OURS[transport](api_key="k", **where, **kwargs)  # type: ignore[no-any-return]


@contextmanager
def deprecation_warnings() -> Iterator[list[warnings.WarningMessage]]:
    # Pipecat warns once per call site for the life of the process; a test asserting on the
    # warning clears that record first, as Pipecat's own tests do.
    deprecation._warned_sites.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


# -- model= ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", list(OURS))
async def test_a_model_argument_is_sent_and_warned_about(transport: str) -> None:
    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        with deprecation_warnings() as caught:
            llm = _ours(transport, emu, model="gpt-4o-mini")
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
    assert generated_creates(emu)[-1]["model"] == "gpt-4o-mini"
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1, [str(w.message) for w in deprecations]
    service = OURS[transport].__name__
    assert f"`settings={service}.Settings(model=...)`" in str(deprecations[0].message)
    assert deprecations[0].filename == __file__  # it names the line that created the service


@pytest.mark.parametrize("transport", list(OURS))
async def test_the_settings_model_wins_over_a_model_argument(transport: str) -> None:
    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        with deprecation_warnings():
            llm = _ours(transport, emu, model="gpt-4o-mini", settings=OURS[transport].Settings(model="emulated"))
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
    assert generated_creates(emu)[-1]["model"] == "emulated"


async def test_the_builtin_drops_a_model_argument_without_a_word() -> None:
    # The trap ours does not copy: the built-in has no model= argument, and Pipecat's processor
    # base swallows unknown keywords, so the default model is sent.
    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        with deprecation_warnings() as caught:
            llm = OpenAIResponsesLLMService(api_key="k", ws_url=emu.ws_url, model="gpt-4o-mini")
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
    assert generated_creates(emu)[-1]["model"] == "gpt-4.1"
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]


# -- on_function_calls_started -----------------------------------------------------------------


@pytest.mark.parametrize("which", SERVICES)
async def test_calls_arriving_in_one_read_fire_on_function_calls_started_once(which: str) -> None:
    # Streamed with no pause between tokens, both calls' output_item.done are written back to back
    # and read together: both calls reach the stage before either is dispatched.
    fired: list[list[str]] = []
    firing = Changes()

    def setup(llm: LLMService[Any]) -> None:
        async def weather(params: FunctionCallParams) -> None:
            await params.result_callback({"sky": "clear"})

        llm.register_function(None, weather)

        @llm.event_handler("on_function_calls_started")
        async def started(_service: Any, calls: list[Any]) -> None:
            fired.append([c.function_name for c in calls])
            firing.notify()

    context = LLMContext(tools=weather_tools("get_weather", "get_time"))
    async with running(which, context=context, setup=setup) as (emu, _llm, talk):
        for n in range(3):
            emu.queue_replies(
                Reply(
                    calls=[ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {"city": "Paris"})],
                    tokens_per_second=1e9,
                ),
                Reply(text=f"Clear, and it is noon {n}."),
            )
            await talk.say("Weather and time in Paris?")
            await talk.wait_text(f"noon {n}.")
        await until(lambda: len(fired) >= 3, 2, "the event handlers", firing)
        # A second firing would be a task too, and nothing shows that it will never run: a bounded
        # wait for it, over at once if it comes.
        assert not await within(lambda: len(fired) > 3, 0.05, firing), fired
    assert [names[0] for names in fired] == ["get_weather"] * 3, fired  # once per response, with its first call


# -- TTFB and TTFAT ----------------------------------------------------------------------------


def _ttfb_and_ttfat(talk: Conversation) -> tuple[list[float], list[tuple[float, float]]]:
    ttfb: list[float] = []
    ttfat: list[tuple[float, float]] = []
    for seen in talk.downstream.seen:
        for data in getattr(seen.frame, "data", None) or []:
            if isinstance(data, TTFBMetricsData) and data.value > 0:
                ttfb.append(data.value)
            elif isinstance(data, TTFATMetricsData):
                ttfat.append((data.ttfat, data.ttfb))
    return ttfb, ttfat


async def _metrics_reported(talk: Conversation, responses: int) -> None:
    """Wait for a TTFB and a TTFAT per response: the metrics frames may trail the response's end."""

    def reported() -> bool:
        ttfb, ttfat = _ttfb_and_ttfat(talk)
        return len(ttfb) >= responses and len(ttfat) >= responses

    await talk.wait_for(reported, 2, f"the metrics of {responses} responses")


@pytest.mark.parametrize("which", SERVICES)
async def test_ttfat_is_reported_per_turn_as_the_builtin_does(which: str) -> None:
    def setup(llm: LLMService[Any]) -> None:
        async def weather(params: FunctionCallParams) -> None:
            await params.result_callback({"sky": "clear"})

        llm.register_function("get_weather", weather)

    async with running(which, context=LLMContext(tools=weather_tools()), setup=setup) as (emu, _llm, talk):
        emu.queue_replies(
            Reply(text="Hello to you."),
            Reply(calls=[ToolCall("get_weather", {"city": "Paris"})]),
            Reply(text="It is clear."),
        )
        await talk.say("Hello there.")
        await talk.wait_turns_ended(1)
        await talk.say("Weather in Paris?")
        await talk.wait_turns_ended(3)
        await _metrics_reported(talk, 3)
    ttfb, ttfat = _ttfb_and_ttfat(talk)
    assert len(ttfb) == 3, ttfb
    # One per response: the text, the tool call (the call is the answer), the text after it.
    assert len(ttfat) == 3, ttfat
    for value, its_ttfb in ttfat:
        assert value >= its_ttfb > 0
    assert [round(t, 6) for _, t in ttfat] == [round(t, 6) for t in ttfb]  # each extends its own TTFB


@pytest.mark.parametrize("which", SERVICES)
async def test_ttfat_counts_the_thinking_before_the_first_word(which: str) -> None:
    reasoning = OpenAIResponsesLLMService.ReasoningConfig(effort="low", summary="auto")
    async with running(which, settings={"reasoning": reasoning}) as (emu, _llm, talk):
        emu.queue_replies(Reply(text="Done thinking.", reasoning="Let me think about this for a while, word by word."))
        await talk.say("Hello there.")
        await talk.wait_turns_ended(1)
        await _metrics_reported(talk, 1)
    ttfb, ttfat = _ttfb_and_ttfat(talk)
    assert len(ttfb) == 1 and len(ttfat) == 1, (ttfb, ttfat)
    value, its_ttfb = ttfat[0]
    assert value > its_ttfb  # the summary streamed between the first event and the first word


async def test_ttfat_is_reported_over_http_too() -> None:
    async with Emulator(ttft=0.02, tokens_per_second=400.0) as emu:
        llm = _ours("http", emu, settings=ResponsesHTTPLLMService.Settings(model="emulated"))
        async with Conversation(llm) as talk:
            await talk.say("Hello there.")
            await talk.wait_turns_ended(1)
            await _metrics_reported(talk, 1)
    ttfb, ttfat = _ttfb_and_ttfat(talk)
    assert len(ttfb) == 1 and len(ttfat) == 1, (ttfb, ttfat)
    assert ttfat[0][0] >= ttfat[0][1] > 0
