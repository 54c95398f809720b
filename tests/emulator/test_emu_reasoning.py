"""Reasoning output: a summary that streams before the answer, and reasoning items sent back as input."""

from __future__ import annotations

from emu_helpers import Connect, response_id_of, terminal_of, text_of

from pipecat_responses_ws.emulator import Emulator, Reply, ToolCall
from pipecat_responses_ws.emulator.model import PlannedCall, PlannedReasoning, PlannedText, plan_from_reply
from pipecat_responses_ws.protocol import wire

SUMMARY = "Thinking about Oslo weather."


def test_reasoning_is_planned_first() -> None:
    plan = plan_from_reply(Reply(text="Sunny.", calls=[ToolCall("f")], reasoning=SUMMARY))
    assert plan == [PlannedReasoning(SUMMARY), PlannedText("Sunny."), PlannedCall("f", "{}")]


async def test_reasoning_item_streams_its_summary_before_the_message(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(reasoning=SUMMARY, text="Sunny."))
    await peer.create(input="weather in Oslo?", stream_id="t1")
    events = await peer.response()
    kinds = [e["type"] for e in events]
    deltas = [e for e in events if e["type"] == wire.REASONING_SUMMARY_TEXT_DELTA]
    first_item = kinds.index(wire.OUTPUT_ITEM_ADDED)
    assert kinds[first_item : first_item + 2] == [wire.OUTPUT_ITEM_ADDED, wire.REASONING_SUMMARY_PART_ADDED]
    assert kinds[first_item + 2 + len(deltas) : first_item + 5 + len(deltas)] == [
        wire.REASONING_SUMMARY_TEXT_DONE,
        wire.REASONING_SUMMARY_PART_DONE,
        wire.OUTPUT_ITEM_DONE,
    ]
    added = events[first_item]
    assert added["output_index"] == 0
    assert added["item"]["type"] == "reasoning" and added["item"]["summary"] == []
    item_id = added["item"]["id"]
    assert item_id.startswith("rs_")
    assert "".join(d["delta"] for d in deltas) == SUMMARY and len(deltas) == len(SUMMARY.split())
    assert all((d["item_id"], d["output_index"], d["summary_index"]) == (item_id, 0, 0) for d in deltas)
    part_added = events[first_item + 1]
    assert part_added["part"] == {"type": "summary_text", "text": ""} and part_added["summary_index"] == 0
    text_done = next(e for e in events if e["type"] == wire.REASONING_SUMMARY_TEXT_DONE)
    part_done = next(e for e in events if e["type"] == wire.REASONING_SUMMARY_PART_DONE)
    assert text_done["text"] == SUMMARY and part_done["part"] == {"type": "summary_text", "text": SUMMARY}
    done = next(e["item"] for e in events if e["type"] == wire.OUTPUT_ITEM_DONE)
    assert done["id"] == item_id and done["summary"] == [{"type": "summary_text", "text": SUMMARY}]
    assert done["encrypted_content"].startswith("enc_")
    # The message follows at output index 1; the terminal's output holds both items.
    assert text_of(events) == "Sunny."
    message_added = [e for e in events if e["type"] == wire.OUTPUT_ITEM_ADDED][1]
    assert message_added["output_index"] == 1 and message_added["item"]["type"] == "message"
    terminal = terminal_of(events)["response"]
    assert terminal["status"] == "completed"
    assert [item["type"] for item in terminal["output"]] == ["reasoning", "message"]
    assert terminal["output"][0] == done
    usage = terminal["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] == len(deltas)
    assert usage["output_tokens"] == len(deltas) + 1  # "Sunny." is one text delta


async def test_reasoning_items_are_accepted_as_input(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(reasoning=SUMMARY, text="Sunny."))
    await peer.create(input="weather in Oslo?")
    first = await peer.response()
    reasoning = terminal_of(first)["response"]["output"][0]
    # A client that does not rely on the server's memory sends the reasoning item back itself.
    sent_back = {k: reasoning[k] for k in ("type", "id", "summary", "encrypted_content")}
    history = [
        {"role": "user", "content": "weather in Oslo?"},
        sent_back,
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "and tomorrow?"},
    ]
    await peer.create(input=history, store=False)
    second = await peer.response()
    assert terminal_of(second)["response"]["status"] == "completed"
    assert text_of(second).startswith("You said: and tomorrow.")
    # And continuing from a response whose output holds a reasoning item works too.
    await peer.create(input="thanks", previous_response_id=response_id_of(first))
    third = await peer.response()
    assert terminal_of(third)["response"]["status"] == "completed"
    assert text_of(third).startswith("You said: thanks.")
