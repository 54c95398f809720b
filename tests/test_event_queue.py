"""A request's event queue and its express handler: who handles an event, and when a wait times out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipecat_responses_ws.client.connection import EventQueue

DELTA = "response.output_text.delta"


def _delta(text: str) -> dict[str, Any]:
    return {"type": DELTA, "delta": text}


def _queue_with_express(handled: list[str]) -> EventQueue:
    async def express(event: dict[str, Any]) -> None:
        handled.append(event["delta"])

    queue = EventQueue()
    queue.express = express
    queue.express_types = frozenset({DELTA})
    return queue


async def _parked(queue: EventQueue, timeout: float | None = None) -> asyncio.Task[Any]:
    owner = asyncio.create_task(queue.get(timeout))
    await asyncio.sleep(0)  # the owner runs up to its wait
    return owner


async def test_express_runs_only_while_the_owner_waits_and_only_for_its_types() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    # Nobody waiting: queued, whatever the type.
    assert queue.deliver(_delta("early")) is None
    assert await queue.get(1.0) == _delta("early")

    owner = await _parked(queue)
    handling = queue.deliver(_delta("a"))
    assert handling is not None
    await handling
    assert handled == ["a"] and not owner.done()
    # Another type wakes the owner; from then on the owner is not parked, so text queues behind it.
    assert queue.deliver({"type": "response.completed"}) is None
    assert queue.deliver(_delta("b")) is None
    assert await owner == {"type": "response.completed"}
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
    async def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    queue = EventQueue()
    queue.express, queue.express_types = broken, frozenset({DELTA})
    owner = await _parked(queue)
    handling = queue.deliver(_delta("x"))
    assert handling is not None
    await handling  # the reader goes on
    with pytest.raises(RuntimeError, match="handler bug"):
        await owner


async def test_express_handling_counts_as_progress_for_the_owners_timeout() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    owner = await _parked(queue, timeout=0.2)
    for n in range(6):  # 0.3 s of deltas the owner never sees
        await asyncio.sleep(0.05)
        handling = queue.deliver(_delta(str(n)))
        assert handling is not None
        await handling
    assert not owner.done()
    with pytest.raises(TimeoutError):  # then silence: the timeout runs from the last delta
        await owner
    assert len(handled) == 6
