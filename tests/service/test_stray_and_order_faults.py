"""A server that loses track of lanes and order, end to end: stray events without ``stream_id``, a
frame nested too deep to parse, deltas swapped or lost on the way, ``stream_id`` ignored."""

from __future__ import annotations

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
