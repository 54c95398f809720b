"""Barge-in at every phase, under every cancel policy: no stale text, no wait for the old response."""

from __future__ import annotations

import asyncio
import time

import pytest
from pipecat.frames.frames import LLMContextFrame, LLMTextFrame

from pipecat_responses_ws.emulator import Fault, Reply, ToolCall

from .conftest import LONG_TEXT, session, weather_tools

POLICIES = ["error", "ignore", "honor"]
# A wrong design (draining the old response, or reconnecting) misses this by a second or more.
GENEROUS_BOUND_SECS = 0.6


async def _next_turn_is_fresh(conv, emu, started_turns: int) -> float:
    """Ask again after the barge-in; return the delay to its first text."""
    asked = await conv.say("Something else, please.")

    def fresh_turn():
        return next((t for t in conv.turns()[started_turns:] if t.text.startswith("Fresh")), None)

    await conv.wait_for(lambda: fresh_turn() is not None and fresh_turn().ended is not None, 5, "the fresh answer")
    turn = fresh_turn()
    assert turn.text == "Fresh answer here."
    assert conv.text_after_interruptions() == []
    return turn.first_text_at - asked


@pytest.mark.parametrize("policy", POLICIES)
async def test_mid_text(policy: str) -> None:
    async with session(emulator={"cancel_policy": policy, "tokens_per_second": 25}) as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello there."), Reply(text=LONG_TEXT), Reply(text="Fresh answer here."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        await conv.say("Tell me everything.")
        await conv.wait_text("word3")
        await conv.interrupt()
        delay = await _next_turn_is_fresh(conv, emu, 2)
        assert delay < GENEROUS_BOUND_SECS
        assert "word50" not in conv.text()  # the old response was still streaming its tail
        greeting, abandoned = emu.records.responses[1], emu.records.responses[2]
        cancels = [f.payload for f in emu.records.frames if f.payload and f.payload["type"] == "response.cancel"]
        assert len(cancels) == 1 and cancels[0]["response_id"] == abandoned.id
        # Incremental after the barge-in: forked from the greeting (still cached on its own lane), sending
        # the interrupted question, the spoken prefix if the aggregator already wrote it, and the new one.
        after = emu.records.creates()[-1]
        assert after["previous_response_id"] == greeting.id and after["stream_id"] != abandoned.lane
        roles = [i.get("role") for i in after["input"]]
        assert roles in (["user", "user"], ["user", "assistant", "user"])
        # Recorded errors must not leak into the pipeline as failures of the new turn.
        assert not conv.errors(), [e.error for e in conv.errors()]


@pytest.mark.parametrize("policy", POLICIES)
async def test_before_response_created(policy: str) -> None:
    async with session(emulator={"cancel_policy": policy}) as (emu, llm, conv):
        emu.queue_replies(
            Reply(text=LONG_TEXT, fault=Fault(kind="delay_created", seconds=2.0)), Reply(text="Fresh answer here.")
        )
        await conv.say("Tell me everything.")
        await emu.records.wait_for(lambda: len(emu.records.creates()) == 2)  # warm-up + this turn
        await conv.interrupt()
        delay = await _next_turn_is_fresh(conv, emu, 1)
        assert delay < GENEROUS_BOUND_SECS
        assert not conv.errors()
        # The cancel (if any) names the abandoned response, never the previous finished one.
        abandoned = emu.records.responses[1]
        for frame in emu.records.frames:
            if frame.payload and frame.payload["type"] == "response.cancel":
                assert frame.payload["response_id"] == abandoned.id


@pytest.mark.slow
@pytest.mark.parametrize("policy", POLICIES)
async def test_before_the_request_is_written(policy: str) -> None:
    async with session(emulator={"cancel_policy": policy, "tokens_per_second": 20}) as (emu, llm, conv):
        await conv.say("Tell me everything.")
        # The context has just been handed to the LLM: interrupt before it can write the request.
        await conv.wait_for(lambda: any(isinstance(s.frame, LLMContextFrame) for s in conv.upstream.seen))
        interrupted = await conv.interrupt()
        asked = await conv.say("Something else, please.")
        await conv.wait_for(lambda: any("Something else" in t.text and t.ended for t in conv.turns()), 5, "answer")
        turn = next(t for t in conv.turns() if "Something else" in t.text)
        assert turn.first_text_at - asked < GENEROUS_BOUND_SECS
        assert conv.text_after_interruptions() == []
        later = [s for s in conv.frames(LLMTextFrame) if s.time > interrupted]
        assert not any("everything" in s.frame.text for s in later)
        assert not conv.errors()


