"""Waits woken by the changes that can end them, not by a clock.

Whatever keeps state that somebody may wait on owns a :class:`Changes` and calls
:meth:`Changes.notify` whenever that state changes: the harness's probes on every frame, the
emulator's records on every record, the phone line on every chunk it plays, the client whenever
its pool's connections change. :func:`until` checks a predicate, then checks it again only once
one of the :class:`Changes` it was given has been notified: a wait costs nothing between
changes and ends on the change that ends it.

``notify`` only sets the event of each wait in progress. The waits run later, in their own
tasks, so whoever notifies (a probe stamping frames with the time they passed) does none of
their work.

A predicate that time alone makes true ("quiet for half a second") names its moment with
:meth:`Changes.reached`, which wakes the waits at that moment rather than on a polling clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["Changes", "until", "within"]


class Changes:
    """What waits wake on: ``notify`` it whenever anything it stands for changes."""

    __slots__ = ("_alarm", "_alarm_at", "_waits")

    def __init__(self) -> None:
        self._waits: list[asyncio.Event] = []  # one per wait in progress
        # The one timer that wakes the waits at the earliest moment a predicate asked for.
        self._alarm: asyncio.TimerHandle | None = None
        self._alarm_at = 0.0

    def notify(self) -> None:
        """Wake the waits on this: each checks its predicate again, in its own task."""
        for woken in self._waits:
            woken.set()

    def reached(self, moment: float) -> bool:
        """Whether ``time.monotonic()`` has reached ``moment``; if not, the waits on this wake then.

        One timer at a time, at the earliest moment asked for: a later one is asked for again
        when that timer has woken the predicate that wants it.
        """
        now = time.monotonic()
        if now >= moment:
            return True
        if self._alarm is None or moment < self._alarm_at:
            if self._alarm is not None:
                self._alarm.cancel()
            self._alarm = asyncio.get_running_loop().call_later(moment - now, self._ring)
            self._alarm_at = moment
        return False

    def _ring(self) -> None:
        self._alarm = None
        self.notify()

    def _watch(self, woken: asyncio.Event) -> None:
        self._waits.append(woken)

    def _unwatch(self, woken: asyncio.Event) -> None:
        self._waits.remove(woken)


async def until(predicate: Callable[[], object], timeout: float, what: str, *changes: Changes) -> None:
    """Return once ``predicate()`` holds: checked now, then each time one of ``changes`` is notified.

    Raises ``TimeoutError`` naming ``what`` when ``timeout`` seconds pass first.
    """
    if predicate():
        return
    woken = asyncio.Event()
    for each in changes:
        each._watch(woken)
    try:
        async with asyncio.timeout(timeout):
            while True:
                await woken.wait()
                woken.clear()
                if predicate():
                    return
    except TimeoutError:
        if predicate():  # the change that made it true came with the deadline
            return
        raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}") from None
    finally:
        for each in changes:
            each._unwatch(woken)


async def within(predicate: Callable[[], object], seconds: float, *changes: Changes) -> bool:
    """Whether ``predicate()`` comes to hold within ``seconds``, woken as :func:`until` is.

    For what must not happen (a second firing): no change shows that it never will, so only a
    bounded wait can say it did not, and this one ends at once if it does.
    """
    try:
        await until(predicate, seconds, "", *changes)
    except TimeoutError:
        return False
    return True
