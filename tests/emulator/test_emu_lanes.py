"""Lanes: routing, FIFO per lane, concurrency across lanes, and the two per-connection limits."""

from __future__ import annotations

import itertools

from emu_helpers import Connect, MakeEmulator, Peer, response_id_of, terminal_of, text_of

from pipecat_responses_ws.emulator import Emulator, Reply
from pipecat_responses_ws.protocol import wire


async def test_default_lane_events_never_carry_stream_id(emu: Emulator, connect: Connect) -> None:
    peer: Peer = await connect(emu)
    await peer.create(input="hello", store=False)
    events = await peer.response()
    assert [e["type"] for e in events[:4]] == [
        wire.CREATED,
        wire.IN_PROGRESS,
        wire.OUTPUT_ITEM_ADDED,
        wire.CONTENT_PART_ADDED,
    ]
    assert [e["type"] for e in events[-4:]] == [
        wire.OUTPUT_TEXT_DONE,
        wire.CONTENT_PART_DONE,
        wire.OUTPUT_ITEM_DONE,
        wire.COMPLETED,
    ]
    assert all("stream_id" not in e for e in events)
    assert terminal_of(events)["response"]["status"] == "completed"


async def test_named_lanes_interleave_and_echo_their_stream_id(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text="one two three four five six"), Reply(text="alpha beta gamma delta epsilon zeta"))
    await peer.create(input="a", stream_id="lane-a")
    await peer.create(input="b", stream_id="lane-b")
    events = await peer.until(lambda e: e["type"] == wire.COMPLETED and e["stream_id"] == "lane-b")
    if not any(e["type"] == wire.COMPLETED and e["stream_id"] == "lane-a" for e in events):
        events += await peer.response(lane="lane-a")
    assert all(e["stream_id"] in ("lane-a", "lane-b") for e in events)
    lanes = [e["stream_id"] for e in events if e["type"] == wire.OUTPUT_TEXT_DELTA]
    switches = sum(1 for a, b in itertools.pairwise(lanes) if a != b)
    assert switches >= 2, lanes
    a_text = text_of([e for e in events if e["stream_id"] == "lane-a"])
    b_text = text_of([e for e in events if e["stream_id"] == "lane-b"])
    assert (a_text, b_text) == ("one two three four five six", "alpha beta gamma delta epsilon zeta")


async def test_busy_lane_queues_fifo_without_error(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="first answer here"), Reply(text="second"), Reply(text="third"))
    for n in range(3):
        await peer.create(input=f"turn {n}", stream_id="solo")
    events = []
    for _ in range(3):
        events += await peer.response(lane="solo")
    kinds = [e["type"] for e in events if e["type"] in wire.LIFECYCLE_EVENTS]
    assert kinds == [wire.CREATED, wire.IN_PROGRESS, wire.COMPLETED] * 3
    assert [
        terminal["response"]["output"][0]["content"][0]["text"]
        for terminal in events
        if terminal["type"] == wire.COMPLETED
    ] == ["first answer here", "second", "third"]
    assert not any(e["type"] == wire.ERROR for e in events)
    records = emu.records.responses
    assert records[0].finished_at <= records[1].created_at <= records[1].finished_at <= records[2].created_at


async def test_default_lane_queues_behind_the_running_response(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=200.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text=" ".join(["word"] * 20)), Reply(text="next"))
    await peer.create(input="long")
    await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    await peer.create(input="interrupting")
    events = await peer.response()
    assert text_of(events).split() == ["word"] * 19
    follow = await peer.response()
    assert response_id_of(follow) != terminal_of(events)["response"]["id"] and text_of(follow) == "next"


async def test_at_most_16_in_flight_the_rest_queue(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(tokens_per_second=100.0)
    peer = await connect(emu)
    emu.queue_replies(*[Reply(text="a b c d e", ttft=0.05) for _ in range(20)])
    for n in range(20):
        await peer.create(input="x", stream_id=f"lane-{n}")
    await emu.records.wait_for(lambda: sum(r.status == "queued" for r in emu.records.responses) == 4)
    assert sum(r.status == "in_progress" for r in emu.records.responses) == 16
    events = await peer.until(lambda e: e["type"] == wire.CREATED and e["stream_id"] == "lane-16", timeout=10)
    completed_before = {e["stream_id"] for e in events if e["type"] == wire.COMPLETED}
    assert completed_before, "the 17th response may start only once an earlier one ended"
    for _ in range(20 - len(completed_before)):
        await peer.response(timeout=10)
    records = emu.records.responses
    assert all(r.status == "completed" for r in records)
    # Never more than 16 streaming at once.
    moments = sorted([(r.created_at, 1) for r in records] + [(r.finished_at, -1) for r in records])
    running = peak = 0
    for _, step in moments:
        running += step
        peak = max(peak, running)
    assert peak == 16


async def test_33rd_distinct_lane_is_rejected_and_echoed(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    for n in range(32):
        await peer.create(input="x", stream_id=f"l{n}", generate=False)
    for _ in range(32):
        await peer.response()
    await peer.create(input="x", stream_id="l32")
    error = await peer.recv()
    assert error["type"] == wire.ERROR
    assert error["stream_id"] == "l32" and error["status"] == 400
    assert (error["error"]["code"], error["error"]["param"]) == (wire.STREAM_LIMIT_REACHED, "stream_id")
    # Reusing a lane still works; the default lane is not counted.
    await peer.create(input="x", stream_id="l5", generate=False)
    assert terminal_of(await peer.response())["stream_id"] == "l5"
    await peer.create(input="x", generate=False)
    assert "stream_id" not in terminal_of(await peer.response())
    assert len(emu.records.responses) == 34


async def test_invalid_stream_id_is_rejected_without_echo(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    for bad in ["", "has space", "x" * 257, 7]:
        await peer.create(input="x", stream_id=bad)
        error = await peer.recv()
        assert error["error"]["code"] == wire.INVALID_STREAM_ID and error["error"]["param"] == "stream_id"
        assert error["status"] == 400 and "stream_id" not in error
    assert emu.records.responses == []
