"""One WebSocket: the handshake, a single reader task, sends, and the session's decisions carried out.

The reader parses each frame once, asks the session what it means and does what it is told:
a happening goes to its response's queue (never waiting for a consumer), a cancel is sent in
the background, a line is logged. Nothing here decides anything, and nothing here can hold up
an interruption.

One exception saves a task switch on the hot path: a response's owner may install an express
handler for text deltas. While the owner is parked waiting on an empty queue, the reader runs
that handler itself instead of waking the owner to do the same work. An interruption cancels
the owner, which ends the parking, so no express handler runs for a turn being abandoned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..log import exception_text, logger
from ..protocol import events as ev
from ..protocol.actions import (
    Action,
    Deliver,
    Log,
    ReleaseToolResults,
    ReportError,
    Retire,
    SendEvent,
    Touch,
)
from ..protocol.errors import (
    AuthenticationError,
    ConnectionLost,
    HandshakeRejected,
    PhaseTimeout,
    ResponsesWSError,
    describe_close,
)
from ..protocol.response import Happening, Response, Retry
from ..protocol.session import (
    ClientSession,
    ConnectionState,
    ConnectionStats,
)

Express = Callable[[ev.TextDelta], Awaitable[None]]


class EventQueue:
    """A response's happenings, with a waiter that costs nothing while some are already queued.

    It also keeps the time of the response's last sign of life (a happening, an event that
    changed nothing, a delta the express handler took), so the owner's timeout runs from there:
    ``first_timeout`` until the response showed anything, ``stall_timeout`` after.
    """

    __slots__ = ("_items", "_progress_at", "_stall_timeout", "_timer", "_waiter", "express")

    def __init__(self) -> None:
        self._items: deque[Happening | _Failure] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._progress_at = 0.0  # monotonic time of the last sign of life; 0 = none yet
        self._timer: asyncio.Timeout | None = None  # the parked owner's timeout
        self._stall_timeout: float | None = None
        # Run by the reader for text deltas while the owner is parked in ``get``; it must not
        # block (it pushes a frame), and what it raises is re-raised in the owner.
        self.express: Express | None = None

    @property
    def progressed(self) -> bool:
        """Whether the response showed any sign of life (its first event arrived)."""
        return self._progress_at > 0.0

    def touch(self) -> None:
        """The response showed a sign of life (a happening, or an event the owner need not hear about)."""
        first = not self._progress_at
        self._progress_at = time.monotonic()
        timer = self._timer
        if first and timer is not None:
            # The first sign of life switches a parked owner from the first-event timeout to
            # the (usually shorter) stall timeout; later ones only push the deadline back,
            # which the owner checks when the timer fires.
            stall = self._stall_timeout
            timer.reschedule(None if stall is None else asyncio.get_running_loop().time() + stall)

    def put(self, item: Happening | _Failure) -> None:
        self._items.append(item)
        self.touch()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def deliver(self, happening: Happening) -> Awaitable[None] | None:
        """Queue ``happening``, or return the express handling of it when its owner is parked.

        What the handler raises goes to the owner, so awaiting the handling never raises."""
        waiter = self._waiter
        if (
            self.express is not None
            and type(happening) is ev.TextDelta
            and waiter is not None
            and not waiter.done()
            and not self._items
        ):
            self.touch()
            return self._run_express(self.express, happening)
        self.put(happening)
        return None

    async def _run_express(self, express: Express, delta: ev.TextDelta) -> None:
        try:
            await express(delta)
        except Exception as e:  # the owner fails its turn with it; the reader goes on
            self.fail(e)

    def fail(self, error: BaseException) -> None:
        """Hand ``error`` to the owner: its next ``get`` raises it."""
        self.put(_Failure(error))

    async def get(self, first_timeout: float | None, stall_timeout: float | None = None) -> Happening:
        """The next happening; ``TimeoutError`` once the response has shown no sign of life for
        ``first_timeout`` seconds (nothing yet) or ``stall_timeout`` seconds (after something)."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        self._stall_timeout = stall_timeout
        while not self._items:
            self._waiter = loop.create_future()
            try:
                async with asyncio.timeout(self._remaining(started, first_timeout, stall_timeout)) as timer:
                    self._timer = timer
                    await self._waiter
            except TimeoutError:
                remaining = self._remaining(started, first_timeout, stall_timeout)
                if not self._items and remaining is not None and remaining <= 0:
                    raise
            finally:
                self._waiter = self._timer = None
        item = self._items.popleft()
        if isinstance(item, _Failure):
            raise item.error
        return item

    def _remaining(self, started: float, first: float | None, stall: float | None) -> float | None:
        if self._progress_at:
            return None if stall is None else max(started, self._progress_at) + stall - time.monotonic()
        return None if first is None else started + first - time.monotonic()


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


def _queue_of(response: Response) -> EventQueue:
    queue = response.owner
    assert isinstance(queue, EventQueue), "every response opened here has a queue"
    return queue


