"""Waits woken by changes: a wait checks its predicate only when notified, and at the moments it names."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipecat_responses_ws.changes import Changes, until, within


async def test_a_wait_checks_its_predicate_only_when_notified() -> None:
    changes, checks, state = Changes(), [], {"done": False}

    def done() -> bool:
        checks.append(state["done"])
        return state["done"]

    waiting = asyncio.create_task(until(done, 5, "done", changes))
    for _ in range(5):  # the loop turns with nothing notified: no check
        await asyncio.sleep(0)
    assert checks == [False]
    changes.notify()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert checks == [False, False] and not waiting.done()
    state["done"] = True
    changes.notify()
    await asyncio.wait_for(waiting, 1)
    assert checks == [False, False, True]


async def test_a_wait_wakes_on_any_of_its_changes_and_leaves_them_when_over() -> None:
    first, second, state = Changes(), Changes(), {"done": False}
    waiting = asyncio.create_task(until(lambda: state["done"], 5, "done", first, second))
    await asyncio.sleep(0)
    state["done"] = True
    second.notify()
    await asyncio.wait_for(waiting, 1)
    assert not first._waits and not second._waits


async def test_a_wait_that_times_out_names_what_it_waited_for() -> None:
    changes = Changes()
    with pytest.raises(TimeoutError, match=r"^timed out after 0\.05s waiting for the answer$"):
        await until(lambda: False, 0.05, "the answer", changes)
    assert not changes._waits


async def test_a_moment_wakes_the_wait_once_it_is_reached() -> None:
    changes, checks = Changes(), []
    moment = time.monotonic() + 0.1

    def reached() -> bool:
        checks.append(None)
        return changes.reached(moment)

    await until(reached, 5, "the moment", changes)
    assert time.monotonic() >= moment
    assert len(checks) <= 3  # the first check, the alarm's, and one more if it rang a hair early


async def test_one_alarm_at_a_time_at_the_earliest_moment_asked_for() -> None:
    changes = Changes()
    now = time.monotonic()
    assert not changes.reached(now + 10) and not changes.reached(now + 20)
    assert changes._alarm_at == now + 10
    assert not changes.reached(now + 5)
    assert changes._alarm_at == now + 5
    assert changes.reached(now - 1)
    assert changes._alarm is not None
    changes._alarm.cancel()


async def test_within_says_whether_something_happened_in_time() -> None:
    changes, fired = Changes(), []
    assert not await within(lambda: fired, 0.02, changes)
    asyncio.get_running_loop().call_soon(lambda: (fired.append(True), changes.notify()))
    started = time.monotonic()
    assert await within(lambda: fired, 5, changes)
    assert time.monotonic() - started < 1  # over at once, not at the end of its bound
