"""Every endpoint: lane support found out per connection, and barge-in without lanes that never waits."""

from __future__ import annotations

import asyncio

import pytest

from pipecat_responses_ws.emulator import Reply

from .conftest import LONG_TEXT, session
from .test_gateway_faults import captured_logs

# A design that queues behind the abandoned answer misses this by seconds (LONG_TEXT at 25 tokens/s).
GENEROUS_BOUND_SECS = 0.6
LANE_FREE = {"multiplexing": "none"}


def _generated(emu) -> list[dict]:
    return [c for c in emu.records.creates() if c.get("generate", True) is not False]


async def test_the_default_finds_lanes_on_a_server_that_has_them() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello there."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        assert llm.client.current.state.lanes is True
        assert all("stream_id" in c for c in emu.records.creates())


async def test_the_default_finds_no_lanes_on_a_server_that_ignores_them() -> None:
    with captured_logs("INFO") as lines:
        async with session(emulator=LANE_FREE) as (emu, llm, conv):
            emu.queue_replies(Reply(text="Hello there."), Reply(text="Still here."))
            await conv.say("Hi")
            await conv.wait_turns_ended(1)
            await conv.say("And now?")
            await conv.wait_turns_ended(2)
            assert [t.text for t in conv.turns()] == ["Hello there.", "Still here."]
            assert llm.client.current.state.lanes is False and not conv.errors()
            generated = _generated(emu)
            assert all("stream_id" not in c for c in generated)
            assert generated[-1].get("previous_response_id")  # incremental on the one cached response
    decided = [line for line in lines if "no lanes" in line]
    assert len(decided) == 1  # once, not once per connection


async def test_the_default_finds_no_lanes_on_a_server_that_refuses_them() -> None:
    async with session(emulator={**LANE_FREE, "stream_id_policy": "reject"}) as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello there."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        assert conv.turns()[0].text == "Hello there." and not conv.errors()
        assert llm.client.current.state.lanes is False
        assert all("stream_id" not in c for c in _generated(emu))


async def test_without_a_warm_up_the_first_turn_finds_out_without_being_lost() -> None:
    async with session(emulator=LANE_FREE, service={"warm_up": False}) as (emu, llm, conv):
        emu.queue_replies(Reply(text="Hello there."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        assert conv.turns()[0].text == "Hello there." and not conv.errors()
        assert "stream_id" in emu.records.creates()[0]  # the turn carried the probe
        assert llm.client.current.state.lanes is False


@pytest.mark.slow
async def test_forced_lanes_on_a_server_without_them_say_why() -> None:
    with captured_logs("WARNING") as lines:
        async with session(emulator=LANE_FREE, service={"lanes": True, "first_event_timeout": 0.5}) as (
            emu,
            llm,
            conv,
        ):
            conv.follow(lines.changes)
            emu.queue_replies(Reply(text="Hello there."))
            await conv.say("Hi")
            await conv.wait_for(lambda: any("lanes='auto'" in line for line in lines), 8, "the warning")


async def test_a_barge_in_without_lanes_moves_to_the_spare_and_closes_the_old_connection() -> None:
    async with session(emulator={**LANE_FREE, "cancel_policy": "ignore", "tokens_per_second": 25}) as (
        emu,
        llm,
        conv,
    ):
        conv.follow(llm.client.changes)  # a spare kept, a takeover
        emu.queue_replies(Reply(text="Hello there."), Reply(text=LONG_TEXT), Reply(text="Fresh answer here."))
        await conv.say("Hi")
        await conv.wait_turns_ended(1)
        await conv.wait_for(lambda: llm.client.spare is not None, 3, "a warm spare")
        old = llm.client.current
        await conv.say("Tell me everything.")
        await conv.wait_text("word3")
        await conv.interrupt()
        await conv.wait_for(lambda: llm.client.current is not old, 0.5, "the spare taking over")
        asked = await conv.say("Something else, please.")
        await conv.wait_text("Fresh answer here.")
        fresh = next(t for t in conv.turns() if t.text.startswith("Fresh"))
        assert fresh.first_text_at - asked < GENEROUS_BOUND_SECS
        assert conv.text_after_interruptions() == [] and "word50" not in conv.text() and not conv.errors()
        assert llm.stats.barge_ins_to_spare == 1 and llm.client.stats.spare_takeovers == 1
        assert llm.stats.input_items_resent > 0 and llm.stats.bytes_resent > 0
        await asyncio.wait_for(old.closed.wait(), 3)  # closed, which also stops the abandoned answer
        abandoned = next(r for r in emu.records.responses if r.text.startswith("word0"))
        assert abandoned.finished_at is None and abandoned.output_tokens_generated < len(LONG_TEXT.split())
        await conv.wait_for(lambda: llm.client.spare is not None, 3, "a new spare")


@pytest.mark.slow
async def test_where_the_server_stops_cancelled_answers_a_barge_in_stays_on_its_connection() -> None:
    async with session(emulator={**LANE_FREE, "cancel_policy": "honor", "tokens_per_second": 25}) as (
        emu,
        llm,
        conv,
    ):
        again = LONG_TEXT.replace("word", "again")
        emu.queue_replies(
            Reply(text=LONG_TEXT), Reply(text="First fresh answer."), Reply(text=again), Reply(text="Fresh again.")
        )
        conv.follow(llm.client.changes)  # a spare kept
        await conv.wait_for(lambda: llm.client.spare is not None, 3, "a warm spare")
        for marker, fresh in (("word3", "First fresh answer."), ("again3", "Fresh again.")):
            await conv.say("Tell me everything.")
            await conv.wait_text(marker)
            await conv.interrupt()
            asked = await conv.say("Something else, please.")
            await conv.wait_text(fresh)
            turn = next(t for t in conv.turns() if t.text == fresh)
            assert turn.first_text_at - asked < GENEROUS_BOUND_SECS
            await asyncio.sleep(0.2)
        # The first barge-in moved to the spare and saw the cancel honoured; the second stayed.
        assert llm.stats.barge_ins_to_spare == 1 and llm.stats.barge_ins_on_same_connection == 1
        assert conv.text_after_interruptions() == [] and not conv.errors()
