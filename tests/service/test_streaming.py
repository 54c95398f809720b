"""Streaming, frames, multi-turn incremental input, warm-up and connection life."""

from __future__ import annotations

import asyncio

import pytest
from pipecat.frames.frames import (
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    LLMUpdateSettingsFrame,
)
from pipecat.tests.utils import run_test

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.emulator import Emulator, Reply

from .conftest import session


async def test_run_test_sees_metadata_start_text_and_end() -> None:
    from pipecat.frames.frames import LLMContextFrame, LLMServiceMetadataFrame
    from pipecat.processors.aggregators.llm_context import LLMContext

    async with Emulator(ttft=0.01, tokens_per_second=500) as emu:
        emu.queue_replies(Reply(text="Hello from the emulator."))
        llm = ResponsesWSLLMService(api_key="k", ws_url=emu.ws_url)
        context = LLMContext(messages=[{"role": "user", "content": "hi"}])
        down, _ = await run_test(llm, frames_to_send=[LLMContextFrame(context)])
        kinds = [type(f) for f in down]
        assert kinds[0] is LLMServiceMetadataFrame
        assert kinds[1] is LLMFullResponseStartFrame and kinds[-1] is LLMFullResponseEndFrame
        assert "".join(f.text for f in down if isinstance(f, LLMTextFrame)) == "Hello from the emulator."


async def test_multi_turn_sends_only_new_items_after_a_warm_up() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(Reply(text="First answer."), Reply(text="Second answer."), Reply(text="Third answer."))
        for n, text in enumerate(["one", "two", "three"], start=1):
            await conv.say(f"turn {text}")
            await conv.wait_turns_ended(n)
        creates = emu.records.creates()
        warm, turns = creates[0], creates[1:]
        assert warm.get("generate") is False and warm.get("instructions") == "Answer briefly."
        assert [len(c["input"]) for c in turns] == [1, 1, 1]  # only the new user message each time
        assert all(c.get("previous_response_id") for c in turns)
        assert [t.text for t in conv.turns()] == ["First answer.", "Second answer.", "Third answer."]
        assert all(c["instructions"] == "Answer briefly." for c in turns)  # not inherited: sent every turn
        assert not conv.errors()
        # The assistant aggregator writes the context after the probe saw the response end.
        await conv.wait_for(lambda: sum(m["role"] == "assistant" for m in conv.messages()) == 3, 2, "the context")
        assert [m["content"] for m in conv.messages() if m["role"] == "assistant"] == [
            "First answer.",
            "Second answer.",
            "Third answer.",
        ]


async def test_settings_reach_the_request() -> None:
    settings = ResponsesWSLLMService.Settings(
        temperature=0.3,
        max_completion_tokens=99,
        tool_choice="none",
        parallel_tool_calls=False,
        reasoning=ResponsesWSLLMService.ReasoningConfig(effort="low"),
        service_tier="auto",
    )
    async with Emulator(ttft=0.01, tokens_per_second=500) as emu:
        llm = ResponsesWSLLMService(api_key="k", ws_url=emu.ws_url, settings=settings, warm_up=False)
        from pipecat_responses_ws.harness.pipeline import Conversation

        async with Conversation(llm) as conv:
            await conv.say("hello")
            await conv.wait_turns_ended(1)
        create = emu.records.creates()[-1]
        assert create["temperature"] == 0.3 and create["max_output_tokens"] == 99
        assert create["tool_choice"] == "none" and create["parallel_tool_calls"] is False
        assert create["reasoning"] == {"effort": "low"} and create["service_tier"] == "auto"
        assert create["store"] is False and create["stream_id"].startswith("lane-")


async def test_a_settings_update_reaches_the_next_request() -> None:
    # Pipecat's ``LLMUpdateSettingsFrame`` mid-call: the next turn's request carries the new
    # settings (what the settings contribute is kept between requests, made again after a change).
    async with Emulator(ttft=0.01, tokens_per_second=500) as emu:
        settings = ResponsesWSLLMService.Settings(model="emulated", temperature=0.3)
        llm = ResponsesWSLLMService(api_key="k", ws_url=emu.ws_url, settings=settings, warm_up=False)
        from pipecat_responses_ws.harness.pipeline import Conversation

        async with Conversation(llm) as conv:
            await conv.say("hello")
            await conv.wait_turns_ended(1)
            update = ResponsesWSLLMService.Settings(temperature=0.9, max_completion_tokens=77, model="emulated-2")
            await conv.worker.queue_frame(LLMUpdateSettingsFrame(delta=update))
            await conv.say("again")
            await conv.wait_turns_ended(2)
            await conv.say("and again")
            await conv.wait_turns_ended(3)
        first, second, third = emu.records.creates()[-3:]
        assert (first["temperature"], first["model"], "max_output_tokens" in first) == (0.3, "emulated", False)
        assert (second["temperature"], second["max_output_tokens"], second["model"]) == (0.9, 77, "emulated-2")
        # And the turn after carries them too: the same fields but for what each turn's own.
        own = ("input", "previous_response_id", "stream_id")
        assert {k: v for k, v in third.items() if k not in own} == {k: v for k, v in second.items() if k not in own}


@pytest.mark.slow
async def test_age_limit_is_never_met_by_a_turn() -> None:
    # The server cuts connections at 1.5 s; turns keep coming for ~4 s.
    async with session(
        emulator={"max_connection_age": 1.5, "ttft": 0.02},
        service={"max_connection_age": 1.5, "rollover_margin": 0.6},
    ) as (emu, llm, conv):
        for n in range(1, 9):
            await conv.say(f"message number {n}")
            await conv.wait_turns_ended(n)
            await asyncio.sleep(0.45)
        assert not conv.errors(), [e.error for e in conv.errors()]
        assert all(t.text for t in conv.turns())
        assert emu.connection_count >= 3
        assert llm.client.stats.rotations >= 2
        sent_errors = [s.event for s in emu.records.sent() if s.event.get("type") == "error"]
        assert not [e for e in sent_errors if e["error"]["code"] == "websocket_connection_limit_reached"]


@pytest.mark.slow
async def test_first_turn_on_a_new_connection_sends_the_full_context_once() -> None:
    async with session(emulator={"ttft": 0.02}) as (emu, llm, conv):
        await conv.say("first")
        await conv.wait_turns_ended(1)
        await emu.drop_all_connections()
        await asyncio.sleep(0.3)
        await conv.say("second")
        await conv.wait_turns_ended(2)
        await conv.say("third")
        await conv.wait_turns_ended(3)
        turns = [c for c in emu.records.creates() if c.get("generate") is not False]
        assert len(turns) == 3 and not conv.errors()
        assert len(turns[1]["input"]) == 3  # full context on the new connection, no not_found round trip
        assert len(turns[2]["input"]) == 1 and turns[2]["previous_response_id"]
        assert not [e for e in emu.records.sent() if e.event.get("type") == "error"]