class Connection:
    """One socket to the server; its state and every decision about it belong to the session."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        session: ClientSession,
        *,
        send_timeout: float = 5.0,
        on_retire: Callable[[Connection, str, bool], None] | None = None,
        on_error: Callable[[Connection, ResponsesWSError], None] | None = None,
        on_tool_results: Callable[[list[dict[str, Any]]], None] | None = None,
        name: str = "connection",
    ) -> None:
        self.url = url
        self.name = name
        self.session = session
        self.state: ConnectionState = session.connection(name)
        self._headers = headers
        self._send_timeout = send_timeout
        self._on_retire = on_retire
        self._on_error = on_error
        self._on_tool_results = on_tool_results
        self.opened_at = 0.0
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.closed = asyncio.Event()
        self.quiet = asyncio.Event()  # nothing in flight: safe to close
        self.quiet.set()

    @property
    def stats(self) -> ConnectionStats:
        return self.state.stats

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
        self.state.stats.connect_secs = self.opened_at - started
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-reader")

    @property
    def age(self) -> float:
        return time.monotonic() - self.opened_at if self.opened_at else 0.0

    @property
    def usable(self) -> bool:
        """Open, and the server has not said it is spent: new responses may start here."""
        return self._ws is not None and self.state.usable

    async def close(self) -> None:
        ws = self._ws
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), timeout=2.0)
            except Exception as e:  # a socket we are done with must not fail whoever closes it
                logger.debug(f"{self.name}: close did not complete ({e!r}); dropping the transport")
                self.abort()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        self._socket_closed(None, "closed by the client")

    def abort(self) -> None:
        """Drop the transport now (a stuck send, a dead peer)."""
        if self._ws is not None:
            try:
                self._ws.transport.abort()
            except Exception as e:  # a transport that already tore itself down (CPython 3.11) fails here
                logger.debug(f"{self.name}: transport already gone ({e!r})")

    # -- responses ------------------------------------------------------------------------

    def open_response(
        self,
        full_input: list[dict[str, Any]],
        *,
        retry_of: tuple[Response, Retry] | None = None,
        generate: bool = True,
        out_of_band: bool = False,
    ) -> Response | None:
        """A response on a free lane with its event queue, or None if none can start here at once."""
        self._apply(self.session.retire_stuck(self.state, time.monotonic()))
        response = self.session.open_response(
            self.state, full_input, retry_of=retry_of, generate=generate, out_of_band=out_of_band
        )
        if response is not None:
            response.owner = EventQueue()
            self.quiet.clear()
        return response

    async def send_create(self, response: Response, fields: dict[str, Any]) -> None:
        """Write ``response``'s create. A failure is not raised: it reaches the owner's queue as
        the session's verdict (send again elsewhere, or the error)."""
        payload = self.session.create_event(response, fields)
        ws = self._ws
        if ws is None or self.state.closed:
            reason = f"the connection is closed ({self.state.close_reason or 'never opened'})"
            self._apply(self.session.send_failed(response, reason, time.monotonic()))
            return
        text = json.dumps(payload)
        try:
            async with asyncio.timeout(self._send_timeout):
                await ws.send(text)
        except TimeoutError:
            self.abort()
            reason = f"send blocked for {self._send_timeout:g}s; connection dropped"
            self._apply(self.session.send_failed(response, reason, time.monotonic()))
            return
        except ConnectionClosed as e:
            reason = f"the connection closed ({describe_close(*_close_of(e))})"
            self._apply(self.session.send_failed(response, reason, time.monotonic()))
            return
        self.session.sent(response, len(text))

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

    def set_express(self, response: Response, express: Express | None) -> None:
        _queue_of(response).express = express

    def abandon(self, response: Response) -> None:
        """Barge-in: the session decides, nothing here awaits."""
        self._apply(self.session.abandon(response, time.monotonic()))

    # -- receiving ------------------------------------------------------------------------

    async def _read(self) -> None:
        assert self._ws is not None
        code: int | None = None
        reason = "the reader stopped"
        session, state, parse, apply = self.session, self.state, ev.parse_event, self._apply
        try:
            async for raw in self._ws:
                express = apply(session.receive(state, parse(raw), time.monotonic()))
                if express is not None:
                    await express
        except ConnectionClosed as e:
            code, reason = _close_of(e)
        except Exception as e:  # a bug here must not leave responses waiting forever
            logger.error(f"{self.name}: reader failed: {exception_text(e)}")
            reason = f"the reader failed: {e!r}"
        else:
            code, reason = _close_of(None, self._ws)
        finally:
            self._socket_closed(code, reason)

    def _socket_closed(self, code: int | None, reason: str) -> None:
        self._apply(self.session.closed(self.state, code, reason, time.monotonic()))
        self.closed.set()

    def _apply(self, actions: list[Action]) -> Awaitable[None] | None:
        """Carry out the session's decisions; returns the express handling to await, if any."""
        express = None
        for action in actions:
            if type(action) is Deliver:
                handling = _queue_of(action.response).deliver(action.happening)
                if handling is not None:
                    express = handling
            elif type(action) is Touch:
                _queue_of(action.response).touch()
            elif isinstance(action, Log):
                logger.log(action.level, action.message)
            elif isinstance(action, SendEvent):
                self._spawn(self._send_quietly(action.payload))
            elif isinstance(action, Retire):
                if self._on_retire is not None:
                    self._on_retire(self, action.reason, action.soon)
            elif isinstance(action, ReportError):
                if self._on_error is not None:
                    self._on_error(self, action.error)
            elif isinstance(action, ReleaseToolResults):
                if self._on_tool_results is not None:
                    self._on_tool_results(action.results)
        if self.state.is_quiet():
            self.quiet.set()
        return express

    async def _send_quietly(self, payload: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or self.state.closed:
            return
        try:
            async with asyncio.timeout(self._send_timeout):
                await ws.send(json.dumps(payload))
        except (TimeoutError, ConnectionClosed) as e:
            logger.debug(f"{self.name}: {payload['type']} not sent: {e!r}")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _close_of(error: ConnectionClosed | None, ws: ClientConnection | None = None) -> tuple[int | None, str]:
    """The close code and reason the peer sent (or that the transport's loss implies)."""
    received = error.rcvd if error is not None else (ws.protocol.close_rcvd if ws is not None else None)
    if received is not None:
        return received.code, received.reason
    if error is not None and error.sent is not None:
        return error.sent.code, error.sent.reason
    return 1006, "no close frame (the transport was lost)"
