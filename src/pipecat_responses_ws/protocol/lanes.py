"""Lanes: which response does an incoming event belong to, and which lane may the next one use?

Only lifecycle events carry a response id; every event of a named lane carries its
``stream_id``, and a lane is FIFO. So a response is identified by its lane and its place in the
lane's queue, and an abandoned response is nothing more than a state checked inline: its events
are dropped as they arrive and its terminal event frees the lane. No drain, no waiting.

The router holds whatever it is given that has a lane, a place in the order sent and, once
known, a response id (:class:`Queued`); it reads them and never changes them. What a response's
lifecycle becomes is the session's to say.

On the default lane (for gateways without ``stream_id``) every response shares one FIFO; the
next request is sent at once and queues on the server behind the abandoned one, whose events are
dropped as they arrive.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from . import events as ev
from . import wire

# Errors that answer a create without a response being created: the request is over.
REQUEST_SCOPED_ERRORS = frozenset({wire.PREVIOUS_RESPONSE_NOT_FOUND, wire.STREAM_LIMIT_REACHED, wire.INVALID_STREAM_ID})


class Queued(Protocol):
    """What the router reads of a response it holds."""

    @property
    def lane(self) -> str | None: ...

    @property
    def serial(self) -> int: ...  # its place in the order responses were sent

    @property
    def response_id(self) -> str | None: ...  # None until the server created it

    @property
    def abandoned_at(self) -> float | None: ...  # when its owner let go of it, if it did


R = TypeVar("R", bound=Queued)


@dataclass
class LaneRouter(Generic[R]):
    """Routes events to responses and hands out lanes. Pure state; the socket lives elsewhere."""

    named: bool = True
    prefix: str = "lane-"
    pool_size: int = 4
    max_named_lanes: int = wire.MAX_NAMED_LANES
    max_in_flight: int = wire.MAX_IN_FLIGHT_RESPONSES
    # Each lane's responses in the order they were sent: the first is the one its events belong to.
    queues: dict[str | None, deque[R]] = field(default_factory=dict)
    _retired: set[str | None] = field(default_factory=set)
    # Per lane, the response at its head whose words go straight to its owner: the session puts it
    # here (``ClientSession._text``) and takes it away when it stops being pending; it leaves
    # with its lane (``release``, ``go_lane_free``).
    speaking: dict[str | None, R] = field(default_factory=dict)
    # Responses holding a lane, kept rather than summed: the connection asks after every event.
    in_flight: int = field(default=0, init=False)

    # -- sending --------------------------------------------------------------------------

    def open(
        self,
        make: Callable[[str | None], R],
        staleness: Callable[[str | None], int] | None = None,
        avoid: str | None = None,
    ) -> R | None:
        """A response made by ``make`` on a free lane, or None when none can start at once.

        ``avoid`` is the lane holding the parent we continue from: forking onto another lane
        keeps that parent cached even if this response is abandoned, so the turn after a
        barge-in can continue from it too. Among the other free lanes (and a new one while the
        pool is below its size) the one whose cached response is oldest is used, so recent
        responses stay cached as fork points. Past the pool size a lane is added only while
        every lane is busy, and never past the server's lane or in-flight limits.
        """
        if self.in_flight >= self.max_in_flight:
            return None
        if not self.named:
            return self._enqueue(make(None))
        rank = staleness or (lambda _lane: 0)
        free = [lane for lane, queue in self.queues.items() if not queue and lane not in self._retired]
        can_grow = len(self.queues) < self.max_named_lanes
        candidates = [lane for lane in free if lane != avoid]
        if can_grow and (len(self.queues) < self.pool_size or not candidates):
            new_lane = f"{self.prefix}{len(self.queues)}"
            if not candidates or min(rank(lane) for lane in candidates) > 0:
                return self._enqueue(make(new_lane))
        if candidates:
            return self._enqueue(make(min(candidates, key=rank)))
        if avoid in free:
            return self._enqueue(make(avoid))
        return None

    def _enqueue(self, response: R) -> R:
        self.queues.setdefault(response.lane, deque()).append(response)
        self.in_flight += 1
        return response

    def retire_stuck(self, now: float, older_than: float) -> list[R]:
        """Abandoned responses that never ended, released: their lanes are given up (never reused)."""
        if not self.in_flight:  # asked before every request, when nothing is in flight most of the time
            return []
        stuck = [
            response
            for response in self.responses()
            if response.abandoned_at is not None and now - response.abandoned_at > older_than
        ]
        for response in stuck:
            self._retired.add(response.lane)
            self.release(response)
        return stuck

    def go_lane_free(self) -> list[R]:
        """The server ignores or refuses lanes: what is in flight shares one FIFO, in the order it
        was sent; returned so that the session can take their lanes off them."""
        in_flight = sorted(self.responses(), key=lambda response: response.serial)
        self.queues = {None: deque(in_flight)} if in_flight else {}
        self.speaking.clear()
        self._retired.clear()
        self.named = False
        return in_flight

    def release(self, response: R) -> None:
        """``response`` no longer holds its lane (its terminal was read, or it was never sent)."""
        self.hush(response)
        queue = self.queues.get(response.lane if self.named else None)
        if queue and response in queue:
            queue.remove(response)
            self.in_flight -= 1

    def hush(self, response: R) -> None:
        """``response``'s words no longer go straight to its owner (see ``speaking``)."""
        if self.speaking.get(response.lane) is response:
            del self.speaking[response.lane]

    # -- receiving ------------------------------------------------------------------------

    def owner(self, event: ev.ServerEvent) -> R | None:
        """The response ``event`` belongs to; None when nobody owns it or it is connection-level."""
        if self.named:
            queue = self.queues.get(event.stream_id) if event.stream_id is not None else None
            return queue[0] if queue else None
        queue = self.queues.get(None)
        if not queue:
            return None
        if not isinstance(event, ev.ServerError):
            return queue[0]
        # Without lanes an error names no response. A request-scoped code answers the oldest
        # create the server has not started; anything else is connection-level.
        if event.code not in REQUEST_SCOPED_ERRORS:
            return None
        return next((response for response in queue if response.response_id is None), None)

    def is_connection_level(self, event: ev.ServerEvent) -> bool:
        """Whether ``event`` speaks of the connection rather than of a response."""
        if self.named:
            return event.stream_id is None
        return isinstance(event, ev.ServerError) and event.code not in REQUEST_SCOPED_ERRORS

    # -- inspection -----------------------------------------------------------------------

    def responses(self) -> Iterator[R]:
        for queue in list(self.queues.values()):
            yield from list(queue)

    def is_quiet(self) -> bool:
        """Nothing in flight: the connection can be closed without losing anything."""
        return self.in_flight == 0
