"""A response's queue and its express handler: who handles a happening, and when a wait times out.

The last test runs the reader on a real emulator over loopback."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from pipecat_responses_ws.client.client import ClientOptions, ResponsesClient
from pipecat_responses_ws.client.driver import EventQueue
from pipecat_responses_ws.client.pacing import TextPacer
from pipecat_responses_ws.emulator import Emulator, Reply
from pipecat_responses_ws.protocol.events import TextDelta
from pipecat_responses_ws.protocol.response import ENDINGS, Finished


def _delta(text: str) -> TextDelta:
    return TextDelta(stream_id="lane-0", item_id="msg_1", delta=text)


FINISHED = Finished("resp_1", None, ())
USER = [{"role": "user", "content": "hi"}]


def _queue_with_express(handled: list[str]) -> EventQueue:
    async def express(delta: TextDelta) -> None:
        handled.append(delta.delta)

    queue = EventQueue()
    queue.express = express
    return queue


async def _express(queue: EventQueue, delta: TextDelta) -> None:
    """What the reader does once ``deliver`` says the text is the express handler's."""
    assert queue.express is not None
    await queue.express(delta)


async def _parked(queue: EventQueue, first: float | None = None, stall: float | None = None) -> asyncio.Task[Any]:
    owner = asyncio.create_task(queue.get(first, stall))
    await asyncio.sleep(0)  # the owner runs up to its wait
    return owner


async def test_express_runs_only_while_the_owner_waits_and_only_for_text() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    # Nobody waiting: queued.
    assert queue.deliver(_delta("early")) is False
    assert await queue.get(1.0) == _delta("early")

    owner = await _parked(queue)
    assert queue.deliver(_delta("a")) is True
    await _express(queue, _delta("a"))
    assert handled == ["a"] and not owner.done()
    # Anything else wakes the owner; from then on the owner is not parked, so text queues behind it.
    assert queue.deliver(FINISHED) is False
    assert queue.deliver(_delta("b")) is False
    assert await owner == FINISHED
    assert await queue.get(1.0) == _delta("b")
    assert handled == ["a"]


async def test_a_cancelled_owner_is_not_parked() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    owner = await _parked(queue)
    owner.cancel()  # what an interruption does to the turn
    assert queue.deliver(_delta("late")) is False
    with pytest.raises(asyncio.CancelledError):
        await owner
    assert handled == []


async def test_a_failure_handed_to_the_queue_is_raised_in_the_parked_owner() -> None:
    queue = EventQueue()
    owner = await _parked(queue)
    queue.fail(RuntimeError("handler bug"))  # what the reader does with an express handler's error
    with pytest.raises(RuntimeError, match="handler bug"):
        await owner


async def test_express_handling_counts_as_progress_for_the_owners_timeout() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    owner = await _parked(queue, first=0.2, stall=0.2)
    for n in range(6):  # 0.3 s of deltas the owner never sees
        await asyncio.sleep(0.05)  # the deltas' pace, not a wait: the time between them is what is tested
        assert queue.deliver(_delta(str(n))) is True
        await _express(queue, _delta(str(n)))
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


async def test_a_response_arms_one_timer_however_often_its_owner_waits() -> None:
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counting_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        armed.append(when)
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting_call_at  # type: ignore[method-assign]
    try:
        queue = EventQueue()
        for n in range(20):  # a happening at a time, each after the owner parked for it
            owner = await _parked(queue, first=5.0, stall=2.0)
            queue.put(_delta(str(n)))
            assert (await owner).delta == str(n)  # type: ignore[union-attr]
        queue.put(FINISHED)
        assert await queue.get(5.0, 2.0) is FINISHED
    finally:
        del loop.call_at  # type: ignore[method-assign]
    # The first wait's first-event deadline, then the stall deadline the first sign of life
    # brought forward; every later wait is covered by a timer already armed.
    assert len(armed) == 2 and armed[1] < armed[0]
    assert queue._timer is None  # the ending disarmed it


async def test_with_no_first_event_timeout_the_first_sign_of_life_still_starts_the_stall_timeout() -> None:
    queue = EventQueue()
    owner = await _parked(queue, first=None, stall=0.1)
    await asyncio.sleep(0.2)
    assert not owner.done()  # no deadline before the response shows anything
    queue.touch()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(owner, 1.0)


