"""Usage on terminal events, and tokens billed for responses nobody listened to."""

from __future__ import annotations

from emu_helpers import Connect, MakeEmulator, terminal_of

from pipecat_responses_ws.emulator import Emulator, Reply, ToolCall
from pipecat_responses_ws.emulator.stream import argument_chunks
from pipecat_responses_ws.protocol import wire


async def test_usage_counts_input_words_and_output_deltas(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="one two three", calls=[ToolCall("f", {"city": "Oslo", "days": 3})]))
    await peer.create(input="four words of input", instructions="two more")
    events = await peer.response()
    deltas = [e for e in events if e["type"] in (wire.OUTPUT_TEXT_DELTA, wire.FUNCTION_CALL_ARGUMENTS_DELTA)]
    usage = terminal_of(events)["response"]["usage"]
    assert usage["input_tokens"] == 6
    assert usage["output_tokens"] == len(deltas) == 3 + len(argument_chunks('{"city": "Oslo", "days": 3}'))
    assert usage["total_tokens"] == 6 + len(deltas)
    record = emu.records.responses[0]
    assert (record.output_tokens_generated, record.input_tokens, record.text) == (len(deltas), 6, "one two three")


async def test_abandoned_response_is_still_generated_and_counted(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=" ".join(["old"] * 30)), Reply(text="new turn"))
    await peer.create(input="first", stream_id="turn-1")
    await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    # The client moves on to a new lane and never reads turn-1 again.
    await peer.create(input="second", stream_id="turn-2")
    await peer.response(lane="turn-2")
    await emu.records.wait_for(lambda: emu.records.responses[0].status == "completed")
    assert emu.records.responses[0].output_tokens_generated == 30


async def test_cancelled_response_bills_what_it_generated(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(cancel_policy="honor", tokens_per_second=100.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=" ".join(["w"] * 50)))
    await peer.create(input="x")
    events = await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    events += await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    await peer.send({"type": "response.cancel", "response_id": events[0]["response"]["id"]})
    rest = await peer.response()
    generated = sum(e["type"] == wire.OUTPUT_TEXT_DELTA for e in events + rest)
    assert terminal_of(rest)["response"]["usage"]["output_tokens"] == generated
    assert emu.records.responses[0].output_tokens_generated == generated < 50


async def test_max_output_tokens_truncates_with_incomplete(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="a b c d e f g h", calls=[ToolCall("f", {})]))
    await peer.create(input="x", max_output_tokens=5)
    events = await peer.response()
    terminal = terminal_of(events)["response"]
    assert terminal["status"] == "incomplete" and terminal["incomplete_details"] == {"reason": "max_output_tokens"}
    assert terminal["usage"]["output_tokens"] == 5
    assert [(i["type"], i["status"]) for i in terminal["output"]] == [("message", "incomplete")]
    assert terminal["output"][0]["content"][0]["text"] == "a b c d e "
