"""Tools through Pipecat's machinery: started at output_item.done, run once, answered once."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipecat_responses_ws.changes import Changes
from pipecat_responses_ws.emulator import Fault, Reply, ToolCall

from .conftest import session, weather_tools


def _registering(
    log: list,
    *,
    delay: float = 0.0,
    fail: bool = False,
    cancel_on_interruption: bool = True,
    logged: Changes | None = None,
):
    """``logged`` is notified as each call is logged."""

    def register(llm) -> None:
        async def handler(params) -> None:
            log.append((time.monotonic(), params.function_name, dict(params.arguments)))
            if logged is not None:
                logged.notify()
            if delay:
                await asyncio.sleep(delay)
            if fail:
                raise RuntimeError("the weather station is down")
            await params.result_callback({"city": params.arguments.get("city"), "sky": "clear"})

        for name in ("get_weather", "get_time"):
            llm.register_function(name, handler, cancel_on_interruption=cancel_on_interruption)

    return register


def _follow_ups(emu) -> list[dict]:
    return [c for c in emu.records.creates() if any(i.get("type") == "function_call_output" for i in c["input"])]


@pytest.mark.slow
async def test_single_tool_starts_before_the_terminal_event() -> None:
    log: list = []
    async with session(tools=weather_tools(), setup=_registering(log)) as (emu, llm, conv):
        emu.queue_replies(
            Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})], fault=Fault(kind="delay_terminal", seconds=1.0)),
            Reply(text="It is clear in Oslo."),
        )
        await conv.say("What's the weather in Oslo?")
        await conv.wait_text("clear in Oslo")
        item_done = next(s.time for s in emu.records.sent() if s.event["type"] == "response.output_item.done")
        completed = next(
            s.time
            for s in emu.records.sent()
            if s.event["type"] == "response.completed" and s.event["response"]["output"]
        )
        assert len(log) == 1 and log[0][2] == {"city": "Oslo"}
        assert log[0][0] < completed - 0.5  # started long before the delayed terminal
        assert log[0][0] - item_done < 0.2
        follow_up = _follow_ups(emu)
        assert len(follow_up) == 1 and follow_up[0]["previous_response_id"]
        assert [i["type"] for i in follow_up[0]["input"]] == ["function_call_output"]


async def test_parallel_tools_run_once_each_and_the_model_is_asked_once() -> None:
    log: list = []
    async with session(tools=weather_tools("get_weather", "get_time"), setup=_registering(log, delay=0.1)) as (
        emu,
        llm,
        conv,
    ):
        emu.queue_replies(
            Reply(calls=[ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_time", {"city": "Rome"})]),
            Reply(text="Clear in Oslo, noon in Rome."),
        )
        await conv.say("Weather in Oslo and time in Rome?")
        await conv.wait_text("noon in Rome")
        await asyncio.sleep(0.2)
        assert sorted(name for _, name, _ in log) == ["get_time", "get_weather"]
        follow_up = _follow_ups(emu)
        assert len(follow_up) == 1  # one follow-up with both outputs, not one per result
        assert [i["type"] for i in follow_up[0]["input"]] == ["function_call_output", "function_call_output"]
        assert follow_up[0]["previous_response_id"]  # incremental despite interleaved call/output pairs
        assert not conv.errors()


async def test_chained_calls_then_text() -> None:
    log: list = []
    async with session(tools=weather_tools("get_weather", "get_time"), setup=_registering(log)) as (emu, llm, conv):
        emu.queue_replies(
            Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})]),
            Reply(calls=[ToolCall("get_time", {"city": "Oslo"})]),
            Reply(text="Clear skies at noon."),
        )
        await conv.say("Weather and time in Oslo?")
        await conv.wait_text("noon")
        assert [name for _, name, _ in log] == ["get_weather", "get_time"]
        follow_ups = _follow_ups(emu)
        assert len(follow_ups) == 2 and all(f["previous_response_id"] for f in follow_ups)
        assert all(len(f["input"]) == 1 for f in follow_ups)


async def test_a_raising_tool_becomes_a_result_the_model_sees() -> None:
    log: list = []
    async with session(tools=weather_tools(), setup=_registering(log, fail=True)) as (emu, llm, conv):
        emu.queue_replies(Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})]), Reply(text="Sorry about that."))
        await conv.say("Weather in Oslo?")
        await conv.wait_text("Sorry")
        output = _follow_ups(emu)[0]["input"][0]["output"]
        assert "failed" in output
        assert any("weather station is down" in e.error for e in conv.errors())


async def test_an_unknown_tool_gets_an_answer_not_a_hang() -> None:
    async with session(tools=weather_tools()) as (emu, llm, conv):
        emu.queue_replies(Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})]), Reply(text="I cannot check."))
        await conv.say("Weather in Oslo?")
        await conv.wait_text("cannot check")
        assert "not currently available" in _follow_ups(emu)[0]["input"][0]["output"]


@pytest.mark.slow
async def test_async_tool_lets_the_conversation_go_on() -> None:
    log: list = []
    logged = Changes()
    setup = _registering(log, delay=1.0, cancel_on_interruption=False, logged=logged)
    async with session(tools=weather_tools(), setup=setup) as (emu, llm, conv):
        conv.follow(logged)
        emu.queue_replies(
            Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})]),
            Reply(text="Still checking, one moment."),
            Reply(text="It is clear in Oslo."),
        )
        await conv.say("Weather in Oslo?")
        await conv.wait_for(lambda: len(log) == 1, 5, "the tool to start")
        await conv.say("Are you there?")  # the conversation goes on while the tool runs
        await conv.wait_text("Still checking", timeout=5)
        await conv.wait_text("clear in Oslo", timeout=5)
        assert len(log) == 1
        assert not conv.errors()


async def test_broken_arguments_are_never_run() -> None:
    log: list = []
    async with session(tools=weather_tools(), setup=_registering(log)) as (emu, llm, conv):
        emu.queue_replies(Reply(calls=[ToolCall("get_weather", '{"city": "Os')]), Reply(text="Next."))
        await conv.say("Weather in Oslo?")
        await conv.wait_turns_ended(1)
        await conv.say("And now?")
        await conv.wait_text("Next.")
        assert log == []
