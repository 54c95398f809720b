"""Lanes: which request does an incoming event belong to, and which lane may the next one use?

Only lifecycle events carry a response id; every event of a named lane carries its
``stream_id``, and a lane is FIFO. So a request is identified by its lane and its place in the
lane's queue, and an abandoned request is nothing more than a flag checked inline: its events
are dropped as they arrive and its terminal event frees the lane. No drain, no waiting.

On the default lane (compatibility mode for gateways without ``stream_id``) every request
shares one FIFO; the next request is sent at once and queues on the server behind the
abandoned one, whose events are dropped as they arrive.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from . import wire

# Errors that answer a create without a response being created: the request is over.
REQUEST_SCOPED_ERRORS = frozenset(
    {wire.PREVIOUS_RESPONSE_NOT_FOUND, wire.STREAM_LIMIT_REACHED, wire.INVALID_STREAM_ID}
)


@dataclass(eq=False)
class Request:
    """One ``response.create`` as the router sees it."""

    lane: str | None
    serial: int
    sink: Any = None
    response_id: str | None = None
    abandoned: bool = False
    abandoned_at: float | None = None
    cancel_sent: bool = False
    finished: bool = False


class RouteKind(Enum):
    DELIVER = "deliver"  # hand the event to the request's owner
    DROP = "drop"  # an abandoned request's event (or one nobody owns)
    CONNECTION = "connection"  # a connection-level event (an error without a lane)


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    request: Request | None = None
    finished: bool = False  # the event ended its request; the lane is free if nothing queues behind
    cancel_owed: bool = False  # an abandoned request just revealed its id: cancel it now


@dataclass
class LaneRouter:
    """Routes events to requests and hands out lanes. Pure state; the socket lives elsewhere."""

    named: bool = True
    prefix: str = "lane-"
    pool_size: int = 4
    max_named_lanes: int = wire.MAX_NAMED_LANES
    max_in_flight: int = wire.MAX_IN_FLIGHT_RESPONSES
    _lanes: dict[str | None, deque[Request]] = field(default_factory=dict)
    _retired: set[str | None] = field(default_factory=set)
    _serial: int = 0

    # -- sending --------------------------------------------------------------------------

    def open(
        self, staleness: Callable[[str | None], int] | None = None, avoid: str | None = None
    ) -> Request | None:
        """A request on a free lane, or None when this connection cannot start one at once.

        ``avoid`` is the lane holding the parent we continue from: forking onto another lane
        keeps that parent cached even if this request is abandoned, so the turn after a
        barge-in can continue from it too. Among the other free lanes (and a new one while the
        pool is below its size) the one whose cached response is oldest is used, so recent
        responses stay cached as fork points. Past the pool size a lane is added only while
        every lane is busy, and never past the server's lane or in-flight limits.
        """
        if self.in_flight >= self.max_in_flight:
            return None
        if not self.named:
            return self._enqueue(None)
        rank = staleness or (lambda _lane: 0)
        free = [lane for lane, queue in self._lanes.items() if not queue and lane not in self._retired]
        can_grow = len(self._lanes) < self.max_named_lanes
        candidates = [lane for lane in free if lane != avoid]
        if can_grow and (len(self._lanes) < self.pool_size or not candidates):
            new_lane = f"{self.prefix}{len(self._lanes)}"
            if not candidates or min(rank(lane) for lane in candidates) > 0:
                return self._enqueue(new_lane)
        if candidates:
            return self._enqueue(min(candidates, key=rank))
        if avoid in free:
            return self._enqueue(avoid)
        return None

    def _enqueue(self, lane: str | None) -> Request:
        self._serial += 1
        request = Request(lane=lane, serial=self._serial)
        self._lanes.setdefault(lane, deque()).append(request)
        return request

    def abandon(self, request: Request, now: float) -> bool:
        """The owner gave up on ``request``. True if a cancel can be sent now (its id is known)."""
        if request.finished or request.abandoned:
            return False
        request.abandoned = True
        request.abandoned_at = now
        return request.response_id is not None

    def withdraw(self, request: Request) -> None:
        """``request`` was never written to the socket: free its place at once."""
        self._finish(request)

    def retire_stuck(self, now: float, older_than: float) -> list[Request]:
        """Abandoned requests that never ended: give up on their lanes (never reused)."""
        stuck = []
        for lane, queue in self._lanes.items():
            for request in queue:
                if request.abandoned_at is not None and now - request.abandoned_at > older_than:
                    stuck.append(request)
                    self._retired.add(lane)
        for request in stuck:
            self._finish(request)
        return stuck

    # -- receiving ------------------------------------------------------------------------

    def route(self, event: dict[str, Any]) -> Route:
        """Decide where ``event`` goes; update request state as lifecycle events pass."""
        event_type = event.get("type")
        stream_id = event.get("stream_id")
        if self.named:
            if stream_id is None:
                return Route(RouteKind.CONNECTION)
            request = self._head(stream_id)
        else:
            request = self._default_lane_owner(event)
            if request is None and event_type == wire.ERROR:
                return Route(RouteKind.CONNECTION)
        if request is None:
            return Route(RouteKind.DROP)

        cancel_owed = False
        if event_type == wire.CREATED:
            request.response_id = (event.get("response") or {}).get("id")
            cancel_owed = request.abandoned and not request.cancel_sent
        finished = event_type in wire.TERMINAL_EVENTS or (
            event_type == wire.ERROR and request.response_id is None
        )
        if finished:
            self._finish(request)
        kind = RouteKind.DROP if request.abandoned else RouteKind.DELIVER
        return Route(kind, request, finished=finished, cancel_owed=cancel_owed)

    def _head(self, lane: str | None) -> Request | None:
        queue = self._lanes.get(lane)
        return queue[0] if queue else None

    def _default_lane_owner(self, event: dict[str, Any]) -> Request | None:
        queue = self._lanes.get(None)
        if not queue:
            return None
        if event.get("type") != wire.ERROR:
            return queue[0]
        # Without lanes an error names no request. A request-scoped code answers the oldest
        # create the server has not started; anything else is connection-level.
        code = (event.get("error") or {}).get("code")
        if code not in REQUEST_SCOPED_ERRORS:
            return None
        return next((request for request in queue if request.response_id is None), None)

    def _finish(self, request: Request) -> None:
        request.finished = True
        queue = self._lanes.get(request.lane)
        if queue and request in queue:
            queue.remove(request)

    # -- inspection -----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return sum(len(queue) for queue in self._lanes.values())

    def requests(self) -> Iterator[Request]:
        for queue in self._lanes.values():
            yield from queue

    def is_quiet(self) -> bool:
        """Nothing in flight: the connection can be closed without losing anything."""
        return self.in_flight == 0