@pytest.mark.parametrize("policy", POLICIES)
async def test_mid_arguments_the_call_never_runs(policy: str) -> None:
    ran: list[str] = []

    def register(llm) -> None:
        async def get_weather(params) -> None:
            ran.append(params.tool_call_id)
            await params.result_callback({"sky": "clear"})

        llm.register_function("get_weather", get_weather)

    async with session(emulator={"cancel_policy": policy}, tools=weather_tools(), setup=register) as (emu, llm, conv):
        emu.queue_replies(
            Reply(calls=[ToolCall("get_weather", {"city": "Oslo" * 20})], tokens_per_second=5),
            Reply(text="Fresh answer here."),
        )
        await conv.say("What's the weather in Oslo?")
        await emu.records.wait_for(
            lambda: any(s.event["type"] == "response.function_call_arguments.delta" for s in emu.records.sent())
        )
        await conv.interrupt()
        delay = await _next_turn_is_fresh(conv, emu, 1)
        assert delay < GENEROUS_BOUND_SECS
        await asyncio.sleep(0.3)
        assert ran == []
        assert not any(m.get("tool_calls") for m in conv.messages())


@pytest.mark.parametrize("policy", POLICIES)
async def test_while_a_tool_runs_it_is_cancelled_and_the_context_stays_valid(policy: str) -> None:
    started = asyncio.Event()

    def register(llm) -> None:
        async def get_weather(params) -> None:
            started.set()
            await asyncio.sleep(5)
            await params.result_callback({"sky": "clear"})

        llm.register_function("get_weather", get_weather)

    async with session(emulator={"cancel_policy": policy}, tools=weather_tools(), setup=register) as (emu, llm, conv):
        emu.queue_replies(Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})]), Reply(text="Fresh answer here."))
        await conv.say("What's the weather in Oslo?")
        await asyncio.wait_for(started.wait(), 5)
        await conv.interrupt()
        delay = await _next_turn_is_fresh(conv, emu, 1)
        assert delay < GENEROUS_BOUND_SECS
        tool_messages = [m for m in conv.messages() if m.get("role") == "tool"]
        assert [m["content"] for m in tool_messages] == ["CANCELLED"]
        # Every call the server saw has an output in the next request (IN_PROGRESS if the user's
        # next words beat the cancellation to the context): no "No tool output found" session.
        last = emu.records.creates()[-1]
        outputs = [i["output"] for i in last["input"] if i.get("type") == "function_call_output"]
        assert len(outputs) == 1 and outputs[0] in ("CANCELLED", "IN_PROGRESS")


@pytest.mark.parametrize("policy", POLICIES)
async def test_at_the_terminal_event(policy: str) -> None:
    async with session(emulator={"cancel_policy": policy}) as (emu, llm, conv):
        emu.queue_replies(Reply(text="Short reply done."), Reply(text="Fresh answer here."))
        await conv.say("Hi!")
        await conv.wait_turns_ended(1)
        await conv.interrupt()  # the user barges in while the answer is still being played
        delay = await _next_turn_is_fresh(conv, emu, 1)
        assert delay < GENEROUS_BOUND_SECS
        assert not conv.errors()


@pytest.mark.slow
async def test_many_rapid_barge_ins_never_wait_and_never_leak() -> None:
    async with session(emulator={"cancel_policy": "ignore", "tokens_per_second": 30}) as (emu, llm, conv):
        for n in range(12):
            emu.queue_replies(Reply(text=f"Turn{n} " + LONG_TEXT))
            await conv.say(f"Question {n}")
            await conv.wait_text(f"Turn{n}")
            await conv.interrupt()
        emu.queue_replies(Reply(text="Fresh answer here."))
        started = time.monotonic()
        delay = await _next_turn_is_fresh(conv, emu, 12)
        assert delay < GENEROUS_BOUND_SECS and time.monotonic() - started < 2
        for n, turn in enumerate(conv.turns()[:12]):
            assert turn.text.startswith(f"Turn{n} ")
        assert not conv.errors()


@pytest.mark.parametrize("policy", ["ignore", "honor"])
async def test_without_lanes_stale_events_are_dropped_as_they_arrive(policy: str) -> None:
    # Compatibility mode for gateways without stream_id: one FIFO lane on the server.
    async with session(emulator={"cancel_policy": policy, "tokens_per_second": 50}, service={"lanes": False}) as (
        emu,
        llm,
        conv,
    ):
        emu.queue_replies(Reply(text=LONG_TEXT), Reply(text="Fresh answer here."))
        await conv.say("Tell me everything.")
        await conv.wait_text("word3")
        await conv.interrupt()
        delay = await _next_turn_is_fresh(conv, emu, 1)
        assert all("stream_id" not in c for c in emu.records.creates())
        if policy == "honor":
            assert delay < GENEROUS_BOUND_SECS  # the server stops the old one: no queueing behind it
        else:
            assert delay < 3.0  # FIFO on the server: the old answer's tail, but never a leaked word
        assert "word59" not in conv.text()
        assert not conv.errors()
