"""Faults: drops, stalls, failures, stray errors, malformed frames, a bad key."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipecat_responses_ws.emulator import Emulator, Fault, Reply

from .conftest import LONG_TEXT, session


async def test_drop_before_the_first_event_is_retried_transparently() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello again.", fault=Fault(kind="drop", after_events=0, close_code=1011)))
        emu.queue_replies(Reply(text="Hello again."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        assert conv.turns()[0].text == "Hello again."
        assert not conv.errors()
        assert llm.stats.transparent_retries == 1


async def test_drop_mid_text_never_repeats_text_and_the_next_turn_works() -> None:
    async with session(emulator={"tokens_per_second": 50}) as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="One two three four five six.", fault=Fault(kind="drop", after_events=8, close_code=1011)),
            Reply(text="Back again."),
        )
        await conv.say("Count for me")
        await conv.wait_turns_ended(1)
        first = conv.turns()[0].text
        assert first and "One two three four five six.".startswith(first) and first.count("One") == 1
        assert any("closed" in e.error for e in conv.errors())
        await conv.say("Still there?")
        await conv.wait_text("Back again.")
        await conv.wait_for(lambda: sum(m["role"] == "assistant" for m in conv.messages()) == 2, 2, "the context")
        spoken = [m["content"] for m in conv.messages() if m["role"] == "assistant"]
        assert spoken[0] == first.strip() or spoken[0] == first


async def test_a_stall_after_the_first_token_ends_the_turn_within_the_stall_timeout() -> None:
    async with session(service={"stall_timeout": 0.5}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=LONG_TEXT, fault=Fault(kind="stall", after_events=6, seconds=float("inf"))))
        emu.queue_replies(Reply(text="Recovered."))
        asked = await conv.say("Talk")
        await conv.wait_turns_ended(1, timeout=3)
        assert conv.turns()[0].ended - asked < 1.5
        assert any("stall" in e.error for e in conv.errors())
        await conv.say("Again")
        await conv.wait_text("Recovered.")


async def test_failed_and_incomplete_responses_are_non_fatal_errors_with_codes() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="x y z", fault=Fault(kind="fail", code="server_error", after_events=3)),
            Reply(text=LONG_TEXT, fault=Fault(kind="incomplete", code="max_output_tokens", after_events=6)),
            Reply(text="Fine now."),
        )
        for n, text in enumerate(["a", "b", "c"], start=1):
            await conv.say(text)
            await conv.wait_turns_ended(n)
        errors = [e.error for e in conv.errors()]
        assert any("server_error" in e and "resp_" in e for e in errors)
        assert any("max_output_tokens" in e for e in errors)
        assert conv.turns()[-1].text == "Fine now."


async def test_stray_errors_and_malformed_frames_are_reported_and_skipped() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(
            Reply(text="Alpha beta gamma.", fault=Fault(kind="malformed", after_events=4)),
            Reply(text="Delta epsilon.", fault=Fault(kind="stray_error", code="server_error", after_events=4)),
        )
        await conv.say("one")
        await conv.wait_turns_ended(1)
        await conv.say("two")
        await conv.wait_turns_ended(2)
        assert [t.text for t in conv.turns()] == ["Alpha beta gamma.", "Delta epsilon."]
        assert any("server_error" in e.error for e in conv.errors())


async def test_a_bad_key_is_fatal_with_a_clear_message_that_never_shows_the_key() -> None:
    async with Emulator(api_key="right-key") as emu:
        from pipecat_responses_ws import ResponsesWSLLMService
        from pipecat_responses_ws.harness.pipeline import Conversation

        llm = ResponsesWSLLMService(api_key="wrong-key-123", ws_url=emu.ws_url)
        conv = Conversation(llm)
        started = time.monotonic()
        async with conv:
            await conv.wait_for(lambda: bool(conv.errors()), timeout=5, what="an error")
            await asyncio.sleep(0.1)
        error = conv.errors()[0]
        assert "API key" in error.error and "wrong-key-123" not in error.error
        assert time.monotonic() - started < 10


@pytest.mark.slow
async def test_an_answer_longer_than_the_stall_timeout_is_not_a_stall() -> None:
    # Text deltas are pushed by the connection's reader while the turn waits; that still counts
    # as the response making progress.
    async with session(service={"stall_timeout": 0.3}, emulator={"tokens_per_second": 60}) as (emu, llm, conv):
        emu.queue_replies(Reply(text=LONG_TEXT))
        await conv.say("Talk")
        await conv.wait_turns_ended(1, timeout=5)
        assert conv.turns()[0].text == LONG_TEXT
        assert not conv.errors()
