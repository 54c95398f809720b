"""The connection pool when a connection cannot be had: a spare whose handshake fails or hangs, and
more responses at once than one connection takes. Whatever the endpoint refuses, a turn or an
inference is answered while any connection could answer it, and fails only when none can.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pipecat.processors.aggregators.llm_context import LLMContext

from pipecat_responses_ws import ResponsesWSLLMService
from pipecat_responses_ws.emulator import Emulator, Fault, Reply
from pipecat_responses_ws.harness.pipeline import Conversation
from pipecat_responses_ws.protocol import wire

from .conftest import LONG_TEXT, PACING

LANE_FREE = {"multiplexing": "none"}
# LONG_TEXT at 25 tokens/s runs ~2.4 s: the abandoned answer of a barge-in is still running well after.
SLOW_LANE_FREE = {**LANE_FREE, "cancel_policy": "ignore", "tokens_per_second": 25}
# Every upgrade after the first fails this way, for the rest of the test.
# A 429 takes the same path as a 500 (a refused upgrade): it is in the slow tier only.
SPARE_FAULTS = ["500", pytest.param("429", marks=pytest.mark.slow), "hang"]
# After a barge-in, a hung spare needs an abandoned answer that outlasts its connect timeout, seconds
# of it: in the slow tier. A hung upgrade (its connect timeout) is in the quick tier through the
# inference without a spare below.
BARGE_IN_SPARE_FAULTS = [
    "500",
    pytest.param("429", marks=pytest.mark.slow),
    pytest.param("hang", marks=pytest.mark.slow),
]
MANY = 1000


@asynccontextmanager
async def session(
    emulator: dict[str, Any], plan: Callable[[Emulator], None] = lambda _emu: None
) -> AsyncIterator[tuple[Emulator, ResponsesWSLLMService, Conversation]]:
    """As the suite's ``session``, with the emulator's handshakes planned before the service connects."""
    async with Emulator(**{**PACING, **emulator}) as emu:
        plan(emu)
        llm = ResponsesWSLLMService(
            api_key="test-key",
            ws_url=emu.ws_url,
            settings=ResponsesWSLLMService.Settings(model="emulated", system_instruction="Answer briefly."),
            connect_timeout=0.5,  # what a hung upgrade costs each time
        )
        async with Conversation(llm, context=LLMContext()) as conversation:
            conversation.follow(emu.records.changes)
            yield emu, llm, conversation


def fail_handshakes_after_the_first(how: str, count: int = MANY) -> Callable[[Emulator], None]:
    def plan(emu: Emulator) -> None:
        if how == "hang":
            emu.hang_handshakes(count=count, after=1)
        else:
            emu.reject_handshakes(int(how), count=count, after=1)

    return plan


def _question(text: str = "Classify.") -> LLMContext:
    return LLMContext(messages=[{"role": "user", "content": text}])


# -- 3: a barge-in with no spare to be had --------------------------------------------------------


@pytest.mark.parametrize("how", BARGE_IN_SPARE_FAULTS)
async def test_with_no_spare_to_be_had_the_turn_after_a_barge_in_is_answered_by_the_old_connection(
    how: str,
) -> None:
    # The refused upgrade fails at once, so the turn waits for nothing but the abandoned answer: at
    # 100 tokens/s it has ~0.5 s left at the barge-in, not ~2.2 s. A hung one keeps the slow pacing,
    # the abandoned answer outlasting the spare's connect timeout by seconds.
    pacing = SLOW_LANE_FREE if how == "hang" else {**SLOW_LANE_FREE, "tokens_per_second": 100}
    async with session(pacing, fail_handshakes_after_the_first(how)) as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello there."), Reply(text=LONG_TEXT), Reply(text="Fresh answer here."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        old = llm.client.current
        await conv.say("Tell me everything.")
        await conv.wait_text("word3")
        await conv.interrupt()
        await conv.say("Something else, please.")
        await conv.wait_text("Fresh answer here.", timeout=10)
        assert not conv.errors(), [e.error for e in conv.errors()]
        assert llm.client.current is old and old.usable  # taken back once its abandoned answer ended
        assert llm.stats.connections_taken_back == 1 and llm.client.stats.spare_takeovers == 0
        assert conv.text_after_interruptions() == [] and "word59" not in conv.text()
        # The answer was not sent until the abandoned one had ended: nothing queued behind it unseen.
        abandoned = next(r for r in emu.records.responses if r.text.startswith("word0"))
        fresh = next(r for r in emu.records.responses if r.text.startswith("Fresh"))
        assert abandoned.finished_at is not None and fresh.created_at is not None
        assert abandoned.finished_at <= fresh.created_at


@pytest.mark.parametrize("how", BARGE_IN_SPARE_FAULTS)
async def test_with_no_spare_a_fresh_connection_answers_when_it_comes_first(how: str) -> None:
    # Both spares fail (the one opened at setup, the one tried again at the next turn); the upgrade
    # made at the barge-in goes through.
    async with session(SLOW_LANE_FREE, fail_handshakes_after_the_first(how, count=2)) as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello there."), Reply(text=LONG_TEXT), Reply(text="Fresh answer here."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        old = llm.client.current
        await conv.say("Tell me everything.")
        await conv.wait_text("word3")
        await conv.interrupt()
        asked = await conv.say("Something else, please.")
        await conv.wait_text("Fresh answer here.", timeout=10)
        fresh = next(t for t in conv.turns() if t.text.startswith("Fresh"))
        assert fresh.first_text_at - asked < 1.5  # the abandoned answer had ~2 s left to run
        assert not conv.errors() and llm.client.current is not old
        assert llm.client.stats.spare_takeovers == 0 and llm.stats.connections_taken_back == 0
        await asyncio.wait_for(old.closed.wait(), 3)  # given up, which also stops its abandoned answer
        assert "word59" not in conv.text()


async def test_a_turn_after_a_barge_in_fails_only_when_neither_connection_can_answer() -> None:
    async with session(SLOW_LANE_FREE, fail_handshakes_after_the_first("500")) as (emu, llm, conv):
        # The abandoned answer's connection drops before it ends: nothing is left to answer on.
        emu.queue_replies(
            Reply(text="Hello there."),
            Reply(text=LONG_TEXT, fault=Fault(kind="drop", after_events=20, close_code=1011)),
            Reply(text="Never sent."),
        )
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        await conv.say("Tell me everything.")
        await conv.wait_text("word3")
        await conv.interrupt()
        await conv.say("Something else, please.")
        await conv.wait_for(lambda: conv.errors(), 10, "an error")
        await conv.wait_turns_ended(3)
        [error] = conv.errors()
        assert "HTTP 500" in error.error and "Never sent." not in conv.text()


# -- 4: more responses at once than a connection takes --------------------------------------------


# With lanes, 50 tokens/s keeps all of them in flight at once, more than one connection takes.
# Lane-free, each connection runs one response at a time and they are answered one after another:
# the pacing only adds up (20 × 0.29 s at 50 tokens/s), so it streams as fast as it can.
@pytest.mark.parametrize(
    "emulator",
    [{"tokens_per_second": 50}, {**LANE_FREE, "ttft": 0.01, "tokens_per_second": 1000}],
    ids=["lanes", "lane-free"],
)
async def test_more_inferences_at_once_than_a_connection_takes_are_all_answered(emulator: dict) -> None:
    count = wire.MAX_IN_FLIGHT_RESPONSES + 4
    async with session(emulator) as (emu, llm, conv):
        emu.queue_replies(*(Reply(text=f"Answer {n} " + "more " * 10) for n in range(count)))
        answers = await asyncio.wait_for(
            asyncio.gather(*(llm.run_inference(_question(f"Q{n}")) for n in range(count))), 30
        )
        assert sorted(a.split()[1] for a in answers) == sorted(str(n) for n in range(count))
        assert not conv.errors()


async def test_a_turn_beside_a_full_connection_of_inferences_keeps_its_connection() -> None:
    count = wire.MAX_IN_FLIGHT_RESPONSES + 4
    async with session({"tokens_per_second": 20}) as (emu, llm, conv):
        emu.queue_replies(*(Reply(text="Same answer " + "more " * 10) for _ in range(count + 1)))
        inferences = asyncio.gather(*(llm.run_inference(_question(f"Q{n}")) for n in range(count)))
        await conv.wait_for(
            lambda: len(emu.records.creates()) > wire.MAX_IN_FLIGHT_RESPONSES - 1, 5, "a full connection"
        )
        await conv.say("Hello?")
        await conv.wait_turns_ended(1, timeout=30)
        assert len(await asyncio.wait_for(inferences, 30)) == count
        assert conv.turns()[0].text.startswith("Same answer") and not conv.errors()
        assert [h.status for h in emu.records.handshakes] == [101]  # the last slot was the turn's


# -- 5: an inference on a lane-free endpoint whose spare cannot be opened -------------------------


@pytest.mark.parametrize("how", SPARE_FAULTS)
async def test_an_inference_without_a_spare_is_answered_on_the_conversation_connection(how: str) -> None:
    async with session(LANE_FREE, fail_handshakes_after_the_first(how)) as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello there."), Reply(text="Out of band."), Reply(text="Again."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        started = time.monotonic()
        assert await asyncio.wait_for(llm.run_inference(_question()), 10) == "Out of band."
        assert time.monotonic() - started < 5
        await conv.say("Again.")
        await conv.wait_turns_ended(2)
        assert conv.turns()[1].text == "Again." and not conv.errors()
