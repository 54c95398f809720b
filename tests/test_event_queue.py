"""A response's queue and its express handler: who handles a happening, and when a wait times out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pipecat_responses_ws.client.driver import EventQueue
from pipecat_responses_ws.protocol.events import TextDelta
from pipecat_responses_ws.protocol.response import Finished


def _delta(text: str) -> TextDelta:
    return TextDelta("lane-0", None, "msg_1", text)


FINISHED = Finished("resp_1", None, ())


def _queue_with_express(handled: list[str]) -> EventQueue:
    async def express(delta: TextDelta) -> None:
        handled.append(delta.delta)

    queue = EventQueue()
    queue.express = express
    return queue


async def _parked(queue: EventQueue, first: float | None = None, stall: float | None = None) -> asyncio.Task[Any]:
    owner = asyncio.create_task(queue.get(first, stall))
    await asyncio.sleep(0)  # the owner runs up to its wait
    return owner


async def test_express_runs_only_while_the_owner_waits_and_only_for_text() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    # Nobody waiting: queued.
    assert queue.deliver(_delta("early")) is None
    assert await queue.get(1.0) == _delta("early")

    owner = await _parked(queue)
    handling = queue.deliver(_delta("a"))
    assert handling is not None
    await handling
    assert handled == ["a"] and not owner.done()
    # Anything else wakes the owner; from then on the owner is not parked, so text queues behind it.
    assert queue.deliver(FINISHED) is None
    assert queue.deliver(_delta("b")) is None
    assert await owner == FINISHED
    assert await queue.get(1.0) == _delta("b")
    assert handled == ["a"]


async def test_a_cancelled_owner_is_not_parked() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    owner = await _parked(queue)
    owner.cancel()  # what an interruption does to the turn
    assert queue.deliver(_delta("late")) is None
    with pytest.raises(asyncio.CancelledError):
        await owner
    assert handled == []


async def test_what_the_express_handler_raises_is_raised_in_the_owner() -> None:
    async def broken(delta: TextDelta) -> None:
        raise RuntimeError("handler bug")

    queue = EventQueue()
    queue.express = broken
    owner = await _parked(queue)
    handling = queue.deliver(_delta("x"))
    assert handling is not None
    await handling  # the reader goes on
    with pytest.raises(RuntimeError, match="handler bug"):
        await owner


async def test_express_handling_counts_as_progress_for_the_owners_timeout() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    owner = await _parked(queue, first=0.2, stall=0.2)
    for n in range(6):  # 0.3 s of deltas the owner never sees
        await asyncio.sleep(0.05)
        handling = queue.deliver(_delta(str(n)))
        assert handling is not None
        await handling
    assert not owner.done()
    with pytest.raises(TimeoutError):  # then silence: the timeout runs from the last delta
        await owner
    assert len(handled) == 6


async def test_the_first_sign_of_life_switches_a_parked_owner_to_the_stall_timeout() -> None:
    queue = EventQueue()
    started = time.monotonic()
    owner = await _parked(queue, first=5.0, stall=0.2)
    assert not queue.progressed
    queue.touch()  # response.created: nothing for the owner, but the response is alive
    with pytest.raises(TimeoutError):
        await owner
    assert queue.progressed and time.monotonic() - started < 1.0
