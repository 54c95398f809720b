"""The connection-local cache (store=false), forks, evictions, the store, and generate:false."""

from __future__ import annotations

from typing import Any

from emu_helpers import Connect, Event, MakeEmulator, Peer, response_id_of, terminal_of, text_of

from pipecat_responses_ws.emulator import Emulator, Fault, Reply
from pipecat_responses_ws.protocol import wire


async def _turn(peer: Peer, **fields: Any) -> list[Event]:
    await peer.create(**fields)
    return await peer.response(lane=fields.get("stream_id"))


async def test_not_found_payload_and_no_response(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    await peer.create(input="x", store=False, stream_id="turn-8", previous_response_id="resp_nope")
    error = await peer.recv()
    assert error == {
        "type": "error",
        "status": 400,
        "stream_id": "turn-8",
        "error": {
            "type": "invalid_request_error",
            "code": "previous_response_not_found",
            "param": "previous_response_id",
            "message": "Previous response with id 'resp_nope' not found.",
        },
    }
    await peer.create(input="x", store=False, previous_response_id="resp_nope")
    assert "stream_id" not in await peer.recv()
    assert emu.records.responses == []


async def test_chain_reads_the_whole_conversation(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    first = await _turn(peer, input="My name is Ada", store=False, instructions="Be brief.")
    second = await _turn(peer, input=[], store=False, previous_response_id=response_id_of(first))
    # With no new input the model reads the parent's conversation and answers its last user message.
    assert text_of(second) == text_of(first)
    usage = terminal_of(second)["response"]["usage"]
    assert usage["input_tokens"] == 4 + len(text_of(first).split())
    assert usage["input_tokens_details"]["cached_tokens"] == usage["input_tokens"]
    assert terminal_of(first)["response"]["usage"]["input_tokens"] == 4 + 2


async def test_lane_slot_is_replaced_by_the_lanes_next_response(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    r1 = response_id_of(await _turn(peer, input="one", store=False, stream_id="a"))
    r2 = response_id_of(await _turn(peer, input="two", store=False, stream_id="a"))
    r3 = response_id_of(await _turn(peer, input="three", store=False, stream_id="b"))
    # Latest of each lane is reachable from any lane (forks)...
    fork = await _turn(peer, input="fork", store=False, stream_id="c", previous_response_id=r2)
    assert terminal_of(fork)["response"]["status"] == "completed"
    fork = await _turn(peer, input="fork", store=False, stream_id="a", previous_response_id=r3)
    assert terminal_of(fork)["response"]["previous_response_id"] == r3
    # ...but r1 was replaced on lane a by r2, and r2 by the fork that just ran on lane a.
    for stale in (r1, r2):
        await peer.create(input="late", store=False, stream_id="d", previous_response_id=stale)
        assert (await peer.recv())["error"]["code"] == wire.PREVIOUS_RESPONSE_NOT_FOUND


async def test_slot_is_replaced_when_the_next_response_finishes(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=100.0)
    peer = await connect(emu)
    parent = response_id_of(await _turn(peer, input="source", store=False, stream_id="src"))
    emu.queue_replies(Reply(text=" ".join(["busy"] * 15)))
    await peer.create(input="advance", store=False, stream_id="src", previous_response_id=parent)
    await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    # The source lane is still streaming its next response, so the parent is still cached.
    fork = await _turn(peer, input="fork", store=False, stream_id="fork", previous_response_id=parent)
    assert terminal_of(fork)["response"]["status"] == "completed"
    await emu.records.wait_for(lambda: emu.records.responses[1].finished_at is not None)
    await peer.create(input="fork", store=False, stream_id="fork", previous_response_id=parent)
    assert (await peer.until(lambda e: e["type"] == wire.ERROR))[-1]["error"]["code"] == "previous_response_not_found"


async def test_queued_fork_loses_its_parent_when_the_source_lane_advances(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    parent = response_id_of(await _turn(peer, input="source", store=False, stream_id="src"))
    emu.queue_replies(Reply(text="blocker", ttft=0.3), Reply(text="advance"))
    await peer.create(input="block the fork lane", store=False, stream_id="fork")
    await peer.create(input="advance", store=False, stream_id="src", previous_response_id=parent)
    await peer.create(input="queued fork", store=False, stream_id="fork", previous_response_id=parent)
    events = await peer.until(lambda e: e["type"] == wire.ERROR, timeout=5)
    assert events[-1]["stream_id"] == "fork" and events[-1]["error"]["code"] == "previous_response_not_found"


async def test_failed_same_lane_continuation_evicts_its_parent(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    parent = response_id_of(await _turn(peer, input="start", store=False, stream_id="a"))
    emu.add_fault(Fault("fail", after_events=3))
    failed = await _turn(peer, input="go on", store=False, stream_id="a", previous_response_id=parent)
    assert terminal_of(failed)["type"] == wire.FAILED
    await peer.create(input="retry", store=False, stream_id="a", previous_response_id=parent)
    assert (await peer.recv())["error"]["code"] == wire.PREVIOUS_RESPONSE_NOT_FOUND


async def test_failed_cross_lane_fork_keeps_the_parent(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    parent = response_id_of(await _turn(peer, input="start", store=False, stream_id="a"))
    emu.add_fault(Fault("fail", after_events=3))
    failed = await _turn(peer, input="fork", store=False, stream_id="b", previous_response_id=parent)
    assert terminal_of(failed)["type"] == wire.FAILED
    retry = await _turn(peer, input="fork again", store=False, stream_id="b", previous_response_id=parent)
    assert terminal_of(retry)["response"]["status"] == "completed"


def _orphan_output(call_id: str = "call_nobody_made") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": "No call asked for this."}


async def test_an_output_answering_no_call_is_refused_and_evicts_the_parent(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    parent = response_id_of(await _turn(peer, input="start", store=False))
    await peer.create(input=[_orphan_output()], store=False, previous_response_id=parent)
    assert await peer.recv() == {
        "type": "error",
        "status": 400,
        "error": {
            "type": "invalid_request_error",
            "code": wire.INVALID_REQUEST,
            "param": "input",
            "message": "No tool call found for function call output with call_id call_nobody_made.",
        },
    }
    assert len(emu.records.responses) == 1
    # The refused continuation took its parent out of the connection's cache.
    await peer.create(input="retry", store=False, previous_response_id=parent)
    assert (await peer.recv())["error"]["code"] == wire.PREVIOUS_RESPONSE_NOT_FOUND


async def test_a_refused_fork_from_another_lane_keeps_the_parent(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    parent = response_id_of(await _turn(peer, input="start", store=False, stream_id="a"))
    await peer.create(input=[_orphan_output()], store=False, stream_id="b", previous_response_id=parent)
    refused = await peer.recv()
    assert refused["stream_id"] == "b" and refused["error"]["param"] == "input"
    retry = await _turn(peer, input="fork again", store=False, stream_id="b", previous_response_id=parent)
    assert terminal_of(retry)["response"]["status"] == "completed"


async def test_a_request_refused_by_its_checks_evicts_the_parent_too(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    parent = response_id_of(await _turn(peer, input="start", store=False))
    await peer.create(input=42, store=False, previous_response_id=parent)
    assert (await peer.recv())["error"]["param"] == "input"
    await peer.create(input="retry", store=False, previous_response_id=parent)
    assert (await peer.recv())["error"]["code"] == wire.PREVIOUS_RESPONSE_NOT_FOUND


async def test_an_output_is_matched_against_the_whole_conversation(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    call = {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}
    # A call sent beside its output answers it, without a parent.
    first = await _turn(peer, input=[call, _orphan_output("call_1")], store=False)
    assert terminal_of(first)["response"]["status"] == "completed"
    # And a call anywhere up the chain, not only in the parent's own output.
    second = await _turn(peer, input="more", store=False, previous_response_id=response_id_of(first))
    answer = [_orphan_output("call_1")]
    third = await _turn(peer, input=answer, store=False, previous_response_id=response_id_of(second))
    assert terminal_of(third)["response"]["status"] == "completed"
    await peer.create(input=[_orphan_output("call_2")], store=False)
    assert (await peer.recv())["error"]["message"].endswith("call_id call_2.")


async def test_cache_is_dropped_on_close_but_stored_responses_survive(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    local = response_id_of(await _turn(peer, input="local", store=False))
    stored = response_id_of(await _turn(peer, input="kept", store=True, stream_id="s"))
    await peer.ws.close()
    peer = await connect(emu)
    await peer.create(input="again", store=False, previous_response_id=local)
    assert (await peer.recv())["error"]["code"] == wire.PREVIOUS_RESPONSE_NOT_FOUND
    resumed = await _turn(peer, input=[], store=False, previous_response_id=stored)
    assert text_of(resumed).startswith("You said: kept.")
    assert emu.connection_count == 2


async def test_generate_false_is_empty_free_and_chainable(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="scripted"))
    warm = await _turn(peer, input=[], store=False, generate=False, instructions="You are on the phone.")
    assert [e["type"] for e in warm] == [wire.CREATED, wire.IN_PROGRESS, wire.COMPLETED]
    response = terminal_of(warm)["response"]
    assert response["output"] == [] and response["usage"]["output_tokens"] == 0
    assert response["usage"]["input_tokens"] == 5
    turn = await _turn(peer, input="hi", store=False, stream_id="t1", previous_response_id=response["id"])
    assert text_of(turn) == "scripted", "generate:false must not consume a scripted reply"
    record = emu.records.responses[0]
    assert record.generate is False and record.output_tokens_generated == 0
