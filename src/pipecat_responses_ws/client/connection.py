"""One WebSocket: the handshake, a single reader task that routes every event by lane, and sends.

The reader never waits for a consumer: an event for a live request is appended to that request's
queue, an event for an abandoned request is dropped on the spot (its terminal frees the lane),
and a connection-level event goes to a callback. Nothing here can hold up an interruption.

One exception saves a task switch on the hot path: a request's owner may install an express
handler for some event types (text deltas). While the owner is parked waiting on an empty queue,
the reader runs that handler itself instead of waking the owner to do the same work. An
interruption cancels the owner, which ends the parking, so no express handler runs for a turn
that is being abandoned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from loguru import logger
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..protocol import wire
from ..protocol.chain import ServerChains
from ..protocol.errors import AuthenticationError, ConnectionLost, HandshakeRejected, PhaseTimeout
from ..protocol.lanes import LaneRouter, Request, RouteKind

# How long after sending response.cancel a connection-level error is taken as its rejection.
CANCEL_REJECTION_WINDOW_SECS = 2.0
# An abandoned request that has not ended after this long never will: its lane is retired.
STUCK_LANE_SECS = 60.0
_CLOSED = object()


class EventQueue:
    """A request's events, with a waiter that costs nothing while events are already queued."""

    __slots__ = ("_expressed_at", "_items", "_waiter", "express", "express_types")

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._expressed_at = 0.0  # loop time of the last event the express handler took
        # Run by the reader for these event types while the owner is parked in ``get``; it must
        # not block (it pushes a frame), and what it raises is re-raised in the owner.
        self.express: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self.express_types: frozenset[str] = frozenset()

    def put(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def deliver(self, event: dict[str, Any]) -> Awaitable[None] | None:
        """Queue ``event``, or return the express handling of it when its owner is parked.

        What the handler raises goes to the owner, so awaiting the handling never raises."""
        waiter = self._waiter
        if (
            self.express is not None
            and waiter is not None
            and not waiter.done()
            and not self._items
            and event["type"] in self.express_types
        ):
            self._expressed_at = waiter.get_loop().time()
            return self._run_express(self.express, event)
        self.put(event)
        return None

    async def _run_express(self, express: Callable[[dict[str, Any]], Awaitable[None]], event: dict[str, Any]) -> None:
        try:
            await express(event)
        except Exception as e:  # the owner fails its turn with it; the reader goes on
            self.fail(e)

    def fail(self, error: BaseException) -> None:
        """Hand ``error`` to the owner: its next ``get`` raises it."""
        self.put(_Failure(error))

    async def get(self, timeout: float | None) -> Any:
        """The next item; ``TimeoutError`` if for ``timeout`` seconds neither an item arrives nor
        the express handler takes an event."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not self._items:
            self._waiter = loop.create_future()
            deadline = None if timeout is None else max(started, self._expressed_at) + timeout
            try:
                async with asyncio.timeout_at(deadline):
                    await self._waiter
            except TimeoutError:
                if timeout is None or self._expressed_at + timeout <= loop.time():
                    raise
            finally:
                self._waiter = None
        item = self._items.popleft()
        if isinstance(item, _Failure):
            raise item.error
        return item


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


@dataclass
class ConnectionStats:
    """Figures the service reports as metrics and the harness reads."""

    connect_secs: float = 0.0
    cancels_sent: int = 0
    cancel_to_terminal_secs: list[float] = field(default_factory=list)
    abandoned_output_tokens: int = 0


class Connection:
    """One socket to the server, its lanes and what its cache holds."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        *,
        named_lanes: bool = True,
        lane_prefix: str = "lane-",
        pool_size: int = 4,
        send_timeout: float = 5.0,
        on_connection_error: Callable[[Connection, dict[str, Any]], None] | None = None,
        on_closed: Callable[[Connection], None] | None = None,
        name: str = "connection",
    ) -> None:
        self.url = url
        self._headers = headers
        self._send_timeout = send_timeout
        self._on_connection_error = on_connection_error
        self._on_closed = on_closed
        self.name = name
        self.router = LaneRouter(named=named_lanes, prefix=lane_prefix, pool_size=pool_size)
        self.chains = ServerChains()
        self.stats = ConnectionStats()
        self.cancel_supported = True
        self.expired = False  # the server said the connection reached its age limit
        self.opened_at = 0.0
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._last_cancel_at: float | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.closed = asyncio.Event()
        self.quiet = asyncio.Event()  # nothing in flight: safe to close
        self.quiet.set()

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self, timeout: float) -> None:
        """Handshake within ``timeout`` seconds, then start the reader."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                self._ws = await websockets.connect(
                    self.url,
                    additional_headers=self._headers,
                    open_timeout=None,
                    compression=None,
                    max_size=None,
                    ping_interval=20,
                    ping_timeout=20,
                    close_timeout=2,
                )
        except InvalidStatus as e:
            status = e.response.status_code
            if status in (401, 403):
                raise AuthenticationError(
                    status,
                    f"the server refused the API key (HTTP {status}); set OPENAI_API_KEY or pass api_key=",
                ) from None
            raise HandshakeRejected(status, f"the server rejected the WebSocket upgrade with HTTP {status}") from None
        except TimeoutError:
            raise PhaseTimeout(f"no WebSocket handshake within {timeout:g}s", phase="connect") from None
        except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as e:
            raise ConnectionLost(f"could not connect to {self.url}: {e}", phase="connect") from None
        self.opened_at = time.monotonic()
        self.stats.connect_secs = self.opened_at - started
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-reader")

    @property
    def age(self) -> float:
        return time.monotonic() - self.opened_at if self.opened_at else 0.0

    @property
    def is_open(self) -> bool:
        return self._ws is not None and not self.closed.is_set()

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), timeout=2.0)
            except (TimeoutError, OSError, ConnectionClosed):
                ws.transport.abort()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        for task in list(self._background):
            task.cancel()
        self._mark_closed()

    def abort(self) -> None:
        """Drop the transport now (a stuck send, a dead peer)."""
        if self._ws is not None:
            self._ws.transport.abort()

    # -- sending --------------------------------------------------------------------------

    def open_request(self, avoid_lane: str | None = None) -> Request | None:
        """A request on a free lane with an event queue, or None if none can start at once."""
        for stuck in self.router.retire_stuck(time.monotonic(), STUCK_LANE_SECS):
            logger.warning(f"{self.name}: lane {stuck.lane} never ended its abandoned response; retired")
        request = self.router.open(self.chains.staleness, avoid=avoid_lane)
        if request is not None:
            request.sink = EventQueue()
            self.quiet.clear()
        return request

    async def send(self, payload: dict[str, Any]) -> int:
        """Write one event; returns its size. The frame is on the wire before the first suspension point."""
        ws = self._ws
        if ws is None or self.closed.is_set():
            raise ConnectionLost("the connection is closed", phase="send")
        text = json.dumps(payload)
        try:
            async with asyncio.timeout(self._send_timeout):
                await ws.send(text)
        except TimeoutError:
            self.abort()
            message = f"send blocked for {self._send_timeout:g}s; connection dropped"
            raise ConnectionLost(message, phase="send") from None
        except ConnectionClosed as e:
            raise ConnectionLost(f"the connection closed: {e}", phase="send") from None
        return len(text)

    def abandon(self, request: Request) -> None:
        """Give up on ``request`` without awaiting anything; cancel it on the server if we can."""
        if self.router.abandon(request, time.monotonic()):
            self._send_cancel(request)

    def _send_cancel(self, request: Request) -> None:
        if not (self.cancel_supported and self.is_open) or request.cancel_sent or request.response_id is None:
            return
        request.cancel_sent = True
        self._last_cancel_at = time.monotonic()
        self.stats.cancels_sent += 1
        self.spawn(self._send_quietly({"type": wire.RESPONSE_CANCEL, "response_id": request.response_id}))

    async def _send_quietly(self, payload: dict[str, Any]) -> None:
        try:
            await self.send(payload)
        except ConnectionLost as e:
            logger.debug(f"{self.name}: {payload['type']} not sent: {e}")

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- receiving ------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                express = self._dispatch(raw)
                if express is not None:
                    await express
        except ConnectionClosed:
            pass
        except Exception as e:  # a bug here must not leave requests waiting forever
            logger.exception(f"{self.name}: reader failed: {e}")
        finally:
            self._mark_closed()

    def _dispatch(self, raw: str | bytes) -> Awaitable[None] | None:
        """Route one frame; returns the express handling to run, if its owner installed one."""
        try:
            event = json.loads(raw)
        except (TypeError, ValueError):
            logger.warning(f"{self.name}: skipped a malformed server frame: {str(raw)[:120]!r}")
            return None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            logger.warning(f"{self.name}: skipped a server frame without an event type: {str(raw)[:120]!r}")
            return None
        route = self.router.route(event)
        express = None
        if route.kind is RouteKind.DELIVER:
            express = route.request.sink.deliver(event)  # type: ignore[union-attr]
        elif route.kind is RouteKind.CONNECTION:
            self._connection_event(event)
        elif route.finished and route.request is not None:
            self._abandoned_finished(route.request, event)
        if route.cancel_owed and route.request is not None:
            self._send_cancel(route.request)
        if route.finished and self.router.is_quiet():
            self.quiet.set()
        return express

    def _abandoned_finished(self, request: Request, event: dict[str, Any]) -> None:
        usage = (event.get("response") or {}).get("usage") or {}
        self.stats.abandoned_output_tokens += int(usage.get("output_tokens") or 0)
        if request.abandoned_at is not None:
            self.stats.cancel_to_terminal_secs.append(time.monotonic() - request.abandoned_at)

    def _connection_event(self, event: dict[str, Any]) -> None:
        if event.get("type") != wire.ERROR:
            logger.debug(f"{self.name}: ignored {event.get('type')} without a lane")
            return
        error = event.get("error") or {}
        code = error.get("code")
        if code == wire.CONNECTION_LIMIT_REACHED:
            self.expired = True
            logger.info(f"{self.name}: the server reports the connection age limit; rotating")
            return
        if self._looks_like_cancel_rejection(error):
            self.cancel_supported = False
            logger.info(
                f"{self.name}: the server rejected response.cancel ({code}: {error.get('message')}); "
                "not sending it again on this connection"
            )
            return
        if self._on_connection_error is not None:
            self._on_connection_error(self, event)

    def _looks_like_cancel_rejection(self, error: dict[str, Any]) -> bool:
        if self._last_cancel_at is None or time.monotonic() - self._last_cancel_at > CANCEL_REJECTION_WINDOW_SECS:
            return False
        text = f"{error.get('code')} {error.get('message')} {error.get('param')}".lower()
        return "cancel" in text or error.get("code") in (wire.UNKNOWN_EVENT, "unknown_parameter")

    def _mark_closed(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for request in list(self.router.requests()):
            if request.sink is not None and not request.abandoned:
                request.sink.put(_CLOSED)
        if self._on_closed is not None:
            self._on_closed(self)


def is_closed_marker(item: Any) -> bool:
    """Whether a queued item says the connection closed under its request."""
    return item is _CLOSED
