"""Our HTTP service in a real pipeline on the emulator's HTTP endpoint: text, barge-ins, tools, faults, store."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pipecat.processors.aggregators.llm_context import LLMContext

from pipecat_responses_ws.emulator import Fault, Reply, ToolCall

from .conftest import LONG_TEXT, http_session, weather_tools

GENEROUS_BOUND_SECS = 0.6


def _tool_log(log: list[tuple[float, str, dict[str, Any]]], *, delay: float = 0.0) -> Any:
    def register(llm: Any) -> None:
        async def handler(params: Any) -> None:
            log.append((time.monotonic(), params.function_name, dict(params.arguments)))
            await asyncio.sleep(delay)
            await params.result_callback({"city": params.arguments.get("city"), "sky": "clear"})

        for name in ("get_weather", "get_time"):
            llm.register_function(name, handler)

    return register


async def test_turns_stream_over_http_with_the_whole_conversation_each_time() -> None:
    async with http_session() as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello over HTTP."), Reply(text="Still here."))
        await conv.say("Hi!")
        await conv.wait_turns_ended(1)
        await conv.say("Are you there?")
        await conv.wait_turns_ended(2)
        assert [t.text for t in conv.turns()] == ["Hello over HTTP.", "Still here."]
        assert not conv.errors()
    first, second = emu.records.creates()
    assert {"stream_id", "generate", "previous_response_id"}.isdisjoint(second)
    assert second["stream"] is True and second["store"] is False and second["instructions"] == "Answer briefly."
    assert [i.get("role") for i in second["input"]] == ["user", "assistant", "user"]
    assert [(r.method, r.path, r.status) for r in emu.records.http_requests] == [("POST", "/v1/responses", 200)] * 2
    assert emu.records.handshakes == [] and emu.connection_count == 0
    assert llm.stats.turns == 2 and llm.client.stats.requests == 2


async def test_a_barge_in_closes_the_stream_and_nothing_stale_is_spoken() -> None:
    async with http_session(emulator={"tokens_per_second": 25}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=LONG_TEXT), Reply(text="Fresh answer here."))
        await conv.say("Tell me everything.")
        await conv.wait_text("word3")
        await conv.interrupt()
        await emu.records.wait_for(lambda: emu.records.http_requests[0].closed_at is not None, 2)
        asked = await conv.say("Something else, please.")
        await conv.wait_text("Fresh answer here.")
        fresh = conv.turns()[-1]
        assert fresh.text == "Fresh answer here." and fresh.first_text_at - asked < GENEROUS_BOUND_SECS
        assert conv.text_after_interruptions() == []
        assert "word50" not in conv.text()
        assert not conv.errors()
    abandoned, answered = emu.records.responses
    assert abandoned.cancelled_at is not None and abandoned.finished_at is None
    assert answered.status == "completed"
    assert llm.client.stats.streams_closed_early == 1
    # Nothing but the two requests: no response.cancel goes anywhere over HTTP.
    assert [f.payload["type"] for f in emu.records.frames if f.payload] == ["response.create"] * 2


async def test_a_barge_in_before_response_created_closes_the_request() -> None:
    async with http_session() as (emu, llm, conv):
        emu.queue_replies(
            Reply(text=LONG_TEXT, fault=Fault(kind="delay_created", seconds=2.0)), Reply(text="Fresh answer here.")
        )
        await conv.say("Tell me everything.")
        await emu.records.wait_for(lambda: len(emu.records.creates()) == 1)
        await conv.interrupt()
        await emu.records.wait_for(lambda: emu.records.http_requests[0].closed_at is not None, 2)
        asked = await conv.say("Something else, please.")
        await conv.wait_text("Fresh answer here.")
        assert conv.turns()[-1].first_text_at - asked < GENEROUS_BOUND_SECS
        assert "word" not in conv.text() and not conv.errors()


@pytest.mark.slow
async def test_a_tool_runs_once_at_output_item_done_and_the_follow_up_carries_its_output() -> None:
    log: list[tuple[float, str, dict[str, Any]]] = []
    async with http_session(tools=weather_tools(), setup=_tool_log(log)) as (emu, llm, conv):
        emu.queue_replies(
            Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})], fault=Fault(kind="delay_terminal", seconds=1.0)),
            Reply(text="It is clear in Oslo."),
        )
        await conv.say("What's the weather in Oslo?")
        await conv.wait_text("clear in Oslo")
        sent = emu.records.sent()
        item_done = next(s.time for s in sent if s.event["type"] == "response.output_item.done")
        completed = next(s.time for s in sent if s.event["type"] == "response.completed")
        assert [entry[1:] for entry in log] == [("get_weather", {"city": "Oslo"})]
        assert item_done <= log[0][0] < completed - 0.5  # started long before the delayed terminal
        assert not conv.errors()
    _, follow_up = emu.records.creates()
    assert "previous_response_id" not in follow_up
    assert [i.get("type") for i in follow_up["input"]][-2:] == ["function_call", "function_call_output"]


async def test_a_drop_before_the_first_event_is_sent_again_and_a_drop_mid_text_is_an_error() -> None:
    async with http_session(emulator={"tokens_per_second": 50}) as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="Hello again.", fault=Fault(kind="drop", after_events=0, close_code=1006)),
            Reply(text="Hello again."),
            Reply(text="One two three four five six.", fault=Fault(kind="drop", after_events=8)),
            Reply(text="Back again."),
        )
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        assert conv.turns()[0].text == "Hello again." and not conv.errors()
        assert llm.stats.transparent_retries == 1
        await conv.say("Count for me")
        await conv.wait_turns_ended(2)
        cut = conv.turns()[1].text
        assert cut and "One two three four five six.".startswith(cut)
        assert any("stream" in e.error for e in conv.errors())
        await conv.say("Still there?")
        await conv.wait_text("Back again.")
    assert len(emu.records.http_requests) == 4


async def test_a_failed_response_is_an_error_and_a_malformed_event_is_skipped() -> None:
    async with http_session() as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="x y z", fault=Fault(kind="fail", code="server_error", after_events=3)),
            Reply(text="Alpha beta gamma.", fault=Fault(kind="malformed", after_events=4)),
        )
        await conv.say("a")
        await conv.wait_turns_ended(1)
        await conv.say("b")
        await conv.wait_turns_ended(2)
        errors = [e.error for e in conv.errors()]
        assert len(errors) == 1 and "server_error" in errors[0] and "resp_" in errors[0]
        assert conv.turns()[1].text == "Alpha beta gamma."
        assert llm.stats.events_skipped >= 1


async def test_a_stall_ends_the_turn_within_the_stall_timeout() -> None:
    async with http_session(service={"stall_timeout": 0.5}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=LONG_TEXT, fault=Fault(kind="stall", after_events=6, seconds=float("inf"))))
        emu.queue_replies(Reply(text="Recovered."))
        asked = await conv.say("Talk")
        await conv.wait_turns_ended(1, timeout=3)
        assert conv.turns()[0].ended - asked < 1.5
        assert any("stall" in e.error for e in conv.errors())
        await emu.records.wait_for(lambda: emu.records.http_requests[0].closed_at is not None, 2)
        await conv.say("Again")
        await conv.wait_text("Recovered.")


async def test_store_chains_each_turn_to_the_last_with_previous_response_id() -> None:
    log: list[tuple[float, str, dict[str, Any]]] = []
    async with http_session(service={"store": True}, tools=weather_tools(), setup=_tool_log(log)) as (
        emu,
        llm,
        conv,
    ):
        emu.queue_replies(
            Reply(text="Hello."), Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})]), Reply(text="Clear.")
        )
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        await conv.say("Weather in Oslo?")
        await conv.wait_text("Clear.")
        assert not conv.errors() and len(log) == 1
    first, second, third = emu.records.creates()
    greeting, call, _ = emu.records.responses
    assert first["store"] is True and "previous_response_id" not in first
    assert second["previous_response_id"] == greeting.id and [i["role"] for i in second["input"]] == ["user"]
    assert third["previous_response_id"] == call.id
    assert [i["type"] for i in third["input"]] == ["function_call_output"]
    assert llm.stats.incremental_turns == 2


async def test_a_refused_key_is_one_fatal_error_that_never_shows_the_key() -> None:
    async with http_session(emulator={"api_key": "right-key"}, service={"api_key": "wrong-key-123"}) as (
        emu,
        llm,
        conv,
    ):
        await conv.say("Hi")
        await conv.wait_for(lambda: bool(conv.errors()), 5, "an error")
        error = conv.errors()[0]
        assert "API key" in error.error and "HTTP 401" in error.error and "wrong-key-123" not in error.error
    assert [r.status for r in emu.records.http_requests] == [401]


async def test_run_inference_goes_in_a_request_of_its_own() -> None:
    async with http_session() as (emu, llm, conv):
        emu.queue_replies(Reply(text="A summary."))
        context = LLMContext(messages=[{"role": "user", "content": "Summarise our talk."}])
        assert await llm.run_inference(context, max_tokens=50) == "A summary."
    (create,) = emu.records.creates()
    assert create["max_output_tokens"] == 50 and create["store"] is False
    assert llm.stats.out_of_band_inferences == 1
