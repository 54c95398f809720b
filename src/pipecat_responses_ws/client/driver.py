"""What both transports share: a response's event queue, and the session's decisions carried out.

A driver is the I/O side of one connection state of the session (a WebSocket, or one HTTP
request). It asks the session what each event means and does what it is told: a happening
goes to its response's queue (never waiting for a consumer), a line is logged, a tool result
is released. Nothing here decides anything, and nothing here can hold up an interruption.

One exception saves a task switch on the hot path: a response's owner may install an express
handler for text deltas. While the owner is parked waiting on an empty queue, the reader runs
that handler itself instead of waking the owner to do the same work. An interruption cancels
the owner, which ends the parking, so no express handler runs for a turn being abandoned.
Here the handler gets one delta at a time; a transport that can see what has already arrived
behind a delta may join text first (``Driver._express``, see :mod:`.connection`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any, TypeGuard

from ..log import logger
from ..protocol import events as ev
from ..protocol.actions import Action, Deliver, Log, ReleaseToolResults, ReportError, Retire, SendEvent, Touch
from ..protocol.connection import ConnectionState, ConnectionStats
from ..protocol.errors import ResponsesWSError
from ..protocol.response import ENDINGS, Happening, Owner, Response
from ..protocol.session import ClientSession
from .pacing import TextPacer

Express = Callable[[ev.TextDelta], Awaitable[None]]


class EventQueue:
    """A response's happenings, with a waiter that costs nothing while some are already queued.

    It also keeps the time of the response's last sign of life (a happening, an event that
    changed nothing, a delta the express handler took), so the owner's timeout runs from there:
    ``first_timeout`` until the response showed anything, ``stall_timeout`` after.

    The timeout is one timer per response, not one per wait: signs of life only push the
    deadline back, so a timer armed for an earlier deadline is never late. When it fires it
    looks: past the deadline with the owner waiting, the wait fails; otherwise it re-arms for
    the deadline as it stands, or lapses while nobody waits. A timer per wait (``asyncio.timeout``)
    would leave two cancelled timers per wait in the event loop's heap for the rest of the timeout.
    """

    __slots__ = (
        "_first_timeout",
        "_items",
        "_parked_at",
        "_progress_at",
        "_stall_timeout",
        "_timer",
        "_waiter",
        "coalesce",
        "express",
        "pacer",
    )

    def __init__(self) -> None:
        self._items: deque[Happening | _Failure] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._progress_at = 0.0  # monotonic time of the last sign of life; 0 = none yet
        self._parked_at = 0.0  # monotonic time the owner's current (or last) wait began
        self._first_timeout: float | None = None
        self._stall_timeout: float | None = None
        self._timer: asyncio.TimerHandle | None = None  # armed for the deadline or earlier
        # Run by the reader for text deltas while the owner is parked in ``get``; it must not
        # block (it pushes a frame), and what it raises is re-raised in the owner.
        self.express: Express | None = None
        self.coalesce = False  # the express handler may get several deltas' text in one call
        # Holds text for the express handler back into fewer frames (``pacing``); None: every delta at once.
        self.pacer: TextPacer | None = None

    @property
    def progressed(self) -> bool:
        """Whether the response showed any sign of life (its first event arrived)."""
        return self._progress_at > 0.0

    def touch(self) -> None:
        """The response showed a sign of life (a happening, or an event the owner need not hear about)."""
        if self._progress_at:
            # Later signs of life only push the deadline back, which the timer sees when it fires.
            self._progress_at = time.monotonic()
            return
        self._progress_at = time.monotonic()
        if self._waiter is not None:
            # The first sign of life switches a parked owner from the first-event timeout to the
            # (usually shorter) stall timeout: the one time the deadline can come forward.
            self._arm()

    def put(self, item: Happening | _Failure) -> None:
        pacer = self.pacer
        if pacer is not None and (waiting := pacer.release()) is not None:
            self._items.append(waiting)  # text that waited goes before whatever comes after it
        self._items.append(item)
        self.touch()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def parked(self) -> bool:
        """Whether the owner waits in ``get`` on an empty queue (cancelling it ends the wait at once)."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._items

    def deliver(self, happening: Happening) -> TypeGuard[ev.TextDelta]:
        """Queue ``happening`` and return False; or return True when it is text for the express
        handler, the owner being parked: then the caller runs the handler on it and hands what it
        raises to the owner (``fail``)."""
        if type(happening) is ev.TextDelta:
            if not self._progress_at:
                self.touch()  # text as the first sign of life: ``deliver_text`` leaves that to here
            return self.deliver_text(happening)
        self.put(happening)
        return False

    def deliver_text(self, text: ev.TextDelta) -> bool:
        """``deliver`` for a text delta: the reader's, once a word."""
        waiter = self._waiter
        # ``parked`` and ``touch``, inline. A waiter not yet done has nothing queued before it
        # (``put`` ends the wait), so the queue is empty. A response's first words come through
        # ``deliver`` (the reader's shorter path takes only words of a response already speaking),
        # which takes them as its first sign of life if they are: so the response has shown one,
        # and no timer moves here.
        if waiter is not None and self.express is not None and not waiter.done():
            self._progress_at = monotonic()
            return True
        self.put(text)
        return False

    def fail(self, error: BaseException) -> None:
        """Hand ``error`` to the owner: its next ``get`` raises it."""
        self.put(_Failure(error))

    async def get(self, first_timeout: float | None, stall_timeout: float | None = None) -> Happening:
        """The next happening; ``TimeoutError`` once the response has shown no sign of life for
        ``first_timeout`` seconds (nothing yet) or ``stall_timeout`` seconds (after something)."""
        if not self._items:
            loop = asyncio.get_running_loop()
            self._parked_at = time.monotonic()
            self._first_timeout, self._stall_timeout = first_timeout, stall_timeout
            while not self._items:
                self._waiter = loop.create_future()
                self._arm()
                try:
                    await self._waiter
                except TimeoutError:
                    if not self._items:  # something put after the deadline passed is still taken
                        raise
                finally:
                    self._waiter = None
        item = self._items.popleft()
        if isinstance(item, _Failure):
            self._disarm()
            raise item.error
        if type(item) in ENDINGS:
            self._disarm()  # the response is over: no wait of its owner is left to time
        return item

    def _remaining(self) -> float | None:
        """Seconds left until the current wait's deadline (None: no deadline)."""
        if self._progress_at:
            stall = self._stall_timeout
            return None if stall is None else max(self._parked_at, self._progress_at) + stall - time.monotonic()
        first = self._first_timeout
        return None if first is None else self._parked_at + first - time.monotonic()

    def _arm(self) -> None:
        remaining = self._remaining()
        if remaining is None:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + remaining
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return  # it fires first, and re-arms from there
            timer.cancel()
        self._timer = loop.call_at(when, self._on_deadline)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # nobody waits: the next wait arms again
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            waiter.set_exception(TimeoutError())
        else:
            self._arm()


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


