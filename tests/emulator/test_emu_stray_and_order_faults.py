"""Faults of a server that loses track of lanes and order: stray events without ``stream_id``, a
frame nested deeper than a parser can follow, text deltas swapped or lost. Checked frame by frame."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from emu_helpers import FAST, Connect, Peer, text_of

from pipecat_responses_ws.emulator import Emulator, Fault, Reply
from pipecat_responses_ws.emulator.runner import DEEP_JSON_LEVELS
from pipecat_responses_ws.emulator.script import FAULT_KINDS
from pipecat_responses_ws.protocol import wire

TEXT = "one two three four five six"


async def frames_to_terminal(peer: Peer) -> list[str]:
    """Raw text frames up to and including the next terminal of a response this test started."""
    frames: list[str] = []
    async with asyncio.timeout(5):
        while True:
            frame = await peer.ws.recv()
            assert isinstance(frame, str)
            frames.append(frame)
            if frame.count("[") >= DEEP_JSON_LEVELS or '"resp_stray_' in frame:
                continue
            if json.loads(frame)["type"] in wire.TERMINAL_EVENTS:
                return frames


def events_of(frames: list[str]) -> list[dict[str, Any]]:
    return [json.loads(frame) for frame in frames]


def test_the_kinds_are_known() -> None:
    kinds = {"deep_json", "laneless_stray_delta", "laneless_stray_completed", "reorder_deltas", "lose_delta"}
    assert kinds <= FAULT_KINDS


async def test_deep_json_is_one_frame_nested_a_thousand_levels_then_the_response_goes_on(
    emu: Emulator, connect: Connect
) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text=TEXT, fault=Fault("deep_json", after_events=5)))
    await peer.create(input="x", stream_id="a")
    frames = await frames_to_terminal(peer)
    deep = frames.pop(5)
    assert deep.count("[") == DEEP_JSON_LEVELS and '"stream_id": "a"' in deep
    assert text_of(events_of(frames)) == TEXT
    assert [f.frame for f in emu.records.faults] == [deep]


async def test_laneless_stray_events_carry_no_stream_id_and_name_a_response_nobody_started(
    emu: Emulator, connect: Connect
) -> None:
    peer = await connect(emu)
    emu.queue_replies(
        Reply(text=TEXT, fault=Fault("laneless_stray_delta", after_events=5, text="stray ")),
        Reply(text=TEXT, fault=Fault("laneless_stray_completed", after_events=5)),
    )
    for _ in range(2):
        await peer.create(input="x", stream_id="a")
        events = events_of(await frames_to_terminal(peer))
        stray = events[5]
        assert "stream_id" not in stray and "sequence_number" not in stray
        assert all(e.get("stream_id") == "a" for e in events[:5] + events[6:])
        assert text_of(events[:5] + events[6:]) == TEXT
    assert stray["type"] == wire.COMPLETED and stray["response"]["id"].startswith("resp_stray_")
    assert [f.kind for f in emu.records.faults] == ["laneless_stray_delta", "laneless_stray_completed"]


async def test_reorder_deltas_swaps_every_two_deltas_each_with_its_own_number(connect: Connect) -> None:
    # Out of order on purpose: not through the fixture that checks every lane numbers its events in order.
    async with Emulator(**FAST) as emu:
        peer = await connect(emu)
        emu.queue_replies(Reply(text="a b c d e", fault=Fault("reorder_deltas", after_events=5)))
        await peer.create(input="x")
        events = events_of(await frames_to_terminal(peer))
    deltas = [e for e in events if e["type"] == wire.OUTPUT_TEXT_DELTA]
    # Delta 4 goes out in order; from 5 on every two swap; the odd last one goes before its item's end.
    assert [d["sequence_number"] for d in deltas] == [4, 6, 5, 8, 7]
    assert "".join(d["delta"] for d in sorted(deltas, key=lambda d: d["sequence_number"])) == "a b c d e"
    numbers = [e["sequence_number"] for e in events]
    assert sorted(numbers) == list(range(len(events)))


async def test_lose_delta_leaves_a_gap_where_one_delta_was(connect: Connect) -> None:
    async with Emulator(**FAST) as emu:
        peer = await connect(emu)
        emu.queue_replies(Reply(text="a b c d e", fault=Fault("lose_delta", after_events=6)))
        await peer.create(input="x")
        events = events_of(await frames_to_terminal(peer))
    numbers = [e["sequence_number"] for e in events]
    assert 6 not in numbers and numbers == sorted(numbers) and len(numbers) == numbers[-1]
    lost = [json.loads(f.frame) for f in emu.records.faults if f.frame]
    assert [(e["sequence_number"], e["delta"]) for e in lost] == [(6, "c ")]
    assert text_of(events) == "a b d e"
