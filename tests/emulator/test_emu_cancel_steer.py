"""response.cancel under each policy, and response.steer."""

from __future__ import annotations

import time
from typing import Any

from emu_helpers import Connect, MakeEmulator, Peer, response_id_of, terminal_of, text_of

from pipecat_responses_ws.emulator import Emulator, Fault, Reply
from pipecat_responses_ws.protocol import wire

LONG = " ".join(f"w{n}" for n in range(40))


async def _started(peer: Peer, **fields: Any) -> str:
    await peer.create(**fields)
    events = await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    return response_id_of(events)


async def test_cancel_error_policy_answers_error_and_streams_on(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=LONG))
    response_id = await _started(peer, input="x", stream_id="a")
    await peer.send({"type": "response.cancel", "response_id": response_id})
    events = await peer.response(lane="a")
    errors = [e for e in events if e["type"] == wire.ERROR]
    assert len(errors) == 1 and "stream_id" not in errors[0]
    assert errors[0]["error"]["code"] == wire.UNKNOWN_EVENT and "response.cancel" in errors[0]["error"]["message"]
    assert terminal_of(events)["response"]["status"] == "completed"
    record = emu.records.response(response_id)
    assert record.cancelled_at is not None and record.output_tokens_generated == 40


async def test_cancel_ignore_policy_does_nothing(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(cancel_policy="ignore", tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=LONG))
    response_id = await _started(peer, input="x")
    await peer.send({"type": "response.cancel", "response_id": response_id})
    await peer.send({"type": "response.cancel"})
    events = await peer.response()
    assert not any(e["type"] == wire.ERROR for e in events)
    assert terminal_of(events)["response"]["status"] == "completed" and len(text_of(events).split()) == 39


async def test_cancel_honor_stops_within_a_token_interval(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(cancel_policy="honor", tokens_per_second=5.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=LONG), Reply(text="ok"))
    response_id = await _started(peer, input="x", stream_id="a")
    sent_at = time.monotonic()
    await peer.send({"type": "response.cancel", "response_id": response_id})
    events = await peer.response(lane="a")
    assert time.monotonic() - sent_at < 0.2, "one token interval at 5 tokens per second"
    assert sum(e["type"] == wire.OUTPUT_TEXT_DELTA for e in events) <= 1
    terminal = terminal_of(events)
    assert terminal["type"] == wire.INCOMPLETE and terminal["stream_id"] == "a"
    assert terminal["response"]["status"] == "cancelled" and terminal["response"]["incomplete_details"] is None
    record = emu.records.response(response_id)
    assert record.status == "cancelled" and record.cancelled_at is not None
    assert terminal["response"]["usage"]["output_tokens"] == record.output_tokens_generated < 40
    # The cancelled response still takes its lane's slot.
    await peer.create(input="next", store=False, stream_id="b", previous_response_id=response_id)
    assert terminal_of(await peer.response(lane="b"))["response"]["status"] == "completed"


async def test_cancel_honor_edge_cases(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(cancel_policy="honor", tokens_per_second=100.0)
    peer = await connect(emu)
    await peer.send({"type": "response.cancel", "response_id": "resp_unknown"})
    error = await peer.recv()
    assert error["error"]["code"] == "response_not_found" and "stream_id" not in error
    # No response_id: the running default-lane response is cancelled.
    emu.queue_replies(Reply(text=LONG))
    response_id = await _started(peer, input="x")
    await peer.send({"type": "response.cancel"})
    assert terminal_of(await peer.response())["response"]["status"] == "cancelled"
    # A cancel racing the terminal of a finished response is ignored.
    await peer.send({"type": "response.cancel", "response_id": response_id})
    assert await peer.quiet(0.1) == []


async def test_cancel_honor_cuts_a_stall(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(cancel_policy="honor")
    peer = await connect(emu)
    emu.add_fault(Fault("stall", after_events=5, seconds=float("inf")))
    response_id = await _started(peer, input="x")
    await peer.send({"type": "response.cancel", "response_id": response_id})
    assert terminal_of(await peer.response(timeout=2))["response"]["status"] == "cancelled"


async def test_steer_accepted_ends_target_and_starts_successor(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=LONG, calls=[]))
    target = await _started(peer, input="tell me a story", stream_id="turn-1")
    await peer.send({"type": "response.steer", "previous_response_id": target, "input": "Use Celsius, please."})
    events = await peer.response(lane="turn-1")
    accepted = next(e for e in events if e["type"] == wire.STEER_ACCEPTED)
    assert accepted["stream_id"] == "turn-1" and accepted["steer"]["previous_response_id"] == target
    terminal = terminal_of(events)
    assert terminal["type"] == wire.INCOMPLETE
    assert terminal["response"]["incomplete_details"] == {"reason": "steered"}
    # The open message item was finished before the target ended.
    assert terminal["response"]["output"][0]["status"] == "completed"
    successor = await peer.response(lane="turn-1")
    created = successor[0]
    assert created["type"] == wire.CREATED and created["response"]["id"] != target
    assert created["response"]["previous_response_id"] == target
    assert text_of(successor) == (
        "You said: Use Celsius, please. That is a fine thing to talk about. Let me know what else you need."
    )
    assert len(emu.records.creates()) == 1 and emu.records.responses[1].parent == target


async def test_steer_failures(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    await peer.send({"type": "response.steer", "previous_response_id": "resp_missing", "input": "hi"})
    failed = await peer.recv()
    assert failed["type"] == wire.STEER_FAILED and failed["error"]["code"] == "response_not_found"
    assert "stream_id" not in failed and failed["steer"]["input"] == "hi"

    await peer.create(input="x", stream_id="a")
    done = response_id_of(await peer.response(lane="a"))
    await peer.send({"type": "response.steer", "previous_response_id": done, "input": "more"})
    failed = await peer.recv()
    assert failed["error"]["code"] == "response_already_completed" and failed["stream_id"] == "a"

    await peer.send({"type": "response.steer", "previous_response_id": done, "input": [{"role": "assistant"}]})
    failed = await peer.recv()
    assert failed["error"]["code"] == "invalid_input" and failed["steer"]["input"] == ""

    await peer.send({"type": "response.steer", "input": "no target"})
    error = await peer.recv()
    assert error["type"] == wire.ERROR and error["error"]["param"] == "previous_response_id"


async def test_steer_with_message_list_input(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=LONG))
    target = await _started(peer, input="x")
    message = {"role": "user", "content": [{"type": "input_text", "text": "Shorter"}]}
    await peer.send({"type": "response.steer", "previous_response_id": target, "input": [message]})
    events = await peer.response()
    assert terminal_of(events)["response"]["incomplete_details"]["reason"] == "steered"
    assert "stream_id" not in next(e for e in events if e["type"] == wire.STEER_ACCEPTED)
    assert text_of(await peer.response()).startswith("You said: Shorter.")