def _queue_of(response: Response) -> EventQueue:
    queue = response.owner
    assert isinstance(queue, EventQueue), "every response opened here has a queue"
    return queue


class Driver:
    """Carries out the session's decisions for the responses of one connection state.

    What differs by transport is how a ``response.cancel`` goes out (``_send_in_background``) and
    what retiring the state means (``_retire``): replacing a WebSocket, or closing an HTTP stream.
    """

    def __init__(
        self,
        session: ClientSession,
        state: ConnectionState[Response],
        *,
        on_error: Callable[[ResponsesWSError], None] | None = None,
        on_tool_results: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.session = session
        self.state = state
        self.name = state.name
        self._on_error = on_error
        self._on_tool_results = on_tool_results
        self.quiet = asyncio.Event()  # nothing in flight: safe to close
        self.quiet.set()
        # Who waits for a response here to end, each with the in-flight count it saw.
        self._slot_waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def stats(self) -> ConnectionStats:
        return self.state.stats

    def _attach(self, response: Response | None) -> Response | None:
        if response is not None:
            response.owner = EventQueue()
            self.quiet.clear()
        return response

    async def send_create(self, response: Response, fields: dict[str, Any]) -> None:
        """Send ``response``'s create; a failure reaches the owner's queue as the session's verdict."""
        raise NotImplementedError

    async def next_happening(
        self, response: Response, first_timeout: float | None, stall_timeout: float | None
    ) -> Happening:
        """What ``response`` did next; after too long without a sign of life, the session's verdict
        (``first_event`` until its first event arrived, ``stall`` after)."""
        queue = _queue_of(response)
        try:
            return await queue.get(first_timeout, stall_timeout)
        except TimeoutError:
            phase, timeout = ("stall", stall_timeout) if queue.progressed else ("first_event", first_timeout)
            self._apply(self.session.timed_out(response, phase, timeout or 0.0, time.monotonic()))
            return await queue.get(None)

    async def slot_freed(self) -> None:
        """Returns once a response here has ended (or the connection closed): a request that found
        every slot taken may try again, as the server itself would queue it."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.state.router.in_flight, waiter)
        self._slot_waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._slot_waiters:
                self._slot_waiters.remove(entry)

    def set_express(self, response: Response, express: Express | None, *, coalesce: bool = False) -> None:
        """Let the reader run ``express`` on ``response``'s text while its owner waits; with
        ``coalesce``, on the text of several deltas at once where the transport can tell they had
        already arrived (over WebSocket; over HTTP every delta goes alone)."""
        queue = _queue_of(response)
        pacer = queue.pacer
        queue.express = express if express is None or pacer is None else pacer.pace(express)
        queue.coalesce = coalesce

    def pace_text(self, response: Response, interval: float) -> None:
        """Let ``response``'s express handler push its text at most every ``interval`` seconds, but
        at once at its first words and where a sentence or clause ends (:mod:`.pacing`)."""
        queue = _queue_of(response)
        pacer = queue.pacer = TextPacer(interval, queue.put)
        if queue.express is not None:
            queue.express = pacer.pace(queue.express)

    def abandon(self, response: Response) -> None:
        """Barge-in: the session decides, nothing here awaits."""
        pacer = _queue_of(response).pacer
        if pacer is not None:
            pacer.drop()  # what waits for its pace belongs to the answer no one will hear
        self._apply(self.session.abandon(response, time.monotonic()))

    async def _carry_out(self, actions: list[Action]) -> None:
        """``_apply`` and the express handling it asks for, and the actions of what that read past its text."""
        while True:
            express = self._apply(actions)
            if express is None:
                return
            after = await express
            if after is None:
                return
            actions = after

    def _apply(self, actions: list[Action]) -> Awaitable[list[Action] | None] | None:
        """Carry out the session's decisions; returns the express handling to await, if any, which
        returns the actions of whatever it read past its text (``_express``)."""
        text: tuple[Owner, Response, ev.TextDelta] | None = None
        queued = False
        for action in actions:
            if type(action) is Deliver:
                response = action.response
                queue = response.owner
                if text is not None or queued:
                    # More than one happening (events put back in order): pushing the text while
                    # what comes after it is already queued could overtake it, so all of it queues.
                    if text is not None:
                        text[0].put(text[2])
                        text = None
                    queue.put(action.happening)
                    queued = True
                elif queue.deliver(action.happening):
                    text = (queue, response, action.happening)
                else:
                    queued = True
            elif type(action) is Touch:
                action.response.owner.touch()
            elif isinstance(action, Log):
                logger.log(action.level, action.message)
            elif isinstance(action, SendEvent):
                self._send_in_background(action.payload)
            elif isinstance(action, Retire):
                self._retire(action.reason, action.soon)
            elif isinstance(action, ReportError):
                if self._on_error is not None:
                    self._on_error(action.error)
            elif isinstance(action, ReleaseToolResults):
                if self._on_tool_results is not None:
                    self._on_tool_results(action.results)
        if not self.state.router.in_flight:  # is_quiet(), without two calls per event
            self.quiet.set()
        if self._slot_waiters:
            self._wake_slot_waiters()
        return self._express(*text) if text is not None else None

    def _wake_slot_waiters(self) -> None:
        in_flight, closed = self.state.router.in_flight, self.state.closed
        for entry in list(self._slot_waiters):
            seen, waiter = entry
            if in_flight < seen or closed:
                self._slot_waiters.remove(entry)
                if not waiter.done():
                    waiter.set_result(None)

    async def _express(self, queue: Owner, response: Response, delta: ev.TextDelta) -> list[Action] | None:
        """Push ``delta`` through the parked owner's express handler; what it raises goes to the
        owner, so this never raises. A transport that reads ahead returns the actions of what it
        read past the text; here nothing is read, so None."""
        await self._push(queue, delta)
        return None

    @staticmethod
    async def _push(queue: Owner, text: ev.TextDelta) -> bool:
        """Run the parked owner's express handler on ``text``; what it raises goes to the owner
        (then False), so the reader goes on."""
        express = queue.express
        assert express is not None, "deliver hands text to the reader only for an express handler"
        try:
            await express(text)
        except Exception as e:  # the owner fails its turn with it; the reader goes on
            queue.fail(e)
            return False
        return True

    def _send_in_background(self, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    def _retire(self, reason: str, soon: bool) -> None:
        raise NotImplementedError
