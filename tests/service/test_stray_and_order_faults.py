"""A server that loses track of lanes and order, end to end: stray events without ``stream_id``, a
frame nested too deep to parse, deltas swapped or lost on the way, ``stream_id`` ignored."""

from __future__ import annotations

import time

from pipecat_responses_ws.emulator import Fault, Reply

from .conftest import session
from .test_gateway_faults import captured_logs

EIGHT_WORDS = "One two three four five six seven eight."


async def test_a_frame_nested_a_thousand_levels_deep_is_skipped_and_the_answer_goes_on() -> None:
    with captured_logs("WARNING") as lines:
        async with session() as (emu, llm, conv):
            emu.queue_replies(
                Reply(text=EIGHT_WORDS, fault=Fault("deep_json", after_events=6)), Reply(text="Still here.")
            )
            await conv.say("Count")
            await conv.wait_turns_ended(1)
            await conv.say("Again")
            await conv.wait_turns_ended(2)
            assert [t.text for t in conv.turns()] == [EIGHT_WORDS, "Still here."] and not conv.errors()
            assert emu.records.faults[0].kind == "deep_json" and emu.open_connections == 1
    assert any("nested deeper" in line for line in lines)


async def test_stray_events_without_stream_id_are_never_spoken_and_never_end_an_answer() -> None:
    with captured_logs("WARNING") as lines:
        async with session() as (emu, llm, conv):
            emu.queue_replies(
                Reply(text=EIGHT_WORDS, fault=Fault("laneless_stray_delta", after_events=6, text="STRAY ")),
                Reply(text=EIGHT_WORDS, fault=Fault("laneless_stray_completed", after_events=6)),
            )
            for n, text in enumerate(["Count", "Again"], start=1):
                await conv.say(text)
                await conv.wait_turns_ended(n)
            assert [t.text for t in conv.turns()] == [EIGHT_WORDS, EIGHT_WORDS] and not conv.errors()
            state = llm.client.current.state
            assert state.lanes is True and state.router.named and llm.stats.stray_events == 2
            assert all("stream_id" in c for c in emu.records.creates())  # lanes all along
    assert len([line for line in lines if "stray" in line]) == 1  # said once, then counted


async def test_deltas_swapped_on_the_way_are_spoken_in_order() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(Reply(text=EIGHT_WORDS, fault=Fault("reorder_deltas", after_events=5)))
        await conv.say("Count")
        await conv.wait_turns_ended(1)
        assert conv.turns()[0].text == EIGHT_WORDS and not conv.errors()
        assert llm.stats.events_reordered >= 3 and llm.stats.sequence_gaps == 0


async def test_a_delta_lost_mid_answer_is_reported_with_the_response_and_its_number() -> None:
    with captured_logs("WARNING") as lines:
        async with session() as (emu, llm, conv):
            emu.queue_replies(Reply(text=EIGHT_WORDS, fault=Fault("lose_delta", after_events=7)))
            await conv.say("Count")
            await conv.wait_turns_ended(1)
            assert conv.turns()[0].text == EIGHT_WORDS.replace("four ", "")
            response_id = next(r.id for r in emu.records.responses if r.generate)
    lost = [line for line in lines if "lost 1 event" in line]
    assert len(lost) == 1 and response_id in lost[0] and "sequence_number 7" in lost[0]


async def test_a_delta_lost_before_anything_was_spoken_sends_the_turn_again() -> None:
    async with session() as (emu, llm, conv):
        emu.queue_replies(Reply(text=EIGHT_WORDS, fault=Fault("lose_delta", after_events=4)), Reply(text="In full."))
        await conv.say("Count")
        await conv.wait_turns_ended(1)
        assert conv.turns()[0].text == "In full." and not conv.errors()
        assert llm.stats.sequence_gaps == 1 and len([r for r in emu.records.responses if r.generate]) == 2


async def test_forced_lanes_on_a_server_that_ignores_stream_id_say_so_and_what_to_set() -> None:
    service = {"lanes": True, "first_event_timeout": 2.0, "warm_up": False}
    async with session(emulator={"multiplexing": "none", "stream_id_policy": "ignore"}, service=service) as (
        emu,
        llm,
        conv,
    ):
        emu.queue_replies(Reply(text=EIGHT_WORDS))
        asked = time.monotonic()
        await conv.say("Hi")
        await conv.wait_for(lambda: bool(conv.errors()), 8, "the error")
        error = conv.errors()[0].error
        assert "ignores stream_id" in error and "lanes='auto'" in error and "lanes=False" in error
        assert "no event for" not in error and time.monotonic() - asked < 2.0  # at once, not after the timeout
