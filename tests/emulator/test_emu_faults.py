"""Each injected fault, and how faults and scripted replies are consumed."""

from __future__ import annotations

import json
import random
import time

import pytest
from emu_helpers import Connect, MakeEmulator, terminal_of, text_of
from websockets.exceptions import ConnectionClosed

from pipecat_responses_ws.emulator import Emulator, Fault, Reply, builders
from pipecat_responses_ws.emulator.model import PlannedText
from pipecat_responses_ws.emulator.settings import Ids
from pipecat_responses_ws.emulator.stream import Pacing, ResponseStream
from pipecat_responses_ws.protocol import wire


async def test_delay_created(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("delay_created", seconds=0.3))
    started = time.monotonic()
    await peer.create(input="x")
    first = await peer.recv()
    assert first["type"] == wire.CREATED and time.monotonic() - started >= 0.29
    await peer.response()


async def test_stall_then_continue(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("stall", after_events=5, seconds=0.5))
    await peer.create(input="x")
    events = await peer.until(lambda e: e["type"] == wire.OUTPUT_TEXT_DELTA)
    assert len(events) == 5
    assert await peer.quiet(0.2) == []
    rest = await peer.response()
    assert terminal_of(rest)["response"]["status"] == "completed"
    assert text_of(events + rest).startswith("You said: x.")


async def test_stall_forever(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("stall", after_events=2, seconds=float("inf")))
    await peer.create(input="x")
    assert [e["type"] for e in await peer.quiet(0.3)] == [wire.CREATED, wire.IN_PROGRESS]


@pytest.mark.parametrize("close_code", [1011, 1006])
async def test_drop_closes_the_connection_mid_response(emu: Emulator, connect: Connect, close_code: int) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("drop", after_events=4, close_code=close_code))
    await peer.create(input="x", stream_id="a")
    received = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(await peer.recv())
    assert len(received) == 4
    assert closed.value.rcvd is None if close_code == 1006 else closed.value.rcvd.code == 1011
    await emu.records.wait_for(lambda: emu.open_connections == 0)
    assert emu.records.responses[0].status == "in_progress" and emu.records.responses[0].finished_at is None


async def test_fail(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("fail", after_events=6, code="rate_limit_exceeded"))
    await peer.create(input="x", stream_id="a")
    events = await peer.response()
    assert len(events) == 7
    terminal = terminal_of(events)
    assert terminal["type"] == wire.FAILED and terminal["stream_id"] == "a"
    assert terminal["response"]["error"]["code"] == "rate_limit_exceeded"
    assert terminal["response"]["usage"]["output_tokens"] == 2
    assert emu.records.responses[0].status == "failed"


async def test_fail_defaults_and_clamps(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("fail"))
    await peer.create(input="x")
    events = await peer.response()
    assert [e["type"] for e in events] == [wire.CREATED, wire.IN_PROGRESS, wire.FAILED]
    assert events[-1]["response"]["error"]["code"] == "server_error"


async def test_incomplete(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("incomplete", after_events=5, code="content_filter"))
    await peer.create(input="x")
    terminal = terminal_of(await peer.response())
    assert terminal["type"] == wire.INCOMPLETE
    assert terminal["response"]["incomplete_details"] == {"reason": "content_filter"}


async def test_stray_error_is_connection_level_and_response_continues(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("stray_error", after_events=3, code="server_error"))
    await peer.create(input="x", stream_id="a")
    events = await peer.response()
    stray = [e for e in events if e["type"] == wire.ERROR]
    assert len(stray) == 1 and "stream_id" not in stray[0] and stray[0]["error"]["code"] == "server_error"
    assert events.index(stray[0]) == 3
    assert terminal_of(events)["response"]["status"] == "completed"


async def test_malformed_frame_then_the_response_continues(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("malformed", after_events=4))
    await peer.create(input="x")
    frames = []
    while not frames or not frames[-1].startswith('{"type": "response.completed"'):
        frames.append(await peer.ws.recv())
    bad = [f for f in frames if not f.endswith("}")]
    assert bad == ['{"type": "response.output_text.delta", '] and frames.index(bad[0]) == 4
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad[0])


async def test_delay_terminal(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("delay_terminal", seconds=0.3))
    await peer.create(input="x")
    events = await peer.until(lambda e: e["type"] == wire.OUTPUT_ITEM_DONE)
    started = time.monotonic()
    terminal = await peer.recv()
    assert terminal["type"] == wire.COMPLETED and time.monotonic() - started >= 0.28
    assert events


async def test_fault_count_and_fifo_and_reply_fault_wins(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.add_fault(Fault("fail", count=2))
    emu.add_fault(Fault("incomplete"))
    emu.queue_replies(Reply(text="own fault", fault=Fault("stray_error")))
    statuses = []
    await peer.create(input="warm", generate=False)
    statuses.append(terminal_of(await peer.response())["response"]["status"])
    for _ in range(5):
        await peer.create(input="x")
        statuses.append(terminal_of(await peer.response())["response"]["status"])
    assert statuses == ["completed", "completed", "failed", "failed", "incomplete", "completed"]
    assert sum(e.event["type"] == wire.ERROR for e in emu.records.sent()) == 1


async def test_reply_pacing_overrides(emu: Emulator, connect: Connect) -> None:
    peer = await connect(emu)
    emu.queue_replies(Reply(text="a b c d e", ttft=0.2, tokens_per_second=20.0))
    started = time.monotonic()
    await peer.create(input="x")
    await peer.response()
    # ttft 0.2 s, then four intervals of 50 ms.
    assert 0.38 <= time.monotonic() - started < 1.5


def test_jitter_is_seeded_and_bounded() -> None:
    def delays(seed: str) -> list[float]:
        writer = builders.ResponseEventWriter("resp_1", "m")
        pacing = Pacing(0.1, 50.0, jitter=0.5)
        plan = [PlannedText("a b c d e f g h")]
        stream = ResponseStream(writer, plan, pacing=pacing, rng=random.Random(seed), new_id=Ids())
        found = []
        while (delay := stream.peek_delay()) is not None:
            found.append(delay)
            stream.next()
        return [d for d in found if d]

    first = delays("1:resp_000001")
    assert first == delays("1:resp_000001") != delays("2:resp_000001")
    assert first[0] == 0.1 and len(set(first[1:])) == 7 and all(0.01 <= d <= 0.03 for d in first[1:])


async def test_jitter_paces_a_real_stream(make_emulator: MakeEmulator, connect: Connect) -> None:
    emu = await make_emulator(jitter=0.5, seed=3, tokens_per_second=50.0)
    peer = await connect(emu)
    emu.queue_replies(Reply(text="a b c d e f g h"))
    await peer.create(input="x")
    await peer.response()
    times = [s.time for s in emu.records.sent() if s.event["type"] == wire.OUTPUT_TEXT_DELTA]
    # Seven jittered intervals of 20 ms ± 50 %, on an absolute schedule.
    assert 0.07 - 0.01 <= times[-1] - times[0] <= 0.21 + 0.3