async def test_what_the_express_handler_raises_ends_its_turn_and_the_reader_goes_on() -> None:
    async with Emulator(ttft=0.01, tokens_per_second=200) as emu:
        emu.queue_replies(Reply(text="one two three"), Reply(text="four five"))
        client = ResponsesClient(ClientOptions(url=emu.ws_url, headers={"Authorization": "Bearer k"}))
        await client.start()
        try:

            async def broken(delta: TextDelta) -> None:
                raise RuntimeError("handler bug")

            conn, response = await client.open_response(USER)
            conn.set_express(response, broken)
            await conn.send_create(response, {"model": "m"})
            with pytest.raises(RuntimeError, match="handler bug"):
                while not isinstance(await conn.next_happening(response, 5.0, 5.0), ENDINGS):
                    pass
            conn.abandon(response)
            # The same reader streams the next response.
            conn, response = await client.open_response(USER)
            await conn.send_create(response, {"model": "m"})
            texts = []
            while not isinstance(happening := await conn.next_happening(response, 5.0, 5.0), ENDINGS):
                if isinstance(happening, TextDelta):
                    texts.append(happening.delta)
            assert "".join(texts) == "four five"
        finally:
            await client.close()


# -- pacing ------------------------------------------------------------------------------------


def _numbered(text: str, n: int) -> TextDelta:
    return TextDelta(stream_id="lane-0", sequence_number=n, item_id="msg_1", delta=text)


async def test_paced_text_goes_at_once_first_and_at_a_clause_end_and_otherwise_waits_its_turn() -> None:
    due: list[TextDelta] = []
    pacer = TextPacer(0.04, due.append)
    assert pacer.take(_numbered("Hello ", 1), now=10.0) == _numbered("Hello ", 1)  # a response's first words
    assert pacer.take(_numbered("there ", 2), now=10.01) is None
    assert pacer.take(_numbered("my ", 3), now=10.02) is None
    # A clause's end takes what waited along, joined and numbered as its last.
    assert pacer.take(_numbered("friend, how are you? ", 4), now=10.03) == _numbered(
        "there my friend, how are you? ", 4
    )
    assert pacer.take(_numbered("I ", 5), now=10.05) is None  # 20 ms after the last push
    assert pacer.take(_numbered("am ", 6), now=10.071) == _numbered("I am ", 6)  # the interval is up
    assert pacer.release() is None and due == []


async def test_text_left_waiting_reaches_the_owner_when_its_interval_is_up() -> None:
    got: asyncio.Future[TextDelta] = asyncio.get_running_loop().create_future()
    pacer = TextPacer(0.04, got.set_result)
    now = time.monotonic()
    assert pacer.take(_numbered("One ", 1), now) is not None
    assert pacer.take(_numbered("two ", 2), now) is None
    assert pacer.take(_numbered("three ", 3), now) is None
    assert await asyncio.wait_for(got, 5.0) == _numbered("two three ", 3)  # nothing else came: its timer
    assert pacer.release() is None


async def test_anything_else_the_response_does_takes_the_waiting_text_along_first() -> None:
    handled: list[str] = []
    queue = _queue_with_express(handled)
    pacer = queue.pacer = TextPacer(10.0, queue.put)  # an interval that never runs out here
    assert queue.express is not None
    queue.express = pacer.pace(queue.express)
    owner = await _parked(queue)
    queue.touch()  # response.created
    for words in ("First ", "words ", "wait "):
        assert queue.deliver(_delta(words)) is True
        await _express(queue, _delta(words))
    assert handled == ["First "]  # a response's first words at once, the rest waiting
    assert queue.deliver(FINISHED) is False
    assert await owner == TextDelta(stream_id="lane-0", item_id="msg_1", delta="words wait ")
    assert await queue.get(1.0) == FINISHED


async def test_text_waiting_for_its_pace_is_dropped_with_its_answer_at_a_barge_in() -> None:
    due: list[TextDelta] = []
    pacer = TextPacer(0.01, due.append)
    now = time.monotonic()
    assert pacer.take(_numbered("One ", 1), now) is not None
    assert pacer.take(_numbered("two ", 2), now) is None
    pacer.drop()
    await asyncio.sleep(0.05)  # past the interval: its timer would have fired
    assert due == [] and pacer.release() is None
