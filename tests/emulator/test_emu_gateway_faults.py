"""Faults that model misbehaving gateways and proxies, checked frame by frame on the wire."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from emu_helpers import SERVER_EVENTS, Connect, Peer, response_id_of, terminal_of, text_of
from pydantic import ValidationError

from pipecat_responses_ws.emulator import Emulator, Fault, Reply, ToolCall
from pipecat_responses_ws.emulator.requests import AGE_LIMIT_MESSAGE
from pipecat_responses_ws.emulator.script import FAULT_KINDS
from pipecat_responses_ws.protocol import wire

NEW_KINDS = {
    "duplicate_delta",
    "duplicate_item_done",
    "stray_early_delta",
    "connection_limit",
    "connection_limit_lane",
    "stop_reading",
    "key_error",
    "malformed_event",
}


async def raw_response(peer: Peer, timeout: float = 5.0) -> list[str]:
    """Raw text frames up to and including the next terminal event, whatever their shape."""
    frames: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await peer.ws.recv()
            assert isinstance(frame, str)
            frames.append(frame)
            try:
                event = json.loads(frame)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("type") in wire.TERMINAL_EVENTS:
                return frames


def is_limit_error(event: dict, lane: str | None = None) -> bool:
    return (
        event["type"] == wire.ERROR
        and event["status"] == 400
        and event["error"]["code"] == wire.CONNECTION_LIMIT_REACHED
        and event["error"]["message"] == AGE_LIMIT_MESSAGE
        and event.get("stream_id") == lane
    )


def test_the_new_kinds_are_known_and_stray_text_has_a_default() -> None:
    assert NEW_KINDS <= FAULT_KINDS
    assert Fault("stray_early_delta").text == "stray "


# -- duplicates -----------------------------------------------------------------------------------


async def test_duplicate_delta_repeats_the_first_delta_at_its_trigger_byte_for_byte(
    emu: Emulator, connect: Connect
) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="one two three four five", fault=Fault("duplicate_delta", after_events=5)))
    await peer.create(input="x", stream_id="a")
    frames = await raw_response(peer)
    # created, in_progress, item added, part added, delta 4, delta 5 (repeated), delta 6, ...
    assert frames[5] == frames[6]
    repeated = json.loads(frames[5])
    assert repeated["type"] == wire.OUTPUT_TEXT_DELTA and repeated["sequence_number"] == 5
    assert json.loads(frames[7])["sequence_number"] == 6
    assert len(frames) == len(set(frames)) + 1
    sent = [s.event for s in emu.records.sent()]
    assert len(sent) == len(frames) - 1 and text_of(sent) == "one two three four five"
    assert [(f.kind, f.frame) for f in emu.records.faults] == [("duplicate_delta", frames[5])]


async def test_duplicate_delta_past_the_last_delta_repeats_it_before_the_terminal(
    emu: Emulator, connect: Connect
) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="one two", fault=Fault("duplicate_delta", after_events=50)))
    await peer.create(input="x")
    frames = await raw_response(peer)
    deltas = [f for f in frames if json.loads(f)["type"] == wire.OUTPUT_TEXT_DELTA]
    assert len(deltas) == 3 and deltas[1] == deltas[2] == frames[-2]


async def test_duplicate_delta_without_text_repeats_nothing(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(calls=[ToolCall("get_weather", {"city": "Oslo"})], fault=Fault("duplicate_delta")))
    await peer.create(input="x")
    frames = await raw_response(peer)
    assert len(frames) == len(set(frames)) == len(emu.records.sent())
    assert emu.records.faults == []


async def test_duplicate_item_done_repeats_the_first_function_call_done(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    calls = [ToolCall("get_weather", {"city": "Oslo"}), ToolCall("get_time", {"city": "Rome"})]
    emu.queue_replies(Reply(text="let me look", calls=calls, fault=Fault("duplicate_item_done")))
    await peer.create(input="x", stream_id="a")
    frames = await raw_response(peer)
    events = [json.loads(f) for f in frames]
    done = [i for i, e in enumerate(events) if e["type"] == wire.OUTPUT_ITEM_DONE]
    kinds = [events[i]["item"]["type"] for i in done]
    # The message's done is not a call's; the first call's comes twice in a row; the second's once.
    assert kinds == ["message", "function_call", "function_call", "function_call"]
    assert frames[done[1]] == frames[done[2]] and done[2] == done[1] + 1
    assert events[done[1]]["item"]["name"] == "get_weather" and events[done[3]]["item"]["name"] == "get_time"
    assert len(emu.records.sent()) == len(frames) - 1


# -- a stray delta ahead of the response ------------------------------------------------------------


@pytest.mark.parametrize("lane", [None, "turn-1"])
async def test_stray_early_delta_comes_before_created_whatever_after_events(
    emu: Emulator, connect: Connect, lane: str | None
) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="real words", fault=Fault("stray_early_delta", after_events=7, text="t9zs0w0 ")))
    await peer.create(input="x", **({"stream_id": lane} if lane else {}))
    events = await peer.response()
    stray, rest = events[0], events[1:]
    response_id = response_id_of(rest)
    assert stray == {
        "type": wire.OUTPUT_TEXT_DELTA,
        "sequence_number": 0,
        "item_id": f"msg_stray_{response_id.removeprefix('resp_')}",
        "output_index": 0,
        "content_index": 0,
        "delta": "t9zs0w0 ",
        "logprobs": [],
        **({"stream_id": lane} if lane else {}),
    }
    assert rest[0]["type"] == wire.CREATED and rest[0]["sequence_number"] == 0
    announced = {e["item"]["id"] for e in rest if e["type"] == wire.OUTPUT_ITEM_ADDED}
    assert stray["item_id"] not in announced
    assert text_of(rest) == "real words" and terminal_of(rest)["response"]["status"] == "completed"
    assert [s.event for s in emu.records.sent()] == rest


# -- the connection limit -----------------------------------------------------------------------------


async def test_connection_limit_refuses_this_response_and_every_later_create(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="never said", fault=Fault("connection_limit")))
    await peer.create(input="x", stream_id="a")
    assert is_limit_error(await peer.recv())
    assert await peer.quiet(0.2) == []
    for fields in ({"stream_id": "a"}, {"stream_id": "b"}, {}, {"generate": False}):
        await peer.create(input="again", **fields)
        assert is_limit_error(await peer.recv())
    assert await peer.quiet(0.1) == []
    # The socket stays open; only the first response was ever created, and it never ended.
    assert emu.open_connections == 1
    [record] = emu.records.responses
    assert record.status == "in_progress" and record.created_at is not None and record.finished_at is None
    assert emu.records.faults[0].kind == "connection_limit"
    fresh = await connect(emu)
    await fresh.create(input="on a new connection")
    assert terminal_of(await fresh.response())["response"]["status"] == "completed"


async def test_connection_limit_mid_response_and_its_clamp(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(
        Reply(text="one two three four", fault=Fault("connection_limit", after_events=5)),
        Reply(text="one two", fault=Fault("connection_limit", after_events=100)),
    )
    await peer.create(input="x")
    events = await peer.until(lambda e: e["type"] == wire.ERROR)
    assert len(events) == 6 and events[4]["type"] == wire.OUTPUT_TEXT_DELTA and is_limit_error(events[5])
    assert await peer.quiet(0.15) == []
    # Past the end, the error takes the terminal's place.
    other = await connect(emu)
    await other.create(input="x")
    events = await other.until(lambda e: e["type"] == wire.ERROR)
    assert events[-2]["type"] == wire.OUTPUT_ITEM_DONE and is_limit_error(events[-1])
    assert await other.quiet(0.15) == []


@pytest.mark.parametrize("kind", ["connection_limit", "connection_limit_lane"])
async def test_connection_limit_refuses_queued_creates_and_lets_other_lanes_finish(
    emu: Emulator, connect: Connect, kind: str
) -> None:
    def lane(name: str) -> str | None:
        return name if kind == "connection_limit_lane" else None

    peer = await connect(emu)
    emu.queue_replies(
        Reply(text="cut here now", ttft=0.2, fault=Fault(kind, after_events=5)),
        Reply(text="lane b finishes", ttft=0.4),
    )
    await peer.create(input="a1", stream_id="a")
    await peer.create(input="b", stream_id="b")
    await peer.create(input="a2", stream_id="a")  # queued behind a1
    events = await peer.response(lane="b")
    errors = [e for e in events if e["type"] == wire.ERROR]
    assert len(errors) == 2 and all(is_limit_error(e, lane("a")) for e in errors)
    assert terminal_of(events)["response"]["status"] == "completed" and text_of(events).endswith("lane b finishes")
    a_events = [e for e in events if e.get("stream_id") == "a" and e["type"] != wire.ERROR]
    assert [e["type"] for e in a_events][-1] == wire.OUTPUT_TEXT_DELTA
    await peer.create(input="c", stream_id="c")
    assert is_limit_error(await peer.recv(), lane("c"))
    # The queued create never became a response: its record is gone.
    assert [r.request["input"] for r in emu.records.responses] == ["a1", "b"]


# -- stop reading -------------------------------------------------------------------------------------


async def test_stop_reading_blocks_a_large_send_while_the_response_streams(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="still streaming to the end", fault=Fault("stop_reading", after_events=2)))
    await peer.create(input="x")
    events = await peer.response()
    assert text_of(events) == "still streaming to the end"
    big = json.dumps({"type": "response.create", "input": "x" * (32 * 1024 * 1024)})
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(peer.ws.send(big), 0.5)
    assert time.monotonic() - started < 2.0
    assert len(emu.records.frames) == 1
    # Aborting from the server side frees both ends at once, instead of after a close timeout.
    await emu.drop_all_connections()


# -- connection-level errors of the wrong kind or shape -----------------------------------------------


async def test_key_error_quotes_the_presented_key_and_the_response_continues(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu, token="sk-test-echoed-4242")
    emu.queue_replies(Reply(text="carry on", fault=Fault("key_error", after_events=3)))
    await peer.create(input="x", stream_id="a")
    events = await peer.response()
    error = events[3]
    assert error["type"] == wire.ERROR and "stream_id" not in error and error["status"] == 401
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["code"] == "invalid_api_key"
    assert "sk-test-echoed-4242" in error["error"]["message"]
    assert text_of(events) == "carry on" and terminal_of(events)["response"]["status"] == "completed"


async def test_malformed_event_is_json_of_the_wrong_shape_and_the_response_continues(
    emu: Emulator, connect: Connect
) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="carry on", fault=Fault("malformed_event", after_events=4)))
    await peer.create(input="x", stream_id="a")
    frames = await raw_response(peer)
    bad = json.loads(frames[4])
    assert set(bad) == {"type", "error", "status"} and bad["type"] == "error"
    assert isinstance(bad["error"], str) and bad["status"] == "bad"
    with pytest.raises(ValidationError):
        SERVER_EVENTS.validate_python(bad)
    events = [json.loads(f) for f in frames[:4] + frames[5:]]
    assert [s.event for s in emu.records.sent()] == events
    assert text_of(events) == "carry on" and terminal_of(events)["response"]["status"] == "completed"
    assert [(f.kind, f.frame) for f in emu.records.faults] == [("malformed_event", frames[4])]
